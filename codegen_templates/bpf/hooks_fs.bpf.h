/* SPDX-License-Identifier: GPL-2.0 */
/*
 * File-system hooks (fs rules; opens and stats of /proc/PID files are proc rules; ioctl
 * commands are hooks_ioctl.bpf.h's, POSIX message queues' creation hooks_ipc.bpf.h's).
 */
#ifndef BPFBOX_HOOKS_FS_BPF_H
#define BPFBOX_HOOKS_FS_BPF_H

#include "checks.bpf.h"

static __always_inline __u64 open_flags(struct file *file)
{
	__u32 mode = BPF_CORE_READ(file, f_mode);
	unsigned int flags = BPF_CORE_READ(file, f_flags);
	__u64 req = 0;

	/* execve (and uselib) open with __FMODE_EXEC in f_flags; 6.1 does not copy it into
	 * f_mode, so such an open looked like a read and `exec` alone could not execute. */
	if ((mode & FMODE_EXEC) || (flags & __FMODE_EXEC))
		return FS_EXEC;
	if (mode & FMODE_READ)
		req |= FS_READ;
	if (mode & FMODE_WRITE)
		req |= (flags & O_APPEND) && !(flags & O_TRUNC) ? FS_APPEND : FS_WRITE;
	/* An open with neither mode (ioctl-only) still needs a rule: `read`, the weakest. */
	return req ? req : FS_READ;
}

/* The proc flags of an open's fs flags: appending is writing. */
static __always_inline __u64 proc_flags(__u64 req)
{
	__u64 out = 0;

	if (req & FS_READ)
		out |= PROC_READ;
	if (req & (FS_WRITE | FS_APPEND))
		out |= PROC_WRITE;
	return out ? out : PROC_READ;
}

/* Is the kernel loading a new program image for this task?  Its mappings of the program and
 * interpreter are part of the exec, whose permission bprm_check_security already decided. */
static __always_inline int loading_image(void)
{
	struct task_struct *task = bpf_get_current_task_btf();

	if (!bpf_core_field_exists(task->in_execve))
		return 0;
	return BPF_CORE_READ_BITFIELD_PROBED(task, in_execve);
}

SEC("lsm/file_open")
int BPF_PROG(bpfbox_file_open, struct file *file)
{
	struct task_state *t = confined_current();
	struct task_struct *task;
	__u64 req;

	if (!t)
		return 0;
	/* overlayfs opens the real file underneath the one the process opened, with a
	 * kernel-internal file: the outer open was already checked under its visible path. */
	if (BPF_CORE_READ(file, f_mode) & FMODE_NOACCOUNT)
		return 0;
	req = open_flags(file);
	/* The kernel's own opens while it loads a program image: the program, whose exec
	 * bprm_check_security decides, and its ELF interpreter, allowed as its mapping is (a
	 * script's or binfmt_misc interpreter goes through bprm_check_security again). */
	if ((req & FS_EXEC) && loading_image())
		return 0;
	task = proc_task(BPF_CORE_READ(file, f_inode));
	if (task)
		return check_task(t, task, RULE_PROC, proc_flags(req), 0);
	return check_file(t, file, req, !(req & FS_EXEC));
}

/* Check `fs_req` on the object at `dentry` under `mnt` (NULL: no mount could be found, an
 * unresolvable path), or `proc_req` when it is a /proc/PID file (the proc rule kind's target,
 * as for opens), for the confined task of state `t`. */
static __always_inline int check_object_or_proc(struct task_state *t, struct vfsmount *mnt, struct dentry *dentry,
						__u64 fs_req, __u64 proc_req)
{
	struct task_struct *task = proc_task(BPF_CORE_READ(dentry, d_inode));

	if (task)
		return check_task(t, task, RULE_PROC, proc_req, 0);
	if (!mnt)
		return unresolvable(t, RULE_FS, fs_req);
	return check_fs(t, mnt, dentry, fs_req, 1);
}

