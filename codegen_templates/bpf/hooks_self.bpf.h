/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Self-protection: what a confined process may never do, whatever its policy says (no rule
 * kind can name it; docs/language.md, "Self-protection").  bpffs paths are refused in
 * check_path (checks.bpf.h), F_SETOWN to another process in file_fcntl (hooks_fs.bpf.h).
 */
#ifndef BPFBOX_HOOKS_SELF_BPF_H
#define BPFBOX_HOOKS_SELF_BPF_H

#include "checks.bpf.h"

/* The bpf() system call: it could read or detach the pinned profiles, or load programs. */
SEC("lsm/bpf")
int BPF_PROG(bpfbox_bpf, int cmd, union bpf_attr *attr, unsigned int size)
{
	struct task_state *t = confined_current();

	return t ? protect(t, PROTECTED_BPF_SYSCALL, 0) : 0;
}

/* A kernel module loaded on the process's behalf (a socket family, a device, a file system
 * type that is not loaded yet): new kernel code, chosen by the confined process. */
SEC("lsm/kernel_module_request")
int BPF_PROG(bpfbox_kernel_module_request, char *kmod_name)
{
	struct task_state *t = confined_current();

	return t ? protect(t, PROTECTED_MODULE_REQUEST, 0) : 0;
}

#endif /* BPFBOX_HOOKS_SELF_BPF_H */
