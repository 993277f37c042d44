/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The kernel's keyrings (key rules): creating a key or keyring, and the KEY_NEED_*
 * permissions of key_permission.
 */
#ifndef BPFBOX_HOOKS_KEY_BPF_H
#define BPFBOX_HOOKS_KEY_BPF_H

#include "checks.bpf.h"

/* enum key_need_perm (include/linux/key.h), the same in 6.1 and 6.12 */
enum {
	KEY_NEED_VIEW = 1,
	KEY_NEED_READ = 2,
	KEY_NEED_WRITE = 3,
	KEY_NEED_SEARCH = 4,
	KEY_NEED_LINK = 5,
	KEY_NEED_SETATTR = 6,
	KEY_NEED_UNLINK = 7,
	KEY_SYSADMIN_OVERRIDE = 8,
	KEY_AUTHTOKEN_OVERRIDE = 9,
	KEY_DEFER_PERM_CHECK = 10,
};

struct key;

static __noinline int check_key(struct task_state *t, __u64 req)
{
	struct decision d = {};
	struct object o = { .kind = RULE_KEY };

	if (!t)
		return 0;
	decide_key(t, &d, req);
	return verdict(t, &d, RULE_KEY, req, &o);
}

SEC("lsm/key_alloc")
int BPF_PROG(bpfbox_key_alloc, struct key *key, const struct cred *cred, unsigned long flags)
{
	struct task_state *t = confined_current();

	return t ? check_key(t, KEY_CREATE) : 0;
}

/* The KEY_NEED_ permission as key flags.  KEY_NEED_UNLINK comes with a `write` check of the
 * keyring, the overrides with CAP_SYS_ADMIN (a cap rule) or with the authorisation key of a
 * request (itself searched for), and a deferred check with the real one later: none needs a
 * flag of its own (as in SELinux).  A value this program does not know needs every flag. */
static __always_inline __u64 key_need(int need)
{
	switch (need) {
	case KEY_NEED_VIEW:
		return KEY_VIEW;
	case KEY_NEED_READ:
		return KEY_READ;
	case KEY_NEED_WRITE:
		return KEY_WRITE;
	case KEY_NEED_SEARCH:
		return KEY_SEARCH;
	case KEY_NEED_LINK:
		return KEY_LINK;
	case KEY_NEED_SETATTR:
		return KEY_SETATTR;
	case KEY_NEED_UNLINK:
	case KEY_SYSADMIN_OVERRIDE:
	case KEY_AUTHTOKEN_OVERRIDE:
	case KEY_DEFER_PERM_CHECK:
		return 0;
	}
	return KEY_CREATE | KEY_VIEW | KEY_READ | KEY_WRITE | KEY_SEARCH | KEY_LINK | KEY_SETATTR;
}

SEC("lsm/key_permission")
int BPF_PROG(bpfbox_key_permission, void *key_ref, const struct cred *cred, int need)
{
	struct task_state *t = confined_current();
	__u64 req = key_need(need);

	return t && req ? check_key(t, req) : 0;
}

#endif /* BPFBOX_HOOKS_KEY_BPF_H */
