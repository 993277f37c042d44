/* SPDX-License-Identifier: GPL-2.0 */
/* Generated from bpfbox's contract (contract/abi.py): do not edit, run `make golden`. */
#ifndef BPFBOX_ABI_H
#define BPFBOX_ABI_H

/* Maps, read-only configuration and the metadata string, by the runtime's names. */
#define TASKS_MAP bpfbox_tasks
#define EVENTS_MAP bpfbox_events
#define STATS_MAP bpfbox_stats
#define SCRATCH_MAP bpfbox_scratch
#define METADATA_SYMBOL bpfbox_meta
#define CFG_PROFILE_INO bpfbox_cfg_profile_ino
#define CFG_PROFILE_DEV bpfbox_cfg_profile_dev
#define CFG_COMPLAIN bpfbox_cfg_complain
#define CFG_PROFILE_PATH bpfbox_cfg_profile_path
#define CFG_PROFILE_NAME_LEN bpfbox_cfg_profile_name_len
#define METADATA_SECTION ".bpfbox.meta"

/* Limits and indices. */
#define STAT_LOST_EVENTS 0
#define STAT_CONFINED_TASKS 1
#define STAT_DENIALS 2
#define STAT_COUNT 3
#define PROFILE_PATH_LEN 256
#define MAX_CONTEXTS 64
#define TASK_STATE_LAYOUT 2
#define PATH_BUF 8192
#define PATH_MAX_LEN 4095
#define NAME_MAX 255
#define WALK_STEPS 256
#define NO_RULE 0

enum rule_kind {
	RULE_SELF_PROTECTION = 0,
	RULE_FS = 1,
	RULE_PROC = 2,
	RULE_SIGNAL = 3,
	RULE_PTRACE = 4,
	RULE_NET = 5,
	RULE_CAP = 6,
};

enum decision_code {
	DECISION_NONE = 0,
	DECISION_ALLOW = 1,
	DECISION_DENY = 2,
	DECISION_TAINT = 3,
};

enum event_kind {
	EVENT_DENY = 1,
	EVENT_AUDIT = 2,
	EVENT_COMPLAIN = 3,
	EVENT_TAINT = 4,
};

enum reason {
	REASON_NO_RULE = 0,
	REASON_DENIED_BY_RULE = 1,
	REASON_OUTSIDE_CONTEXT = 2,
	REASON_PARTIAL_GRANT = 3,
	REASON_SELF_PROTECTION = 4,
	REASON_GUARDS_BENEATH = 5,
};

enum protected {
	PROTECTED_BPF_SYSCALL = 1,
	PROTECTED_MODULE_REQUEST = 2,
	PROTECTED_SIGNAL_OWNER = 3,
};

/* Access flags of each rule kind (signals and capabilities are 1 << number). */
#define FS_READ 0x1ULL
#define FS_WRITE 0x2ULL
#define FS_APPEND 0x4ULL
#define FS_EXEC 0x8ULL
#define FS_GETATTR 0x10ULL
#define FS_SETATTR 0x20ULL
#define FS_CREATE 0x40ULL
#define FS_RM 0x80ULL
#define FS_LINK 0x100ULL
#define FS_IOCTL 0x200ULL
#define PROC_READ 0x1ULL
#define PROC_WRITE 0x2ULL
#define PROC_GETATTR 0x10ULL
#define PTRACE_READ 0x1ULL
#define PTRACE_ATTACH 0x2ULL
#define NET_CREATE 0x1ULL
#define NET_CONNECT 0x2ULL
#define NET_BIND 0x4ULL
#define NET_LISTEN 0x8ULL
#define NET_ACCEPT 0x10ULL
#define NET_SEND 0x20ULL
#define NET_RECV 0x40ULL
#define NET_SHUTDOWN 0x80ULL

struct event {
	__u32 kind;
	__u32 rule_kind;
	__u32 pid;
	__u32 tgid;
	__u64 flags;
	__u32 rule;
	__u32 reason;
	__u32 object_num;
	__u32 target_pid;
	char comm[16];
	char object[256];
};
_Static_assert(sizeof(struct event) == 312, "struct event must match the runtime's decoder");

struct task_state {
	__u32 confined;
	__u32 pending;
	__u32 tainted;
	__u32 depth[64];
	__u32 align_pad;
	__u64 entry_sp[64];
	__u64 entry_ret[64];
};
_Static_assert(sizeof(struct task_state) == 1296, "struct task_state must match TASK_STATE_LAYOUT (a pinned task-storage map is reused across programs)");

#endif /* BPFBOX_ABI_H */
