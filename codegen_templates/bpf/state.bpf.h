/* SPDX-License-Identifier: GPL-2.0 */
/*
 * State: the runtime's configuration, the maps, the per-task state in task-local storage and
 * the per-task path scratch buffer, and the masks that keep the verifier sure of every index.
 */
#ifndef BPFBOX_STATE_BPF_H
#define BPFBOX_STATE_BPF_H

#include "types.bpf.h"
#include "bpfbox_abi.h"
#include "scratch.bpf.h"

/* Configuration the runtime writes before loading (see contract/abi.py). */
const volatile __u64 CFG_PROFILE_INO = 0;
const volatile __u64 CFG_PROFILE_DEV = 0;
const volatile __u32 CFG_COMPLAIN = 0;
const volatile __u32 CFG_LEARN = 0;
const volatile __u32 CFG_REDUCE_REPEATS = 0;
const volatile __u32 CFG_PROFILE_NAME_LEN = 0;
const volatile char CFG_PROFILE_PATH[PROFILE_PATH_LEN] = {};

/* The current thread's user stack pointer (where it entered the kernel), 0 if unknown. */
static __always_inline __u64 current_user_sp(void)
{
	struct pt_regs *regs = (void *)bpf_task_pt_regs(bpf_get_current_task_btf());

	return regs ? BPF_CORE_READ(regs, sp) : 0;
}

#define PATH_MASK (PATH_BUF - 1)
/* Masks the verifier is sure to see: clang would drop a plain `&` it can prove redundant,
 * and the verifier, which tracks less than clang knows, would then reject the access. */
static __always_inline __u64 path_index(__u64 i)
{
	asm volatile("%0 &= 4095" : "+r"(i));
	return i;
}

static __always_inline __u64 name_length(__u64 n)
{
	asm volatile("%0 &= 255" : "+r"(n));
	return n;
}
/* `i` if it is below `limit`, else 0, in a form the verifier tracks. */
#define below(i, limit) ({ __u64 __i = (i); asm volatile("if %0 < %1 goto +1; %0 = 0;" : "+r"(__i) : "i"(limit)); __i; })

_Static_assert(PATH_MASK == 4095 && NAME_MAX == 255, "path_index and name_length masks");

/* Per-thread state (struct task_state, bpfbox_abi.h), in task-local storage: it lives and
 * dies with the task, so no eviction can ever release a confined process. */
struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct task_state);
} TASKS_MAP SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} EVENTS_MAP SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, STAT_COUNT);
	__type(key, __u32);
	__type(value, __u64);
} STATS_MAP SEC(".maps");

/* One scratch buffer per task, not per CPU: a BPF LSM program runs with migration disabled
 * but can be preempted (full-preemption kernels), and another task's program on the same CPU
 * would then overwrite the path between its resolution and its match.  Apart from the task
 * state, so that the state's layout stays small and the same for every policy.  Created on
 * first use; it dies with the task.  A failed allocation is an unresolvable path (denied). */
struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct scratch);
} SCRATCH_MAP SEC(".maps");

/* With CFG_REDUCE_REPEATS (bpfbox-run --reduce-repeats): the events reported in the last
 * REPEAT_WINDOW_NS, each with the count of its repeats since (verdict.bpf.h, emit()).  Not
 * preallocated: the runtime makes it one entry long when the option is off.  The key is made
 * in a per-task event, not on the stack (512 bytes for a whole call chain). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, REPEATS_ENTRIES);
	__type(key, struct event);
	__type(value, struct repeat_count);
} REPEATS_MAP SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct event);
} REPEAT_SCRATCH_MAP SEC(".maps");

static __always_inline struct scratch *scratch(void)
{
	return bpf_task_storage_get(&SCRATCH_MAP, bpf_get_current_task_btf(), 0,
				    BPF_LOCAL_STORAGE_GET_F_CREATE);
}

static __always_inline void count(__u32 stat, __s64 delta)
{
	__u64 *counter = bpf_map_lookup_elem(&STATS_MAP, &stat);

	if (counter)
		__sync_fetch_and_add(counter, delta);
}

static __always_inline struct task_state *state_of(struct task_struct *task)
{
	return bpf_task_storage_get(&TASKS_MAP, task, 0, 0);
}

static __always_inline struct task_state *confined_current(void)
{
	struct task_state *t = state_of(bpf_get_current_task_btf());

	return t && t->confined ? t : 0;
}

/* The task runs the profile's program from now on: one more live confined task. */
static __always_inline void confine(struct task_state *t)
{
	if (!t->confined) {
		t->confined = 1;
		count(STAT_CONFINED_TASKS, 1);
	}
}

/* Direct BTF access (not a probe read) keeps the leader a pointer task storage accepts. */
static __always_inline struct task_state *group_leader_state(void)
{
	struct task_struct *current = bpf_get_current_task_btf();

	return state_of(current->group_leader);
}

static __always_inline int tainted(struct task_state *t)
{
	struct task_state *leader;

	if (t->tainted)
		return 1;
	leader = group_leader_state();
	if (leader && leader->tainted)
		t->tainted = 1;
	return t->tainted;
}

static __always_inline void taint(struct task_state *t)
{
	struct task_state *leader;

	t->tainted = 1;
	leader = group_leader_state();
	if (leader)
		leader->tainted = 1;
}

#endif /* BPFBOX_STATE_BPF_H */
