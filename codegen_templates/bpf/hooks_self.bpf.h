/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Self-protection: what a confined process may never do, whatever its policy says (no rule
 * kind can name it; docs/language.md, "Self-protection").  bpffs paths are refused in
 * check_path (checks.bpf.h), F_SETOWN to another process in file_fcntl (hooks_fs.bpf.h).
 */
#ifndef BPFBOX_HOOKS_SELF_BPF_H
#define BPFBOX_HOOKS_SELF_BPF_H

#include "checks.bpf.h"

/* The bpf() system call: it could read or detach the pinned profiles, or load programs. */
SEC("lsm/bpf")
int BPF_PROG(bpfbox_bpf, int cmd, union bpf_attr *attr, unsigned int size)
{
	struct task_state *t = confined_current();

	return t ? protect(t, PROTECTED_BPF_SYSCALL, 0) : 0;
}

/* A kernel module loaded on the process's behalf (a socket family, a device, a file system
 * type that is not loaded yet): new kernel code, chosen by the confined process. */
SEC("lsm/kernel_module_request")
int BPF_PROG(bpfbox_kernel_module_request, char *kmod_name)
{
	struct task_state *t = confined_current();

	return t ? protect(t, PROTECTED_MODULE_REQUEST, 0) : 0;
}

/* Changing the mount tree: mounting (bind mounts included), unmounting, moving a mount,
 * pivot_root.  The tree decides which file each path names, and so what every fs rule
 * means: a process that may change it can put any file under a path its rules grant (a
 * bind mount of /etc/shadow over a readable file), or uncover what a mount hides.  Without
 * bpfbox these need CAP_SYS_ADMIN; no rule kind governs them, so no policy allows them.
 * The hooks come before the kernel's own checks: the event is logged with or without
 * cap(sys_admin). */
static __always_inline int protect_mount_tree(void)
{
	struct task_state *t = confined_current();

	return t ? protect(t, PROTECTED_MOUNT_TREE, 0) : 0;
}

SEC("lsm/sb_mount")
int BPF_PROG(bpfbox_sb_mount, const char *dev_name, const struct path *path, const char *type, unsigned long flags, void *data)
{
	return protect_mount_tree();
}

SEC("lsm/sb_umount")
int BPF_PROG(bpfbox_sb_umount, struct vfsmount *mnt, int flags)
{
	return protect_mount_tree();
}

SEC("lsm/move_mount")
int BPF_PROG(bpfbox_move_mount, const struct path *from_path, const struct path *to_path)
{
	return protect_mount_tree();
}

SEC("lsm/sb_pivotroot")
int BPF_PROG(bpfbox_sb_pivotroot, const struct path *old_path, const struct path *new_path)
{
	return protect_mount_tree();
}

#endif /* BPFBOX_HOOKS_SELF_BPF_H */
