/* SPDX-License-Identifier: GPL-2.0 */
/*
 * ioctl commands (ioctl rules, and fs rules with the ioctl flag, which grant every command
 * but the dangerous ones: see RuleKind.absorbs).  The 32-bit compat entry has its own hook.
 */
#ifndef BPFBOX_HOOKS_IOCTL_BPF_H
#define BPFBOX_HOOKS_IOCTL_BPF_H

#include "checks.bpf.h"

/* The command's flag in the ioctl vocabulary (IOCTL_COMMANDS), IOCTL_UNNAMED for others. */
static __always_inline __u64 ioctl_command(unsigned int cmd)
{
	switch (cmd) {
#define IOCTL_CASE(name, number) \
	case number:             \
		return IOCTL_##name;
		IOCTL_COMMANDS(IOCTL_CASE)
#undef IOCTL_CASE
	}
	return IOCTL_UNNAMED;
}

/* Objects outside the mount tree (pipes, sockets) are not subject to ioctl rules, as before
 * (docs/language.md, "Limits"). */
static __noinline int check_ioctl(struct task_state *t, struct vfsmount *mnt, struct dentry *dentry, unsigned int cmd)
{
	return check_kind_path(t, mnt, dentry, RULE_IOCTL, ioctl_command(cmd), cmd, PASS_INTERNAL);
}

static __always_inline int check_file_ioctl(struct file *file, unsigned int cmd)
{
	struct task_state *t = confined_current();

	if (!t)
		return 0;
	return check_ioctl(t, BPF_CORE_READ(file, f_path.mnt), BPF_CORE_READ(file, f_path.dentry), cmd);
}

SEC("lsm/file_ioctl")
int BPF_PROG(bpfbox_file_ioctl, struct file *file, unsigned int cmd, unsigned long arg)
{
	return check_file_ioctl(file, cmd);
}

SEC("lsm/file_ioctl_compat")
int BPF_PROG(bpfbox_file_ioctl_compat, struct file *file, unsigned int cmd, unsigned long arg)
{
	return check_file_ioctl(file, cmd);
}

#endif /* BPFBOX_HOOKS_IOCTL_BPF_H */
