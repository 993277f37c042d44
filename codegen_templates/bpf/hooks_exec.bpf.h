/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Exec: identity of the profile's program, exec permission, confinement.
 */
#ifndef BPFBOX_HOOKS_EXEC_BPF_H
#define BPFBOX_HOOKS_EXEC_BPF_H

#include "checks.bpf.h"

/* Is `file`'s resolved path the profile program's (CFG_PROFILE_PATH)? */
static __noinline int same_path(struct file *file)
{
	struct scratch *s = scratch();
	__u32 i, start;

	if (!s || resolve_path(s, BPF_CORE_READ(file, f_path.mnt), BPF_CORE_READ(file, f_path.dentry)) != WALK_OK)
		return 0;
	start = s->start;
	for (i = 0; i < PROFILE_PATH_LEN; i++) {
		char c = s->path[path_index(start + i)];

		if (c != CFG_PROFILE_PATH[i])
			return 0;
		if (!c)
			return 1;
	}
	return 0;
}

SEC("lsm/bprm_creds_for_exec")
int BPF_PROG(bpfbox_bprm_creds_for_exec, struct linux_binprm *bprm)
{
	struct task_state *t = state_of(bpf_get_current_task_btf());

	if (t)
		t->pending = 0;
	return 0;
}

SEC("lsm/bprm_check_security")
int BPF_PROG(bpfbox_bprm_check_security, struct linux_binprm *bprm)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct task_state *t = state_of(task);
	struct file *file = BPF_CORE_READ(bprm, file);
	int ret;

	if (t && t->confined) {
		ret = check_file(t, file, FS_EXEC, 0);
		if (ret)
			return ret;
	}
	if (!t) {
		/* Cheap tests first: most execs are not of the profile's program. */
		if (!same_inode(file) && BPF_CORE_READ(file, f_path.dentry, d_name.len) != CFG_PROFILE_NAME_LEN)
			return 0;
		t = bpf_task_storage_get(&TASKS_MAP, task, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
		if (!t)
			return -ENOMEM;
	}
	if (same_inode(file) || same_path(file))
		t->pending = 1;
	return 0;
}

SEC("lsm/bprm_committed_creds")
int BPF_PROG(bpfbox_bprm_committed_creds, struct linux_binprm *bprm)
{
	struct task_state *t = state_of(bpf_get_current_task_btf());
	__u32 i;

	if (!t)
		return 0;
	if (t->pending && !t->confined) {
		t->confined = 1;
		count(STAT_CONFINED_TASKS, 1);
	}
	t->pending = 0;
	/* A new program image: no function of the old one is running any more. */
	for (i = 0; i < MAX_CONTEXTS; i++)
		t->depth[i] = 0;
	return 0;
}

#endif /* BPFBOX_HOOKS_EXEC_BPF_H */