static __always_inline int check_path_or_proc(const struct path *path, __u64 fs_req, __u64 proc_req)
{
	struct task_state *t = confined_current();

	return t ? check_object_or_proc(t, BPF_CORE_READ(path, mnt), BPF_CORE_READ(path, dentry), fs_req, proc_req)
		 : 0;
}

SEC("lsm/inode_getattr")
int BPF_PROG(bpfbox_inode_getattr, const struct path *path)
{
	return check_path_or_proc(path, FS_GETATTR, PROC_GETATTR);
}

/* A watch (inotify_add_watch, fanotify_mark, dnotify's F_NOTIFY) sees when the file is
 * opened, read or changed, by any process: as much as reading it would tell. */
SEC("lsm/path_notify")
int BPF_PROG(bpfbox_path_notify, const struct path *path, __u64 mask, unsigned int obj_type)
{
	return check_path_or_proc(path, FS_READ, PROC_READ);
}

/* Would writing through a shared mapping of `file` go beyond what its open was granted?  An
 * O_APPEND open was granted `append` (the kernel itself refuses read-only opens). */
static __always_inline int shared_write_beyond_open(struct file *file)
{
	return (BPF_CORE_READ(file, f_flags) & O_APPEND) || !(BPF_CORE_READ(file, f_mode) & FMODE_WRITE);
}

/* An executable mapping of `file` by the current task.  Mapping the profile's program runs
 * it, as executing it does: through the dynamic loader (`ld.so PROGRAM`) or any other way, the
 * task is confined from then on (and is allowed the mapping, as exec allows the image). */
static __noinline int map_executable(struct file *file)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct task_state *t = state_of(task);

	if (is_profile_program(file)) {
		if (!t)
			t = bpf_task_storage_get(&TASKS_MAP, task, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
		if (!t)
			return -ENOMEM; /* fail closed: the program does not run unconfined */
		confine(t);
		return 0;
	}
	if (!t || !t->confined || loading_image())
		return 0;
	return check_file(t, file, FS_EXEC, 0);
}

/* A mapping of `file` with `prot`: an executable one as map_executable says; a shared
 * writable one (`shared`) needs `write` when that goes beyond what the open was granted. */
static __always_inline int check_mapping(struct file *file, unsigned long prot, int shared)
{
	struct task_state *t;
	int ret;

	if (!file)
		return 0;
	if (prot & PROT_EXEC) {
		ret = map_executable(file);
		if (ret)
			return ret;
	}
	if (!(prot & PROT_WRITE) || !shared || !shared_write_beyond_open(file))
		return 0;
	t = confined_current();
	return t ? check_file(t, file, FS_WRITE, 0) : 0;
}

SEC("lsm/mmap_file")
int BPF_PROG(bpfbox_mmap_file, struct file *file, unsigned long reqprot, unsigned long prot, unsigned long flags)
{
	return check_mapping(file, prot, (flags & MAP_TYPE) != MAP_PRIVATE);
}

SEC("lsm/file_mprotect")
int BPF_PROG(bpfbox_file_mprotect, struct vm_area_struct *vma, unsigned long reqprot, unsigned long prot)
{
	return check_mapping(BPF_CORE_READ(vma, vm_file), prot, !!(BPF_CORE_READ(vma, vm_flags) & VM_MAYSHARE));
}

/* Does the current system call write only at the end of an O_APPEND file?  The system call
 * number comes from the user registers saved at entry (x86-64 numbers, types.bpf.h); an
 * unknown one (fallocate, io_submit, io_uring_enter, an io_uring worker whose registers are
 * zero) is not, and so needs `write` (fail closed). */
static __always_inline int appending_syscall(void)
{
	struct pt_regs *regs = (void *)bpf_task_pt_regs(bpf_get_current_task_btf());
	long nr = BPF_CORE_READ(regs, orig_ax);

	switch (nr) {
	case NR_write:
	case NR_pwrite64: /* pwrite appends on an O_APPEND file, whatever the offset */
	case NR_writev:
	case NR_pwritev:
	case NR_sendfile: /* the kernel refuses O_APPEND destinations of these three */
	case NR_splice:
	case NR_copy_file_range:
		return 1;
	case NR_pwritev2: /* RWF_NOAPPEND writes at the offset given */
		return !(BPF_CORE_READ(regs, r9) & RWF_NOAPPEND);
	default:
		return 0;
	}
}

