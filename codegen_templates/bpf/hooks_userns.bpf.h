/* SPDX-License-Identifier: GPL-2.0 */
/*
 * User namespaces (userns rules): creating one, by unshare(CLONE_NEWUSER) or
 * clone(CLONE_NEWUSER).  Inside it the process holds every capability of that namespace, and
 * with them the kernel code (mounts of its own, netfilter, ...) that only privileged users
 * reach otherwise; cap rules still decide each capability it uses there.
 */
#ifndef BPFBOX_HOOKS_USERNS_BPF_H
#define BPFBOX_HOOKS_USERNS_BPF_H

#include "checks.bpf.h"

SEC("lsm/userns_create")
int BPF_PROG(bpfbox_userns_create, const struct cred *cred)
{
	struct task_state *t = confined_current();
	struct decision d = {};
	struct object o = { .kind = RULE_USERNS };

	if (!t)
		return 0;
	decide_userns(t, &d, USERNS_CREATE);
	return verdict(t, &d, RULE_USERNS, USERNS_CREATE, &o);
}

#endif /* BPFBOX_HOOKS_USERNS_BPF_H */
