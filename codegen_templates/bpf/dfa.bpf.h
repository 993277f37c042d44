/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The DFA scan: runs one of the policy's glob DFAs over the path in the scratch buffer, one
 * byte per bpf_loop step, whatever the number of globs.  Included once per DFA, after
 *
 *	#define DFA_NAME fs		(names: fs_step, fs_match)
 *	#define DFA_STATES		(the number of states, a constant)
 *	#define DFA_EXCEPTION_SHIFT	(where a state's own transition keeps its class)
 *	DFA_NAME_class[256], DFA_NAME_states, DFA_NAME_stored(row, class)
 *				(the tables, codegen_templates/dfa.c.j2)
 *
 * and after path_index(), below(), struct scratch and bpf_loop: the BPF program's
 * (state.bpf.h) or the host test's (tests/unit/dfa_host.c), which runs this same code
 * against compiler/glob.py's matcher.
 */
#if !defined(DFA_NAME) || !defined(DFA_STATES) || !defined(DFA_EXCEPTION_SHIFT)
#error "dfa.bpf.h needs DFA_NAME, DFA_STATES and DFA_EXCEPTION_SHIFT"
#endif

#define DFA_PASTE_(name, what) name##_##what
#define DFA_PASTE(name, what) DFA_PASTE_(name, what)
#define DFA_FN(what) DFA_PASTE(DFA_NAME, what)

struct DFA_FN(scan) {
	struct scratch *s;
	__u32 off;
	__u32 state;
};

/* The transitions are packed (compiler/glob.py, Packed): a state is the stored row it shares
 * with others, and at most one transition of its own, class << DFA_EXCEPTION_SHIFT | target
 * (0: none; class 0, NUL's, is never looked up). */
static __always_inline __u32 DFA_FN(next)(__u32 state, __u32 cls)
{
	/* One load: the row in the low word, the own transition in the high one (little-endian,
	 * as codegen writes them).  Two loads at 2 * state and 2 * state + 1 would have the
	 * verifier bound the second by bit masks, past the table's end. */
	__u64 packed = ((const __u64 *)DFA_FN(states))[below(state, DFA_STATES)];
	__u32 own = packed >> 32;

	if (own && own >> DFA_EXCEPTION_SHIFT == cls)
		return own & ((1U << DFA_EXCEPTION_SHIFT) - 1);
	return DFA_FN(stored)((__u32)packed, cls);
}

/* One byte of the walk: returns 1 when it ends (end of the path, or the dead state). */
static __always_inline long DFA_FN(advance)(struct DFA_FN(scan) *scan, __u32 index)
{
	__u32 cls;
	__u8 c;

	if (!scan->s)
		return 1;
	c = scan->s->path[path_index(scan->off + index)];
	if (!c)
		return 1;
	cls = DFA_FN(class)[c];
	scan->state = DFA_FN(next)(scan->state, cls);
	return scan->state == 0;
}

static long DFA_FN(step)(__u32 index, void *data)
{
	return DFA_FN(advance)(data, index);
}

/* Run the DFA over the path in the scratch buffer; returns the final state (0: nothing
 * matches). */
static __noinline __u32 DFA_FN(match)(struct scratch *s)
{
	struct DFA_FN(scan) scan = { .s = s, .state = 1 };

	if (!s)
		return 0;
	scan.off = s->start;
	/* The first byte is walked here, not in the loop: kernels before 6.8 verify the loop's
	 * callback once, from the scan as it is at the call, and a constant start state there
	 * would leave the transition maps of later states as dead code, dropped. */
	if (!DFA_FN(advance)(&scan, 0)) {
		scan.off += 1;
		bpf_loop(PATH_MAX_LEN, DFA_FN(step), &scan, 0);
	}
	return scan.state < DFA_STATES ? scan.state : 0;
}

#undef DFA_FN
#undef DFA_PASTE
#undef DFA_PASTE_
#undef DFA_NAME
#undef DFA_STATES
#undef DFA_EXCEPTION_SHIFT
