/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Function contexts: the per-thread call depth of each probed function, counted by the
 * policy's uprobe/uretprobe (func) or fentry/fexit (kfunc) pairs.
 */
#ifndef BPFBOX_CONTEXTS_BPF_H
#define BPFBOX_CONTEXTS_BPF_H

#include "state.bpf.h"

static __always_inline int enter_context(__u32 context)
{
	struct task_state *t = confined_current();

	if (t && context < MAX_CONTEXTS && t->depth[context] < 0xffffffff)
		t->depth[context] += 1;
	return 0;
}

static __always_inline int leave_context(__u32 context)
{
	struct task_state *t = confined_current();

	if (t && context < MAX_CONTEXTS && t->depth[context] > 0)
		t->depth[context] -= 1;
	return 0;
}

#endif /* BPFBOX_CONTEXTS_BPF_H */