static __always_inline int is_socket(struct file *file)
{
	struct inode *inode = BPF_CORE_READ(file, f_inode);

	return (BPF_CORE_READ(inode, i_mode) & S_IFMT) == S_IFSOCK &&
	       BPF_CORE_READ(inode, i_sb, s_magic) == SOCKFS_MAGIC;
}

/* Every read and write of a file's data: sockets are send/recv whatever the system call
 * (sendfile and splice skip the socket hooks); on an O_APPEND open, anything but a write
 * at the end (fallocate, RWF_NOAPPEND, io_uring) needs `write`. */
SEC("lsm/file_permission")
int BPF_PROG(bpfbox_file_permission, struct file *file, int mask)
{
	struct task_state *t = confined_current();
	struct socket *sock;

	if (!t || !(mask & (MAY_READ | MAY_WRITE)))
		return 0;
	if (is_socket(file)) {
		sock = BPF_CORE_READ(file, private_data);
		return check_net(t, BPF_CORE_READ(sock, sk, __sk_common.skc_family),
				 mask & MAY_WRITE ? NET_SEND : NET_RECV);
	}
	if (!(mask & MAY_WRITE) || !(BPF_CORE_READ(file, f_flags) & O_APPEND) || appending_syscall())
		return 0;
	return check_file(t, file, FS_WRITE, 0);
}

/* Clearing O_APPEND turns an append grant into a write; naming another process as the
 * file's owner would signal it (SIGIO, F_SETSIG) with no rule to decide: refused
 * (self-protection).  A pid is compared in the initial pid namespace. */
SEC("lsm/file_fcntl")
int BPF_PROG(bpfbox_file_fcntl, struct file *file, unsigned int cmd, unsigned long arg)
{
	struct task_state *t = confined_current();
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tgid = pid_tgid >> 32, tid = (__u32)pid_tgid;
	struct f_owner_ex owner = {};

	if (!t)
		return 0;
	if (cmd == F_SETFL) {
		if ((BPF_CORE_READ(file, f_flags) & O_APPEND) && !(arg & O_APPEND) &&
		    (BPF_CORE_READ(file, f_mode) & FMODE_WRITE))
			return check_file(t, file, FS_WRITE, 0);
		return 0;
	}
	if (cmd == F_SETOWN) {
		if ((int)arg == 0 || (int)arg == tgid)
			return 0;
		return protect(t, PROTECTED_SIGNAL_OWNER, (int)arg > 0 ? (int)arg : 0);
	}
	if (cmd == F_SETOWN_EX) {
		/* The kernel copies the structure again after this hook: a thread racing to
		 * change it in between is a known gap (docs/language.md). */
		if (bpf_probe_read_user(&owner, sizeof(owner), (void *)arg))
			return protect(t, PROTECTED_SIGNAL_OWNER, 0);
		if (owner.pid == 0 || (owner.type == F_OWNER_PID && owner.pid == tgid) ||
		    (owner.type == F_OWNER_TID && owner.pid == tid))
			return 0;
		return protect(t, PROTECTED_SIGNAL_OWNER, owner.pid > 0 ? owner.pid : 0);
	}
	return 0;
}

/* An exclusive lock (flock's LOCK_EX, fcntl's F_WRLCK, a write lease: the kernel passes
 * F_WRLCK for each) holds off every other process's locks on the file, a writer's act: it
 * needs `append` (which `write` implies), whatever the descriptor was opened for.  A shared
 * lock and unlocking need nothing beyond the open.  A pipe's or socket's lock is only its
 * holders' business. */
SEC("lsm/file_lock")
int BPF_PROG(bpfbox_file_lock, struct file *file, unsigned int cmd)
{
	struct task_state *t = confined_current();

	return t && cmd == F_WRLCK ? check_file(t, file, FS_APPEND, 1) : 0;
}

