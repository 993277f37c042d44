/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Function contexts: the per-thread call depth of each probed function, counted by the
 * policy's uprobe/uretprobe (func) or fentry/fexit (kfunc) pairs.
 *
 * fexit always runs, but a uretprobe may not: the kernel keeps at most 64 nested return
 * probes per thread (deeper calls return unseen), and longjmp or a C++ exception unwinds
 * past them.  So a `#[func]` context also remembers where its outermost call entered, the
 * user stack pointer and the return address stored there, and holds only while that call
 * still runs: the thread's stack pointer is at or below the entry's (the stack grows down)
 * and the slot still holds the return address, or the uretprobe trampoline's address that
 * the kernel put in its place (a later call at that depth from another place overwrites
 * it).  What cannot be read counts as "not inside".
 */
#ifndef BPFBOX_CONTEXTS_BPF_H
#define BPFBOX_CONTEXTS_BPF_H

#include "state.bpf.h"

/* Is the thread inside a call to the kernel function of `context`? */
static __always_inline int inside_kernel_call(struct task_state *t, __u32 context)
{
	return context < MAX_CONTEXTS && t->depth[context] > 0;
}

/* Where the kernel sends a probed function's return (its uprobes area), 0 if none yet. */
static __always_inline __u64 uretprobe_trampoline(void)
{
	struct task_struct *task = bpf_get_current_task_btf();

	return BPF_CORE_READ(task, mm, uprobes_state.xol_area, vaddr);
}

/* Is the outermost recorded call of `context` still running at user stack pointer `sp`? */
static __always_inline int call_running(struct task_state *t, __u32 context, __u64 sp)
{
	__u64 entry_sp, return_address = 0;

	if (context >= MAX_CONTEXTS)
		return 0;
	entry_sp = t->entry_sp[context];
	if (!sp || !entry_sp || sp > entry_sp)
		return 0;
	if (bpf_probe_read_user(&return_address, sizeof(return_address), (void *)entry_sp))
		return 0;
	return return_address == t->entry_ret[context] || return_address == uretprobe_trampoline();
}

/* Is the thread inside a call to the program function of `context`? */
static __always_inline int inside_call(struct task_state *t, __u32 context)
{
	return inside_kernel_call(t, context) && call_running(t, context, current_user_sp());
}

static __always_inline int enter_kernel_context(__u32 context)
{
	struct task_state *t = confined_current();

	if (t && context < MAX_CONTEXTS && t->depth[context] < 0xffffffff)
		t->depth[context] += 1;
	return 0;
}

static __always_inline int leave_kernel_context(__u32 context)
{
	struct task_state *t = confined_current();

	if (t && context < MAX_CONTEXTS && t->depth[context] > 0)
		t->depth[context] -= 1;
	return 0;
}

/* uprobe at the function's entry: `regs` are the user registers, the return address is at
 * the stack pointer.  A depth whose outermost call no longer runs (its return went unseen)
 * is stale: this call starts afresh. */
static __always_inline int enter_context(struct pt_regs *regs, __u32 context)
{
	struct task_state *t = confined_current();
	__u64 sp = regs->sp, return_address = 0; /* the probe's context: a direct read */

	if (!t || context >= MAX_CONTEXTS)
		return 0;
	if (t->depth[context] > 0 && call_running(t, context, sp)) {
		if (t->depth[context] < 0xffffffff)
			t->depth[context] += 1;
		return 0;
	}
	/* Unreadable: no recorded entry, so the context does not hold (fail closed). */
	if (bpf_probe_read_user(&return_address, sizeof(return_address), (void *)sp))
		sp = 0;
	t->entry_sp[context] = sp;
	t->entry_ret[context] = return_address;
	t->depth[context] = 1;
	return 0;
}

/* uretprobe after the function returned: the stack pointer is above the entry's.  Above the
 * outermost entry, the outermost call returned, whatever inner returns went unseen. */
static __always_inline int leave_context(struct pt_regs *regs, __u32 context)
{
	struct task_state *t = confined_current();

	if (!t || context >= MAX_CONTEXTS || t->depth[context] == 0)
		return 0;
	if (regs->sp > t->entry_sp[context])
		t->depth[context] = 0;
	else
		t->depth[context] -= 1;
	return 0;
}

/* A new program image, or a new thread: inside no call. */
static __always_inline void leave_every_context(struct task_state *t)
{
	__u32 i;

	for (i = 0; i < MAX_CONTEXTS; i++) {
		t->depth[i] = 0;
		t->entry_sp[i] = 0;
		t->entry_ret[i] = 0;
	}
}

#endif /* BPFBOX_CONTEXTS_BPF_H */
