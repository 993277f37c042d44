/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Checks: from an object (a file, a path, a process, a socket's family) to the policy's
 * verdict, through decide_path (the path rules' tables, rules.bpf.h) and the policy's
 * decide_KIND functions for the other kinds (defined before this file).
 */
#ifndef BPFBOX_CHECKS_BPF_H
#define BPFBOX_CHECKS_BPF_H

#include "path.bpf.h"
#include "overlay.bpf.h"
#include "verdict.bpf.h"
#include "rules.bpf.h"

/* Refuse what bpfbox protects whatever the rules say, taint mode or not (docs/language.md,
 * "Self-protection"): `what` is a PROTECTED_* number, `target` a process or 0. */
static __noinline int protect(struct task_state *t, __u32 what, __u32 target)
{
	struct object o = { .kind = RULE_SELF_PROTECTION, .number = what, .target_pid = target };

	if (!t)
		return 0;
	return refuse(RULE_SELF_PROTECTION, 0, NO_RULE, REASON_SELF_PROTECTION, &o);
}

/* How a path check treats an object: PASS_INTERNAL lets one on a kernel-internal mount (a
 * pipe, a socket) pass (a detached one never does); MOVING: the object gets another path (the
 * old name of a rename, a hard link's source), so a deny rule that can match it or anything
 * beneath it refuses too (guarding_rule). */
enum { PASS_INTERNAL = 1, MOVING = 2 };

/* Only a directory has paths beneath it (a negative dentry has none yet). */
static __always_inline int is_directory(struct dentry *dentry)
{
	return (BPF_CORE_READ(dentry, d_inode, i_mode) & S_IFMT) == S_IFDIR;
}

/* Check `req` of a rule kind with a path object (fs; ioctl, whose `number` is the command) on
 * the object at (mnt, dentry), treated as `how` says.  Inlined into one function per kind
 * (a BPF call takes at most 5 arguments). */
static __always_inline int check_kind_path(struct task_state *t, struct vfsmount *mnt, struct dentry *dentry,
					   __u32 rule_kind, __u64 req, __u32 number, __u32 how)
{
	struct decision d = {};
	struct object o = { .kind = rule_kind, .has_path = 1, .number = number };
	struct scratch *s = scratch();
	struct super_block *sb = BPF_CORE_READ(dentry, d_sb);
	unsigned long magic = BPF_CORE_READ(sb, s_magic);
	__u32 state, guard;
	int status, refused;

	if (!t)
		return 0;
	status = resolve_path(s, mnt, dentry);
	/* bpffs holds the pinned profiles: no rule reaches them (self-protection). */
	if (magic == BPF_FS_MAGIC) {
		if (status != WALK_OK)
			o.has_path = 0;
		return refuse(rule_kind, req, NO_RULE, REASON_SELF_PROTECTION, &o);
	}
	if (status == WALK_INTERNAL && (how & PASS_INTERNAL))
		return 0;
	if (status != WALK_OK) {
		/* As unresolvable() decides, with this frame's decision and object rather than a
		 * call's: a call would add its frame to this one's in the chain below verdict(). */
		o.has_path = 0;
		o.number = 0;
		return verdict(t, &d, rule_kind, req, &o);
	}
	state = fs_match(s);
	guard = (how & MOVING) ? guarding_rule(state, is_directory(dentry)) : 0;
	if (guard && !untainted(t))
		return refuse(rule_kind, req, guard, REASON_GUARDS_BENEATH, &o);
	decide_path(t, &d, req, state, rule_kind == RULE_IOCTL ? PATH_KIND_IOCTL : PATH_KIND_FS);
	refused = verdict(t, &d, rule_kind, req, &o);
	if (!refused)
		note_overlay(t, sb, magic);
	return refused;
}

/* Check fs `req` on the object at (mnt, dentry), treated as `how` says. */
static __noinline int check_path(struct task_state *t, struct vfsmount *mnt, struct dentry *dentry, __u64 req,
				 __u32 how)
{
	return check_kind_path(t, mnt, dentry, RULE_FS, req, 0, how);
}

/* Check `req` on the object at (mnt, dentry); internal_ok: see PASS_INTERNAL. */
static __always_inline int check_fs(struct task_state *t, struct vfsmount *mnt, struct dentry *dentry, __u64 req,
				    int internal_ok)
{
	return check_path(t, mnt, dentry, req, internal_ok ? PASS_INTERNAL : 0);
}

static __always_inline int check_file(struct task_state *t, struct file *file, __u64 req, int internal_ok)
{
	return check_fs(t, BPF_CORE_READ(file, f_path.mnt), BPF_CORE_READ(file, f_path.dentry), req, internal_ok);
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

/* Is `file`'s resolved path the profile program's (CFG_PROFILE_PATH)? */
static __noinline int same_path(struct file *file)
{
	struct scratch *s = scratch();
	__u32 i, start;

	if (!s || resolve_path(s, BPF_CORE_READ(file, f_path.mnt), BPF_CORE_READ(file, f_path.dentry)) != WALK_OK)
		return 0;
	start = s->start;
	for (i = 0; i < PROFILE_PATH_LEN; i++) {
		char c = s->path[path_index(start + i)];

		if (c != CFG_PROFILE_PATH[i])
			return 0;
		if (!c)
			return 1;
	}
	return 0;
}

/* Is `file` the profile's program?  Cheap tests first: most files are not. */
static __always_inline int is_profile_program(struct file *file)
{
	if (same_inode(file))
		return 1;
	return BPF_CORE_READ(file, f_path.dentry, d_name.len) == CFG_PROFILE_NAME_LEN && same_path(file);
}

/* Is `task` a thread of the current process? */
static __always_inline int same_process(struct task_struct *task)
{
	return BPF_CORE_READ(task, tgid) == BPF_CORE_READ(bpf_get_current_task_btf(), tgid);
}

/* `self` is the process itself or any process running the profile's program. */
static __always_inline int is_self(struct task_struct *task, struct file *exe)
{
	return same_process(task) || (exe && same_inode(exe));
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