SEC("lsm/path_chmod")
int BPF_PROG(bpfbox_path_chmod, const struct path *path, unsigned short mode)
{
	struct task_state *t = confined_current();

	return t ? check_fs(t, BPF_CORE_READ(path, mnt), BPF_CORE_READ(path, dentry), FS_SETATTR, 0) : 0;
}

SEC("lsm/path_chown")
int BPF_PROG(bpfbox_path_chown, const struct path *path, unsigned int uid, unsigned int gid)
{
	struct task_state *t = confined_current();

	return t ? check_fs(t, BPF_CORE_READ(path, mnt), BPF_CORE_READ(path, dentry), FS_SETATTR, 0) : 0;
}

SEC("lsm/path_truncate")
int BPF_PROG(bpfbox_path_truncate, const struct path *path)
{
	struct task_state *t = confined_current();

	return t ? check_fs(t, BPF_CORE_READ(path, mnt), BPF_CORE_READ(path, dentry), FS_WRITE, 0) : 0;
}

/* Time updates reach only inode_setattr; readlink, extended attributes and statfs only hooks
 * of a dentry too: none has a mount.  The path is taken under the mount of the task's working
 * directory or root when the file lives there, else the file system's first mount (see
 * docs/language.md, "Limits and known gaps"). */

/* Mounts of one file system looked through for its first on kernels that chain them newest
 * first; a file system mounted more often names no mount (the access is denied). */
#define SB_MOUNTS_SEARCHED 64

static __always_inline struct vfsmount *first_mount(struct super_block *sb)
{
	struct mount *m, *next;
	struct list_head *first;

	if (bpf_core_field_exists(struct mount___mount_chain, mnt_next_for_sb)) {
		m = BPF_CORE_READ((struct super_block___mount_chain *)sb, s_mounts);
		for (int i = 0; m && i < SB_MOUNTS_SEARCHED; i++) {
			next = BPF_CORE_READ((struct mount___mount_chain *)m, mnt_next_for_sb);
			if (!next)
				return (void *)m + bpf_core_field_offset(struct mount, mnt);
			m = next;
		}
		return 0;
	}
	first = BPF_CORE_READ(sb, s_mounts.next);
	if (!first || (void *)first == (void *)sb + bpf_core_field_offset(struct super_block, s_mounts))
		return 0;
	return (void *)first - bpf_core_field_offset(struct mount, mnt_instance) +
	       bpf_core_field_offset(struct mount, mnt);
}

static __always_inline struct vfsmount *mount_of(struct dentry *dentry)
{
	struct super_block *sb = BPF_CORE_READ(dentry, d_sb);
	struct task_struct *task = bpf_get_current_task_btf();
	struct fs_struct *fs = BPF_CORE_READ(task, fs);
	struct vfsmount *mnt = BPF_CORE_READ(fs, pwd.mnt);

	if (mnt && BPF_CORE_READ(mnt, mnt_sb) == sb)
		return mnt;
	mnt = BPF_CORE_READ(fs, root.mnt);
	if (mnt && BPF_CORE_READ(mnt, mnt_sb) == sb)
		return mnt;
	return first_mount(sb);
}

/* Whether a stacking file system, not the process, made this call: overlayfs reads its
 * layer's link (vfs_get_link) and attributes (vfs_getxattr, vfs_listxattr, vfs_get_acl) again
 * in the task, with the mounter's credentials in place of the task's, for a read through the
 * overlay (checked before, at the overlay's path), for its own lookups and for copy-ups.  No
 * system call lets a process choose its credentials for these reads but io_uring's registered
 * personalities, and io_uring runs its xattr operations in its workers (it has no readlink
 * operation): so a call with switched credentials outside an io_uring worker is a file
 * system's own. */
static __always_inline int read_by_a_file_system(void)
{
	struct task_struct *task = bpf_get_current_task_btf();

	return BPF_CORE_READ(task, cred) != BPF_CORE_READ(task, real_cred) &&
	       !(BPF_CORE_READ(task, flags) & PF_IO_WORKER);
}

