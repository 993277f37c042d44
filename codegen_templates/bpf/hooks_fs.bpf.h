/* SPDX-License-Identifier: GPL-2.0 */
/*
 * File-system hooks (fs rules; opens and stats of /proc/PID files are proc rules).
 */
#ifndef BPFBOX_HOOKS_FS_BPF_H
#define BPFBOX_HOOKS_FS_BPF_H

#include "checks.bpf.h"

static __always_inline __u64 open_flags(struct file *file)
{
	__u32 mode = BPF_CORE_READ(file, f_mode);
	unsigned int flags = BPF_CORE_READ(file, f_flags);
	__u64 req = 0;

	if (mode & FMODE_EXEC)
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
	task = proc_task(BPF_CORE_READ(file, f_inode));
	if (task)
		return check_task(t, task, RULE_PROC, proc_flags(req), 0);
	return check_file(t, file, req, !(req & FS_EXEC));
}

SEC("lsm/inode_getattr")
int BPF_PROG(bpfbox_inode_getattr, const struct path *path)
{
	struct task_state *t = confined_current();
	struct task_struct *task;

	if (!t)
		return 0;
	task = proc_task(BPF_CORE_READ(path, dentry, d_inode));
	if (task)
		return check_task(t, task, RULE_PROC, PROC_GETATTR, 0);
	return check_fs(t, BPF_CORE_READ(path, mnt), BPF_CORE_READ(path, dentry), FS_GETATTR, 1);
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

SEC("lsm/mmap_file")
int BPF_PROG(bpfbox_mmap_file, struct file *file, unsigned long reqprot, unsigned long prot, unsigned long flags)
{
	struct task_state *t;

	if (!file || !(prot & PROT_EXEC))
		return 0;
	t = confined_current();
	return t && !loading_image() ? check_file(t, file, FS_EXEC, 0) : 0;
}

SEC("lsm/file_mprotect")
int BPF_PROG(bpfbox_file_mprotect, struct vm_area_struct *vma, unsigned long reqprot, unsigned long prot)
{
	struct task_state *t;
	struct file *file;

	if (!(prot & PROT_EXEC))
		return 0;
	file = BPF_CORE_READ(vma, vm_file);
	if (!file)
		return 0;
	t = confined_current();
	return t ? check_file(t, file, FS_EXEC, 0) : 0;
}

SEC("lsm/file_ioctl")
int BPF_PROG(bpfbox_file_ioctl, struct file *file, unsigned int cmd, unsigned long arg)
{
	struct task_state *t = confined_current();

	return t ? check_file(t, file, FS_IOCTL, 1) : 0;
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

/* Time updates reach only inode_setattr, which has no mount: the path is taken under the
 * mount of the task's working directory when the file lives there, else the file
 * system's first mount (see docs/language.md, "Known gaps"). */

static __always_inline struct vfsmount *mount_of(struct dentry *dentry)
{
	struct super_block *sb = BPF_CORE_READ(dentry, d_sb);
	struct task_struct *task = bpf_get_current_task_btf();
	struct fs_struct *fs = BPF_CORE_READ(task, fs);
	struct vfsmount *mnt = BPF_CORE_READ(fs, pwd.mnt);
	struct list_head *first;

	if (mnt && BPF_CORE_READ(mnt, mnt_sb) == sb)
		return mnt;
	mnt = BPF_CORE_READ(fs, root.mnt);
	if (mnt && BPF_CORE_READ(mnt, mnt_sb) == sb)
		return mnt;
	first = BPF_CORE_READ(sb, s_mounts.next);
	if (!first || (void *)first == (void *)sb + bpf_core_field_offset(struct super_block, s_mounts))
		return 0;
	return (void *)first - bpf_core_field_offset(struct mount, mnt_instance) +
	       bpf_core_field_offset(struct mount, mnt);
}

/* The programs of hooks whose prototype changed between kernels come in variants, one per
 * prototype (contract/hook_abi.py); the runtime loads only the one matching the running
 * kernel's BTF.  Each variant hands its arguments to one shared body. */

static __always_inline int check_setattr(struct dentry *dentry, struct iattr *attr)
{
	struct task_state *t;
	struct vfsmount *mnt;

	if (!(BPF_CORE_READ(attr, ia_valid) & ATTR_TIMES))
		return 0;
	t = confined_current();
	if (!t)
		return 0;
	mnt = mount_of(dentry);
	if (!mnt)
		return unresolvable(t, RULE_FS, FS_SETATTR);
	return check_fs(t, mnt, dentry, FS_SETATTR, 0);
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

	if (!t)
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
	ret = check_fs(t, mnt, old_dentry, FS_LINK, 0);
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
	/* Renaming over an existing file removes it; an exchange moves both ways. */
	if (BPF_CORE_READ(new_dentry, d_inode))
		to_new |= FS_RM;
	ret = check_fs(t, mnt, old_dentry, FS_RM | ((flags & 2) ? FS_CREATE : 0), 0);
	return ret ? ret : check_fs(t, mnt, new_dentry, to_new, 0);
}

#endif /* BPFBOX_HOOKS_FS_BPF_H */
