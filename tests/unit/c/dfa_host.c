// SPDX-License-Identifier: GPL-2.0
/*
 * The BPF program's DFA scan (codegen_templates/bpf/dfa.bpf.h), compiled for the host: the
 * little the scan needs from the BPF side, in plain C, then one table's C as bpfboxc generates
 * it (DFA_TABLE, a file the test writes).  tests/unit/test_dfa_host.py loads the result and
 * compares it with compiler/glob.py's Dfa.match.
 */
#include <string.h>

typedef unsigned char __u8;
typedef unsigned short __u16;
typedef unsigned int __u32;
typedef unsigned long long __u64;

#include "bpf/bpfbox_abi.h"
#include "bpf/scratch.bpf.h"

#define SEC(name)
#ifndef __always_inline
#define __always_inline inline __attribute__((always_inline))
#endif
#define __noinline __attribute__((noinline))

/* The BPF versions hide their masks from clang's optimiser; the arithmetic is the same. */
static inline __u64 path_index(__u64 i)
{
	return i & (PATH_BUF - 1);
}
#define below(i, limit) ((i) < (limit) ? (i) : 0)

/* bpf_loop(): call `step` for 0, 1, ... until it returns non-zero or `count` calls. */
static long bpf_loop(__u32 count, long (*step)(__u32 index, void *data), void *data, __u64 flags)
{
	__u32 i;

	(void)flags;
	for (i = 0; i < count; i++)
		if (step(i, data))
			return i + 1;
	return count;
}

#include DFA_TABLE

static struct scratch buffer;

/* Place `path` where the path walk leaves it (ending at path[PATH_BUF - 1]) and scan it. */
__u32 scan(const char *path)
{
	size_t length = strlen(path);

	if (length > PATH_MAX_LEN)
		return 0;
	buffer.start = PATH_BUF - 1 - length;
	memcpy(&buffer.path[buffer.start], path, length + 1);
	return fs_match(&buffer);
}

int accepts(__u32 state, __u32 glob)
{
	return fs_has(state, glob);
}
