/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Verdict: what the rules said about one access (struct decision, filled by the policy's
 * decide_KIND functions through apply()), turned into 0 or -EPERM and events.
 * Needs TAINT_MODE (1 when the policy has taint rules) defined before it.
 */
#ifndef BPFBOX_VERDICT_BPF_H
#define BPFBOX_VERDICT_BPF_H

#include "path.bpf.h"

#ifndef TAINT_MODE
#error "verdict.bpf.h needs TAINT_MODE (the policy's)"
#endif

/* What the active rules say about one access. */
struct decision {
	__u64 allow;
	__u64 deny;
	__u64 taint;
	__u64 audit;
	__u64 inactive;
	__u32 allow_rule;
	__u32 deny_rule;
	__u32 taint_rule;
	__u32 audit_rule;
	__u32 inactive_rule;
};

/* The object of an access, for events: a path in the scratch buffer and/or numbers. */
struct object {
	__u32 kind;
	__u32 number;
	__u32 target_pid;
	__u32 has_path;
};

/* Record the flags a rule grants, and the rule: the first one that grants any, or with
 * `last_wins` the last one.  A bpf_loop callback visits rules backwards with `last_wins`
 * instead of testing `*rule`: kernels before 6.8 verify a callback for its first iteration
 * only, take `*rule` for the 0 it starts as, and drop the test as dead code (6.1 named the
 * last matching rule in events). */
static __always_inline void note_rule(__u64 *flags, __u32 *rule, __u32 id, __u64 granted, int last_wins)
{
	*flags |= granted;
	if (last_wins || !*rule)
		*rule = id;
}

/* A rule whose object matched: record what it says, if its context holds. */
static __always_inline void apply(struct decision *d, __u64 req, __u32 id, int decision, int audit,
				  __u64 flags, int in_context, int last_wins)
{
	if (!(flags & req))
		return;
	if (!in_context) {
		if (decision == DECISION_ALLOW)
			note_rule(&d->inactive, &d->inactive_rule, id, flags, last_wins);
		return;
	}
	if (audit)
		note_rule(&d->audit, &d->audit_rule, id, flags, last_wins);
	if (decision == DECISION_ALLOW)
		note_rule(&d->allow, &d->allow_rule, id, flags, last_wins);
	else if (decision == DECISION_DENY)
		note_rule(&d->deny, &d->deny_rule, id, flags, last_wins);
	else if (decision == DECISION_TAINT)
		note_rule(&d->taint, &d->taint_rule, id, flags, last_wins);
}

/* Pairs of the auxiliary vector looked at for AT_ENTRY: x86-64's kernels put it about
 * tenth, after the vDSO, hardware and program-header entries. */
#define AUXV_PAIRS_SEARCHED 20

/* Where the task's executable was loaded: its entry point (AT_ENTRY, e_entry plus the load
 * bias, which is what every kernel since the auxiliary vector has put there), 0 if absent. */
static __always_inline __u64 exe_entry(struct task_struct *task)
{
	struct mm_struct *mm = BPF_CORE_READ(task, mm);
	__u64 pair[2];

	if (!mm)
		return 0;
	for (int i = 0; i < AUXV_PAIRS_SEARCHED; i++) {
		if (bpf_probe_read_kernel(pair, sizeof(pair), (void *)mm + bpf_core_field_offset(struct mm_struct, saved_auxv) + i * sizeof(pair)))
			return 0;
		if (pair[0] == AT_ENTRY)
			return pair[1];
		if (pair[0] == AT_NULL)
			return 0;
	}
	return 0;
}

/* Copy LEARN_STACK_WINDOW bytes of the user stack from `sp` up into `window`; the bytes
 * copied, or a negative errno.  The helper cannot fault pages in, and the page above a
 * shallow stack may never have been touched (exec leaves a random gap below the
 * environment strings; seen failing about one copy in ten on the host), so when the whole
 * copy fails, the part in the stack pointer's own page, which is in use, is copied alone:
 * an untouched page holds nothing to find. */
static __always_inline long copy_stack_top(unsigned char *window, __u64 sp)
{
	__u64 in_page = PAGE_SIZE - (sp & (PAGE_SIZE - 1));
	long error;

	if (!sp)
		return -EFAULT;
	if (!bpf_probe_read_user(window, LEARN_STACK_WINDOW, (void *)sp))
		return LEARN_STACK_WINDOW;
	if (in_page > LEARN_STACK_WINDOW)
		in_page = LEARN_STACK_WINDOW;
	error = bpf_probe_read_user(window, in_page, (void *)sp);
	return error ? error : in_page;
}

