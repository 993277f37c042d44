/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Tasks: inheritance (children and threads start confined, with the parent's taint), the
 * live-task count, signals and ptrace.
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

#endif /* BPFBOX_HOOKS_TASK_BPF_H */