/* readlink(2) reads a symbolic link's target, the link's contents: `read` (a /proc/PID link
 * such as exe, cwd or fd/N: proc `read`).  A path walk following a link does not come here,
 * except through a stacking file system (read_by_a_file_system). */
SEC("lsm/inode_readlink")
int BPF_PROG(bpfbox_inode_readlink, struct dentry *dentry)
{
	struct task_state *t = confined_current();

	if (!t || read_by_a_file_system())
		return 0;
	return check_object_or_proc(t, mount_of(dentry), dentry, FS_READ, PROC_READ);
}

/* Reading a file's extended attributes (getxattr, listxattr, and POSIX ACLs, which reach
 * inode_get_acl from 6.2 on) tells its metadata: labels, ACLs, file capabilities, and
 * whatever `user.` attributes hold.  `getattr`, as for stat (SELinux asks the same); proc
 * `getattr` for /proc/PID files. */
static __always_inline int check_xattr_read(struct dentry *dentry)
{
	struct task_state *t = confined_current();

	if (!t || read_by_a_file_system())
		return 0;
	return check_object_or_proc(t, mount_of(dentry), dentry, FS_GETATTR, PROC_GETATTR);
}

SEC("lsm/inode_getxattr")
int BPF_PROG(bpfbox_inode_getxattr, struct dentry *dentry, const char *name)
{
	return check_xattr_read(dentry);
}

SEC("lsm/inode_listxattr")
int BPF_PROG(bpfbox_inode_listxattr, struct dentry *dentry)
{
	return check_xattr_read(dentry);
}

SEC("lsm/inode_get_acl")
int BPF_PROG(bpfbox_inode_get_acl_userns, struct user_namespace *userns, struct dentry *dentry, const char *acl_name)
{
	return check_xattr_read(dentry);
}

SEC("lsm/inode_get_acl")
int BPF_PROG(bpfbox_inode_get_acl_idmap, struct mnt_idmap *idmap, struct dentry *dentry, const char *acl_name)
{
	return check_xattr_read(dentry);
}

/* statfs, fstatfs and ustat tell the statistics of the file system holding a file (its type,
 * size, free space, mount flags): metadata, `getattr` (proc `getattr` under /proc/PID).  The
 * hook has a dentry and no mount (mount_of).  Overlayfs answers with a statfs of its layer's
 * directory, in the task and with the task's credentials: so an allowed statfs of an overlay
 * lets the thread's next one through unchecked, the layer's, which comes at once (and passes
 * the mark on if the layer is an overlay too). */
SEC("lsm/sb_statfs")
int BPF_PROG(bpfbox_sb_statfs, struct dentry *dentry)
{
	struct task_state *t = confined_current();
	int layered, refused;

	if (!t)
		return 0;
	layered = is_overlay(BPF_CORE_READ(dentry, d_sb));
	if (t->statfs_passed) {
		t->statfs_passed = layered;
		return 0;
	}
	refused = check_object_or_proc(t, mount_of(dentry), dentry, FS_GETATTR, PROC_GETATTR);
	if (!refused && layered)
		t->statfs_passed = 1;
	return refused;
}

/* The flag a setattr of `ia_valid` needs, 0 for none: a truncation (ATTR_SIZE: truncate,
 * ftruncate, open with O_TRUNC) updates the times as part of writing, so it needs `write`. */
static __always_inline __u64 setattr_flags(unsigned int ia_valid)
{
	if (ia_valid & ATTR_SIZE)
		return FS_WRITE;
	return (ia_valid & ATTR_TIMES) ? FS_SETATTR : 0;
}

/* The programs of hooks whose prototype changed between kernels come in variants, one per
 * prototype (contract/hook_abi.py); the runtime loads only the one matching the running
 * kernel's BTF.  Each variant hands its arguments to one shared body. */

/* A setattr is checked at the object's path, unless overlayfs makes it on its upper layer for
 * a change checked at the overlay's path (overlay.bpf.h); so are attribute changes below. */
