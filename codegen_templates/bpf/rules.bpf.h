/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Path rules as constant tables: after the one walk of the fs DFA, a path access is decided
 * by the records of the rules its final state accepts (the policy's part defines the tables:
 * path_rules, path_members, path_slices, path_clauses, their sizes, and fs_row()).  The code
 * is the same whatever the number of rules, so the verifier's work and clang's do not grow
 * with it; the running time grows with the rules that match the path, not with the policy.
 */
#ifndef BPFBOX_RULES_BPF_H
#define BPFBOX_RULES_BPF_H

#include "verdict.bpf.h"
#include "contexts.bpf.h"

/* One rule as one kind decides it (compiler/codegen.py packs them). */
struct path_rule {
	__u64 flags;	/* the bits of the kind it decides */
	__u32 id;	/* its number in events and metadata */
	__u8 decision;	/* DECISION_* */
	__u8 audit;
	__u16 clauses;	/* its context clauses, path_clauses[clause ...] */
	__u32 clause;
	__u32 reserved;
};
_Static_assert(sizeof(struct path_rule) == 24, "struct path_rule is packed by codegen.py");
/* Every index below is bounded by these counts: the tables must hold that many entries. */
_Static_assert(sizeof(path_rules) >= PATH_RULES * sizeof(struct path_rule), "path_rules size");
_Static_assert(sizeof(path_members) >= PATH_MEMBERS * sizeof(__u32), "path_members size");
_Static_assert(sizeof(path_slices) >= PATH_SLICES * 2 * sizeof(__u32), "path_slices size");
_Static_assert(sizeof(path_clauses) >= PATH_CLAUSES * sizeof(__u64), "path_clauses size");

struct rule_scan {
	struct decision d;
	struct task_state *t;
	__u64 req;
	__u64 inside;	/* the contexts the thread is inside */
	__u32 first;	/* the row's records: path_members[first], ... [first + count - 1] */
	__u32 count;
};

struct context_scan {
	struct task_state *t;
	__u64 inside;
};

static long note_context(__u32 index, void *data)
{
	struct context_scan *scan = data;
	/* Bounded in the register that indexes the state: clang tests a copy otherwise. */
	__u32 context = below(index, MAX_CONTEXTS);
	int inside;

	if (index >= MAX_CONTEXTS || !scan->t)
		return 1;
	if ((KFUNC_CONTEXTS >> context) & 1)
		inside = inside_kernel_call(scan->t, context);
	else
		inside = inside_call(scan->t, context);
	if (inside)
		scan->inside |= 1ULL << context;
	return 0;
}

/* The policy's contexts the thread is inside, a mask (CONTEXT_COUNT > 0: see decide_path). */
static __always_inline __u64 contexts_inside(struct task_state *t)
{
	struct context_scan scan = { .t = t };

	bpf_loop(CONTEXT_COUNT, note_context, &scan, 0);
	return scan.inside;
}

/* Does every clause of a rule hold (each has one of its contexts in `inside`)? */
static __always_inline int clauses_hold(__u32 first, __u32 count, __u64 inside)
{
	__u32 i;

	for (i = 0; i < MAX_RULE_CLAUSES; i++) {
		if (i >= count)
			break;
		if (!(((const __u64 *)path_clauses)[below(first + i, PATH_CLAUSES)] & inside))
			return 0;
	}
	return 1;
}

/* The row's records from the last: with `last_wins`, the first rule ends up named (see
 * note_rule). */
static long apply_path_rule(__u32 index, void *data)
{
	struct rule_scan *scan = data;
	__u32 position = scan->first + scan->count - 1 - index;
	__u32 member = ((const __u32 *)path_members)[below(position, PATH_MEMBERS)];
	const struct path_rule *rule = &((const struct path_rule *)path_rules)[below(member, PATH_RULES)];
	int in_context = 1;

	if (rule->clauses)
		in_context = clauses_hold(rule->clause, rule->clauses, scan->inside);
	apply(&scan->d, scan->req, rule->id, rule->decision, rule->audit, rule->flags, in_context, 1);
	return 0;
}

/* What the path rules of kind `path_kind` (PATH_KIND_*) say about `req` on a path whose fs
 * DFA walk ended in `state`: the records of its row, applied in rule order, as one `if` per
 * rule once did.  A call of its own: its scan (a second struct decision) stays off the
 * stack frame of check_path, which 6.1's verifier adds to the frames of verdict() and the
 * path walk below it under its 512-byte limit. */
static __noinline void decide_path(struct task_state *t, struct decision *d, __u64 req, __u32 state,
					__u32 path_kind)
{
	struct rule_scan scan = { .t = t, .req = req };
	__u64 slice = (__u64)fs_row(state) * PATH_KINDS + path_kind;

	/* Each index bounded as it is used: the verifier loses a bound carried through
	 * arithmetic (2 * below(...) + 1 is only known to be below the next power of two). */
	scan.first = ((const __u32 *)path_slices)[below(slice * 2, PATH_SLICES * 2)];
	scan.count = ((const __u32 *)path_slices)[below(slice * 2 + 1, PATH_SLICES * 2)];
	/* Every bpf_loop here runs only with a count above 0: 6.12's verifier never visits the
	 * callback of a bpf_loop whose count it proves 0 (an empty row of a policy with no path
	 * rule, a policy with no context), removes it as dead code, and then fails the program
	 * with EFAULT ("verifier bug. No program starts at insn N" from jit_subprogs) over the
	 * callback's address still loaded here.  The contexts are computed once, before the
	 * rules' loop rather than in its callback, to keep bpf_loops unnested. */
	if (CONTEXT_COUNT)
		scan.inside = contexts_inside(t);
	if (scan.count)
		bpf_loop(scan.count, apply_path_rule, &scan, 0);
	*d = scan.d;
}

#endif /* BPFBOX_RULES_BPF_H */