/* What a learning run (CFG_LEARN) adds to an event: the acting task's executable, resolved
 * as paths are (the event's object is already copied out of the scratch buffer), and its
 * user stack with each frame as build ID and file offset, computed by the kernel.  That
 * walk follows frame pointers and stops at a libc function that keeps data in rbp across
 * its system call (glibc's open64 does), before any of the program's frames: so the event
 * also carries a copy of the stack above the stack pointer, straight into the ring buffer's
 * record (it is far bigger than the BPF stack), and the executable's load address, from
 * which the host finds the return addresses into the program (runtime/learn/scan.py). */
static __always_inline void learn_extras(struct learn_event *l)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct file *exe = BPF_CORE_READ(task, mm, exe_file);
	struct scratch *s = scratch();

	l->exe[0] = 0;
	if (exe && s && resolve_path(s, BPF_CORE_READ(exe, f_path.mnt), BPF_CORE_READ(exe, f_path.dentry)) == WALK_OK)
		bpf_probe_read_kernel_str(l->exe, sizeof(l->exe), &s->path[path_index(s->start)]);
	l->stack_size = bpf_get_task_stack(task, l->stack, sizeof(l->stack), BPF_F_USER_STACK | BPF_F_USER_BUILD_ID);
	l->exe_entry = exe_entry(task);
	l->user_sp = current_user_sp();
	l->window_size = copy_stack_top(l->window, l->user_sp);
}

/* Whether submitting an event wakes the reader: only once the ring is a quarter full.  The
 * reader consumes after every wait of at most POLL_MS (runtime/cli.py) anyway, and a wakeup
 * per event costs the acting task an interrupt and the reader a context switch for every
 * access that complain mode reports.  The three quarters above the threshold hold what is
 * made while a woken reader drains. */
static __always_inline __u64 wakeup(void)
{
	__u64 waiting = bpf_ringbuf_query(&EVENTS_MAP, BPF_RB_AVAIL_DATA);

	return waiting >= bpf_ringbuf_query(&EVENTS_MAP, BPF_RB_RING_SIZE) / 4 ? BPF_RB_FORCE_WAKEUP
									       : BPF_RB_NO_WAKEUP;
}

/* What an event says: everything but who did it. */
static __always_inline void describe(struct event *e, __u32 kind, __u32 rule_kind, __u64 flags, __u32 rule,
				     __u32 reason, struct object *o)
{
	struct scratch *s;

	e->kind = kind;
	e->rule_kind = rule_kind;
	e->flags = flags;
	e->rule = rule;
	e->reason = reason;
	e->object_num = o->number;
	e->target_pid = o->target_pid;
	e->object[0] = 0;
	s = o->has_path ? scratch() : 0;
	if (s)
		bpf_probe_read_kernel_str(e->object, sizeof(e->object), &s->path[path_index(s->start)]);
}

/* Who did it: the acting task, and how many of the same event were left out before. */
static __always_inline void name_actor(struct event *e, __u64 repeats)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();

	e->pid = (__u32)pid_tgid;
	e->tgid = pid_tgid >> 32;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	e->repeats = repeats;
}

/* CFG_REDUCE_REPEATS: report an event only if the same one (any task of the profile) was not
 * reported in the last REPEAT_WINDOW_NS, else count it.  The key is the event with zeroes
 * where the acting task and the count go, and after the object's NUL.  Whether it was handled:
 * 0 when the per-task event could not be had (the event is then reported as without the
 * option). */
static __always_inline int emit_reduced(__u32 kind, __u32 rule_kind, __u64 flags, __u32 rule, __u32 reason,
					struct object *o)
{
	struct event *e = bpf_task_storage_get(&REPEAT_SCRATCH_MAP, bpf_get_current_task_btf(), 0,
					       BPF_LOCAL_STORAGE_GET_F_CREATE);
	struct repeat_count first = {}, *seen;
	__u64 now = bpf_ktime_get_ns(), repeats = 0;

