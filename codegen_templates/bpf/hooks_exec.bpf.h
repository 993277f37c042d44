/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Exec: identity of the profile's program, exec permission, confinement.
 */
#ifndef BPFBOX_HOOKS_EXEC_BPF_H
#define BPFBOX_HOOKS_EXEC_BPF_H

#include "checks.bpf.h"

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
	if (!is_profile_program(file))
		return 0;
	if (!t)
		t = bpf_task_storage_get(&TASKS_MAP, task, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!t)
		return -ENOMEM;
	t->pending = 1;
	return 0;
}

SEC("lsm/bprm_committed_creds")
int BPF_PROG(bpfbox_bprm_committed_creds, struct linux_binprm *bprm)
{
	struct task_state *t = state_of(bpf_get_current_task_btf());

	if (!t)
		return 0;
	if (t->pending)
		confine(t);
	t->pending = 0;
	/* A new program image: no function of the old one is running any more. */
	leave_every_context(t);
	return 0;
}

#endif /* BPFBOX_HOOKS_EXEC_BPF_H */
