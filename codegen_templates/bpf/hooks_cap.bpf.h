/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Capabilities (cap rules): only the current task's own capabilities are checked.
 */
#ifndef BPFBOX_HOOKS_CAP_BPF_H
#define BPFBOX_HOOKS_CAP_BPF_H

#include "checks.bpf.h"

SEC("lsm/capable")
int BPF_PROG(bpfbox_capable, const struct cred *cred, struct user_namespace *ns, int cap, unsigned int opts)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct task_state *t;
	struct decision d = {};
	struct object o = { .kind = RULE_CAP, .number = cap };

	t = confined_current();
	/* Only the current task's own capabilities are its to use; an overlay's, while it works
	 * for the task, are the overlay's (overlay.bpf.h). */
	if (!t || cap < 0 || cap > 63 || cred != BPF_CORE_READ(task, cred) || overlay_at_work(t))
		return 0;
	decide_cap(t, &d, 1ULL << cap);
	return verdict(t, &d, RULE_CAP, 1ULL << cap, &o);
}

#endif /* BPFBOX_HOOKS_CAP_BPF_H */