	if (!e)
		return 0;
	__builtin_memset(e, 0, sizeof(*e));
	describe(e, kind, rule_kind, flags, rule, reason, o);
	seen = bpf_map_lookup_elem(&REPEATS_MAP, e);
	if (seen && now - seen->reported_ns < REPEAT_WINDOW_NS) {
		__sync_fetch_and_add(&seen->repeats, 1);
		return 1;
	}
	if (seen) {
		/* Taken out, not zeroed: another CPU may be counting one at this moment. */
		repeats = seen->repeats;
		__sync_fetch_and_add(&seen->repeats, -repeats);
		seen->reported_ns = now;
	} else {
		first.reported_ns = now;
		bpf_map_update_elem(&REPEATS_MAP, e, &first, BPF_NOEXIST);
	}
	name_actor(e, repeats);
	if (bpf_ringbuf_output(&EVENTS_MAP, e, sizeof(*e), wakeup()))
		count(STAT_LOST_EVENTS, 1 + repeats);
	return 1;
}

static __always_inline void emit(__u32 kind, __u32 rule_kind, __u64 flags, __u32 rule, __u32 reason,
				 struct object *o)
{
	struct learn_event *l = 0;
	struct event *e;

	if (kind == EVENT_DENY)
		count(STAT_DENIALS, 1);
	/* The read-only CFG_REDUCE_REPEATS and CFG_LEARN are known at load: the verifier drops
	 * the branches of the modes not set, and enforcement's programs keep only the small
	 * reservation. */
	if (CFG_REDUCE_REPEATS && !CFG_LEARN && emit_reduced(kind, rule_kind, flags, rule, reason, o))
		return;
	if (CFG_LEARN) {
		l = bpf_ringbuf_reserve(&EVENTS_MAP, sizeof(*l), 0);
		e = (struct event *)l;
	} else {
		e = bpf_ringbuf_reserve(&EVENTS_MAP, sizeof(*e), 0);
	}
	if (!e) {
		count(STAT_LOST_EVENTS, 1);
		return;
	}
	describe(e, kind, rule_kind, flags, rule, reason, o);
	name_actor(e, 0);
	if (l)
		learn_extras(l);
	bpf_ringbuf_submit(e, wakeup());
}

/* Deny (or, in complain mode, log) an access, naming the rule responsible and why. */
static __always_inline int refuse(__u32 rule_kind, __u64 req, __u32 rule, __u32 reason, struct object *o)
{
	if (CFG_COMPLAIN) {
		emit(EVENT_COMPLAIN, rule_kind, req, rule, reason, o);
		return 0;
	}
	emit(EVENT_DENY, rule_kind, req, rule, reason, o);
	return -EPERM;
}

/* Before the first taint, a taint-mode policy enforces nothing (see docs/language.md). */
static __always_inline int untainted(struct task_state *t)
{
	return TAINT_MODE && !tainted(t);
}

/* The policy's verdict on an access of `req` flags, given what the rules said. */
static __noinline int verdict(struct task_state *t, struct decision *d, __u32 rule_kind, __u64 req,
			      struct object *o)
{
	__u64 missing;
	__u32 reason, rule;

	if (!t || !d || !o)
		return -EPERM;
	if (d->audit)
		emit(EVENT_AUDIT, rule_kind, req, d->audit_rule, 0, o);
	if (untainted(t)) {
		if (d->taint) {
			taint(t);
			emit(EVENT_TAINT, rule_kind, req, d->taint_rule, 0, o);
		}
		return 0;
	}
	missing = req & ~d->allow;
	if (!(d->deny & req) && !missing)
		return 0;
	if (d->deny & req) {
		reason = REASON_DENIED_BY_RULE;
		rule = d->deny_rule;
	} else if (d->inactive & missing) {
		reason = REASON_OUTSIDE_CONTEXT;
		rule = d->inactive_rule;
	} else if (d->allow & req) {
		reason = REASON_PARTIAL_GRANT;
		rule = d->allow_rule;
	} else {
		reason = REASON_NO_RULE;
		rule = NO_RULE;
	}
	return refuse(rule_kind, req, rule, reason, o);
}

/* An access the program cannot even describe (a path too long to resolve...): denied, or
 * logged in complain mode.  Failing closed is the point of a confinement tool.  A call of
 * its own, so that its decision and object stay off the stack of the hooks that inline it
 * (the verifier's 512 bytes for all frames of a call chain). */
static __noinline int unresolvable(struct task_state *t, __u32 rule_kind, __u64 req)
{
	struct decision d = {};
	struct object o = { .kind = rule_kind };

	return verdict(t, &d, rule_kind, req, &o);
}

#endif /* BPFBOX_VERDICT_BPF_H */
