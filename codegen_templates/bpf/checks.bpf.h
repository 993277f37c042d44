/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Checks: from an object (a file, a path, a process, a socket's family) to the policy's
 * verdict, through the policy's decide_KIND functions (defined before this file).
 */
#ifndef BPFBOX_CHECKS_BPF_H
#define BPFBOX_CHECKS_BPF_H

#include "path.bpf.h"
#include "verdict.bpf.h"

/* Check `req` of a rule kind with a path object (fs, ioctl: `number` is the command) on the
 * object at (mnt, dentry).  Inlined into one function per kind (BPF calls take 5 arguments). */
static __always_inline int check_path(struct task_state *t, struct vfsmount *mnt, struct dentry *dentry,
				      __u32 rule_kind, __u64 req, __u32 number, int detached_ok)
{
	struct decision d = {};
	struct object o = { .kind = rule_kind, .has_path = 1, .number = number };
	struct scratch *s = scratch();
	__u32 state;
	int status;

	if (!t)
		return 0;
	status = resolve_path(s, mnt, dentry);
	if (status == WALK_DETACHED && detached_ok)
		return 0;
	if (status != WALK_OK)
		return unresolvable(t, rule_kind, req);
	state = fs_match(s);
	if (rule_kind == RULE_IOCTL)
		decide_ioctl(t, &d, req, state);
	else
		decide_fs(t, &d, req, state);
	return verdict(t, &d, rule_kind, req, &o);
}

/* Check `req` on the object at (mnt, dentry). */
static __noinline int check_fs(struct task_state *t, struct vfsmount *mnt, struct dentry *dentry, __u64 req,
			       int detached_ok)
{
	return check_path(t, mnt, dentry, RULE_FS, req, 0, detached_ok);
}

static __always_inline int check_file(struct task_state *t, struct file *file, __u64 req, int detached_ok)
{
	return check_fs(t, BPF_CORE_READ(file, f_path.mnt), BPF_CORE_READ(file, f_path.dentry), req, detached_ok);
}

/* The task behind a /proc/PID inode, or NULL for other inodes. */
static __always_inline struct task_struct *proc_task(struct inode *inode)
{
	struct proc_inode *pi;
	struct pid *pid;
	struct hlist_node *first;

	if (BPF_CORE_READ(inode, i_sb, s_magic) != PROC_SUPER_MAGIC)
		return 0;
	pi = (void *)inode - bpf_core_field_offset(struct proc_inode, vfs_inode);
	pid = BPF_CORE_READ(pi, pid);
	if (!pid)
		return 0;
	first = BPF_CORE_READ(pid, tasks[0].first);
	if (!first)
		return 0;
	return (void *)first - bpf_core_field_offset(struct task_struct, pid_links);
}

/* Does `exe` (a target's program) match the target globs?  Resolves its path into the
 * scratch buffer (so events show it) and returns the target DFA's final state. */
static __always_inline __u32 target_state(struct file *exe, struct object *o)
{
	struct scratch *s = scratch();

	if (!exe || resolve_path(s, BPF_CORE_READ(exe, f_path.mnt), BPF_CORE_READ(exe, f_path.dentry)) != WALK_OK)
		return 0;
	o->has_path = 1;
	return target_match(s);
}

/* Is the file being executed the profile's program?  Inode identity first (robust to
 * symlinks and hard links); the resolved path too, for file systems such as overlayfs whose
 * inode numbers userspace sees differently. */
static __always_inline int same_inode(struct file *file)
{
	struct inode *inode = BPF_CORE_READ(file, f_inode);

	return BPF_CORE_READ(inode, i_ino) == CFG_PROFILE_INO &&
	       BPF_CORE_READ(inode, i_sb, s_dev) == CFG_PROFILE_DEV;
}

/* `self` is the process itself or any process running the profile's program. */
static __always_inline int is_self(struct task_struct *task, struct file *exe)
{
	struct task_struct *current = bpf_get_current_task_btf();

	if (BPF_CORE_READ(task, tgid) == BPF_CORE_READ(current, tgid))
		return 1;
	return exe && same_inode(exe);
}

static __noinline int check_task(struct task_state *t, struct task_struct *task, __u32 rule_kind, __u64 req, __u32 number)
{
	struct decision d = {};
	struct object o = { .kind = rule_kind, .number = number };
	struct file *exe;
	__u32 state;
	int same;

	if (!t || !task)
		return 0;
	o.target_pid = BPF_CORE_READ(task, tgid);
	exe = BPF_CORE_READ(task, mm, exe_file);
	same = is_self(task, exe);
	state = target_state(exe, &o);
	if (rule_kind == RULE_PROC)
		decide_proc(t, &d, req, same, state);
	else if (rule_kind == RULE_SIGNAL)
		decide_signal(t, &d, req, same, state);
	else
		decide_ptrace(t, &d, req, same, state);
	return verdict(t, &d, rule_kind, req, &o);
}

/* Check `req` of a socket of `family`. */
static __noinline int check_net(struct task_state *t, __u32 family, __u64 req)
{
	struct decision d = {};
	struct object o = { .kind = RULE_NET, .number = family };

	if (!t)
		return 0;
	decide_net(t, &d, req, family);
	return verdict(t, &d, RULE_NET, req, &o);
}

#endif /* BPFBOX_CHECKS_BPF_H */
