/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The path scratch buffer, apart so that the host test of the DFA scan (tests/unit) uses the
 * very same struct as the BPF program.
 */
#ifndef BPFBOX_SCRATCH_BPF_H
#define BPFBOX_SCRATCH_BPF_H

/* A resolved path, written backwards so that it ends at path[PATH_BUF - 1] (a NUL) and
 * starts at path[start]. */
struct scratch {
	__u32 start;
	char path[PATH_BUF + NAME_MAX + 1]; /* slack: the verifier cannot relate offset and length */
};

#endif /* BPFBOX_SCRATCH_BPF_H */