static __always_inline int check_setattr(struct dentry *dentry, struct iattr *attr)
{
	struct task_state *t;
	struct vfsmount *mnt;
	__u64 req = setattr_flags(BPF_CORE_READ(attr, ia_valid));

	if (!req)
		return 0;
	t = confined_current();
	if (!t || overlay_at_work(t))
		return 0;
	mnt = mount_of(dentry);
	if (!mnt)
		return unresolvable(t, RULE_FS, req);
	return check_fs(t, mnt, dentry, req, 0);
}

SEC("lsm/inode_setattr")
int BPF_PROG(bpfbox_inode_setattr, struct dentry *dentry, struct iattr *attr)
{
	return check_setattr(dentry, attr);
}

SEC("lsm/inode_setattr")
int BPF_PROG(bpfbox_inode_setattr_idmap, struct mnt_idmap *idmap, struct dentry *dentry, struct iattr *attr)
{
	return check_setattr(dentry, attr);
}

/* Changing an extended attribute needs `write` in the `user.` namespace (the file's own
 * data) and `setattr` in every other (`security.`, `trusted.`, `system.`: labels, file
 * capabilities, POSIX ACLs, which change who may do what with the file).  Like time updates,
 * these hooks have a dentry and no mount: mount_of() finds it.  `name` NULL: `setattr`. */
static __always_inline int check_xattr(struct dentry *dentry, const char *name, __u64 req)
{
	struct task_state *t = confined_current();
	struct vfsmount *mnt;
	char prefix[6] = {};

	if (!t || overlay_at_work(t))
		return 0;
	if (!req) {
		bpf_probe_read_kernel_str(prefix, sizeof(prefix), name);
		/* Byte by byte: a memcmp() would be a call to an undefined kernel symbol. */
		if (prefix[0] == 'u' && prefix[1] == 's' && prefix[2] == 'e' && prefix[3] == 'r' && prefix[4] == '.')
			req = FS_WRITE;
		else
			req = FS_SETATTR;
	}
	mnt = mount_of(dentry);
	if (!mnt)
		return unresolvable(t, RULE_FS, req);
	return check_fs(t, mnt, dentry, req, 0);
}

SEC("lsm/inode_setxattr")
int BPF_PROG(bpfbox_inode_setxattr_userns, struct user_namespace *userns, struct dentry *dentry, const char *name,
	     const void *value, __u64 size, int flags)
{
	return check_xattr(dentry, name, 0);
}

SEC("lsm/inode_setxattr")
int BPF_PROG(bpfbox_inode_setxattr_idmap, struct mnt_idmap *idmap, struct dentry *dentry, const char *name,
	     const void *value, __u64 size, int flags)
{
	return check_xattr(dentry, name, 0);
}

SEC("lsm/inode_removexattr")
int BPF_PROG(bpfbox_inode_removexattr_userns, struct user_namespace *userns, struct dentry *dentry, const char *name)
{
	return check_xattr(dentry, name, 0);
}

SEC("lsm/inode_removexattr")
int BPF_PROG(bpfbox_inode_removexattr_idmap, struct mnt_idmap *idmap, struct dentry *dentry, const char *name)
{
	return check_xattr(dentry, name, 0);
}

/* 6.2+: POSIX ACLs no longer go through the xattr hooks. */
SEC("lsm/inode_set_acl")
int BPF_PROG(bpfbox_inode_set_acl_userns, struct user_namespace *userns, struct dentry *dentry, const char *acl_name,
	     struct posix_acl *kacl)
{
	return check_xattr(dentry, acl_name, FS_SETATTR);
}

SEC("lsm/inode_set_acl")
int BPF_PROG(bpfbox_inode_set_acl_idmap, struct mnt_idmap *idmap, struct dentry *dentry, const char *acl_name,
	     struct posix_acl *kacl)
{
	return check_xattr(dentry, acl_name, FS_SETATTR);
}

