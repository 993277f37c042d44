/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Tasks: inheritance (children and threads start confined, with the parent's taint), the
 * live-task count, signals, ptrace, and changes to other processes (proc rules).
 */
#ifndef BPFBOX_HOOKS_TASK_BPF_H
#define BPFBOX_HOOKS_TASK_BPF_H

#include "checks.bpf.h"

/* ---- Inheritance: children and threads start confined, with the parent's taint. ---- */

SEC("lsm/task_alloc")
int BPF_PROG(bpfbox_task_alloc, struct task_struct *task, unsigned long clone_flags)
{
	struct task_state *parent = confined_current();
	struct task_state *child;
	__u32 i;

	if (!parent)
		return 0;
	child = bpf_task_storage_get(&TASKS_MAP, task, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!child)
		return -ENOMEM; /* fail closed: no unconfined child */
	confine(child);
	child->tainted = tainted(parent);
	/* A forked child is inside the same calls as its parent; a new thread starts afresh. */
	if (!(clone_flags & CLONE_THREAD))
		for (i = 0; i < MAX_CONTEXTS; i++) {
			child->depth[i] = parent->depth[i];
			child->entry_sp[i] = parent->entry_sp[i];
			child->entry_ret[i] = parent->entry_ret[i];
		}
	return 0;
}

/* The last reference to a task is gone (also for a fork that failed after task_alloc): one
 * confined task less.  Task storage is freed after this hook, so the state is still there.
 * While a profile is being replaced, its old and new programs both run on the same (reused)
 * maps: clearing `confined` makes the second one count nothing. */
SEC("lsm/task_free")
int BPF_PROG(bpfbox_task_free, struct task_struct *task)
{
	struct task_state *t = state_of(task);

	if (t && t->confined) {
		t->confined = 0;
		count(STAT_CONFINED_TASKS, -1);
	}
	return 0;
}

/* ---- Signals, ptrace. ---- */

/* A signal number no rule can name (above 63: the real-time signal 64, SIGRTMAX): refused
 * like an access no rule allows, unless a taint-mode policy is not enforcing yet. */
static __noinline int unnamed_signal(struct task_state *t, struct task_struct *target, int sig)
{
	struct object o = { .kind = RULE_SIGNAL, .number = sig };

	if (!t || !target || untainted(t))
		return 0;
	o.target_pid = BPF_CORE_READ(target, tgid);
	return refuse(RULE_SIGNAL, 0, NO_RULE, REASON_NO_RULE, &o);
}

SEC("lsm/task_kill")
int BPF_PROG(bpfbox_task_kill, struct task_struct *p, struct kernel_siginfo *info, int sig, const struct cred *cred)
{
	struct task_state *t = confined_current();

	if (!t)
		return 0;
	if (sig < 0 || sig > 63)
		return unnamed_signal(t, p, sig);
	return check_task(t, p, RULE_SIGNAL, 1ULL << sig, sig);
}

SEC("lsm/ptrace_access_check")
int BPF_PROG(bpfbox_ptrace_access_check, struct task_struct *child, unsigned int mode)
{
	struct task_state *t = confined_current();
	__u64 req = 0;

	if (!t)
		return 0;
	if (mode & PTRACE_MODE_ATTACH)
		req |= PTRACE_ATTACH;
	else
		req |= PTRACE_READ;
	return check_task(t, child, RULE_PTRACE, req, 0);
}

SEC("lsm/ptrace_traceme")
int BPF_PROG(bpfbox_ptrace_traceme, struct task_struct *parent)
{
	struct task_state *t = confined_current();

	return t ? check_task(t, parent, RULE_PTRACE, PTRACE_ATTACH, 0) : 0;
}

/* ---- Changing other processes: proc `write` on the target's program. ---- */

/* Changing how another process runs (its nice value, scheduling policy or CPU affinity, I/O
 * priority, memory placement) writes to that process as much as its /proc files do: it can
 * starve it.  The caller's own threads need no rule (programs set their own priorities). */
static __always_inline int check_change(struct task_struct *p)
{
	struct task_state *t = confined_current();

	if (!t || !p || same_process(p))
		return 0;
	return check_task(t, p, RULE_PROC, PROC_WRITE, 0);
}

SEC("lsm/task_setnice")
int BPF_PROG(bpfbox_task_setnice, struct task_struct *p, int nice)
{
	return check_change(p);
}

SEC("lsm/task_setioprio")
int BPF_PROG(bpfbox_task_setioprio, struct task_struct *p, int ioprio)
{
	return check_change(p);
}

SEC("lsm/task_setscheduler")
int BPF_PROG(bpfbox_task_setscheduler, struct task_struct *p)
{
	return check_change(p);
}

SEC("lsm/task_movememory")
int BPF_PROG(bpfbox_task_movememory, struct task_struct *p)
{
	return check_change(p);
}

/* prlimit(2) on another thread or process: reading its resource limits is proc `read`,
 * setting them (RLIMIT_CPU kills it) proc `write`.  The hook is given the two credentials,
 * not the target: a thread of the caller's process shares its credentials (the same
 * object), and any other target is unknown, so only a rule for `any` target allows it. */
SEC("lsm/task_prlimit")
int BPF_PROG(bpfbox_task_prlimit, const struct cred *cred, const struct cred *tcred, unsigned int flags)
{
	struct task_state *t = confined_current();
	struct decision d = {};
	struct object o = { .kind = RULE_PROC };
	__u64 req = 0;

	if (!t || cred == tcred)
		return 0;
	if (flags & LSM_PRLIMIT_READ)
		req |= PROC_READ;
	if (flags & LSM_PRLIMIT_WRITE)
		req |= PROC_WRITE;
	decide_proc(t, &d, req, 0, 0);
	return verdict(t, &d, RULE_PROC, req, &o);
}

#endif /* BPFBOX_HOOKS_TASK_BPF_H */