SEC("lsm/inode_remove_acl")
int BPF_PROG(bpfbox_inode_remove_acl_userns, struct user_namespace *userns, struct dentry *dentry, const char *acl_name)
{
	return check_xattr(dentry, acl_name, FS_SETATTR);
}

SEC("lsm/inode_remove_acl")
int BPF_PROG(bpfbox_inode_remove_acl_idmap, struct mnt_idmap *idmap, struct dentry *dentry, const char *acl_name)
{
	return check_xattr(dentry, acl_name, FS_SETATTR);
}

/* 6.2+: ftruncate() and open(O_TRUNC) reach file_truncate instead of path_truncate. */
SEC("lsm/file_truncate")
int BPF_PROG(bpfbox_file_truncate, struct file *file)
{
	struct task_state *t = confined_current();

	return t ? check_file(t, file, FS_WRITE, 0) : 0;
}

SEC("lsm/path_mknod")
int BPF_PROG(bpfbox_path_mknod, const struct path *dir, struct dentry *dentry, unsigned short mode, unsigned int dev)
{
	struct task_state *t = confined_current();

	return t ? check_fs(t, BPF_CORE_READ(dir, mnt), dentry, FS_CREATE, 0) : 0;
}

SEC("lsm/path_mkdir")
int BPF_PROG(bpfbox_path_mkdir, const struct path *dir, struct dentry *dentry, unsigned short mode)
{
	struct task_state *t = confined_current();

	return t ? check_fs(t, BPF_CORE_READ(dir, mnt), dentry, FS_CREATE, 0) : 0;
}

SEC("lsm/path_symlink")
int BPF_PROG(bpfbox_path_symlink, const struct path *dir, struct dentry *dentry, const char *old_name)
{
	struct task_state *t = confined_current();

	return t ? check_fs(t, BPF_CORE_READ(dir, mnt), dentry, FS_CREATE, 0) : 0;
}

SEC("lsm/path_unlink")
int BPF_PROG(bpfbox_path_unlink, const struct path *dir, struct dentry *dentry)
{
	struct task_state *t = confined_current();

	return t ? check_fs(t, BPF_CORE_READ(dir, mnt), dentry, FS_RM, 0) : 0;
}

SEC("lsm/path_rmdir")
int BPF_PROG(bpfbox_path_rmdir, const struct path *dir, struct dentry *dentry)
{
	struct task_state *t = confined_current();

	return t ? check_fs(t, BPF_CORE_READ(dir, mnt), dentry, FS_RM, 0) : 0;
}

SEC("lsm/path_link")
int BPF_PROG(bpfbox_path_link, struct dentry *old_dentry, const struct path *new_dir, struct dentry *new_dentry)
{
	struct task_state *t = confined_current();
	struct vfsmount *mnt;
	int ret;

	if (!t)
		return 0;
	mnt = BPF_CORE_READ(new_dir, mnt);
	ret = check_path(t, mnt, old_dentry, FS_LINK, MOVING);
	return ret ? ret : check_fs(t, mnt, new_dentry, FS_CREATE, 0);
}

SEC("lsm/path_rename")
int BPF_PROG(bpfbox_path_rename, const struct path *old_dir, struct dentry *old_dentry,
	     const struct path *new_dir, struct dentry *new_dentry, unsigned int flags)
{
	struct task_state *t = confined_current();
	struct vfsmount *mnt;
	__u64 to_new = FS_CREATE;
	int ret;

	if (!t)
		return 0;
	mnt = BPF_CORE_READ(old_dir, mnt);
	/* Renaming over an existing file removes it; an exchange moves both ways (and both
	 * names get another path). */
	if (BPF_CORE_READ(new_dentry, d_inode))
		to_new |= FS_RM;
	ret = check_path(t, mnt, old_dentry, FS_RM | ((flags & RENAME_EXCHANGE) ? FS_CREATE : 0), MOVING);
	return ret ? ret : check_path(t, mnt, new_dentry, to_new, (flags & RENAME_EXCHANGE) ? MOVING : 0);
}

#endif /* BPFBOX_HOOKS_FS_BPF_H */
