/* SPDX-License-Identifier: GPL-2.0 */
/* Generated from bpfbox's contract (contract/abi.py): do not edit, run `make golden`. */
#ifndef BPFBOX_ABI_H
#define BPFBOX_ABI_H

/* Maps, read-only configuration and the metadata string, by the runtime's names. */
#define TASKS_MAP bpfbox_tasks
#define EVENTS_MAP bpfbox_events
#define STATS_MAP bpfbox_stats
#define SCRATCH_MAP bpfbox_scratch
#define REPEATS_MAP bpfbox_repeats
#define REPEAT_SCRATCH_MAP bpfbox_repeat_scratch
#define METADATA_SYMBOL bpfbox_meta
#define CFG_PROFILE_INO bpfbox_cfg_profile_ino
#define CFG_PROFILE_DEV bpfbox_cfg_profile_dev
#define CFG_COMPLAIN bpfbox_cfg_complain
#define CFG_LEARN bpfbox_cfg_learn
#define CFG_REDUCE_REPEATS bpfbox_cfg_reduce_repeats
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
#define TASK_STATE_LAYOUT 4
#define PATH_BUF 4096
#define PATH_MAX_LEN 4095
#define NAME_MAX 255
#define WALK_STEPS 256
#define NO_RULE 0
#define LEARN_STACK_DEPTH 32
#define LEARN_EXE_LEN 256
#define LEARN_STACK_WINDOW 2048
#define REPEATS_ENTRIES 16384
#define REPEAT_WINDOW_NS 1000000000

enum rule_kind {
	RULE_SELF_PROTECTION = 0,
	RULE_FS = 1,
	RULE_PROC = 2,
	RULE_SIGNAL = 3,
	RULE_PTRACE = 4,
	RULE_NET = 5,
	RULE_CAP = 6,
	RULE_IPC = 7,
	RULE_KEY = 8,
	RULE_IOCTL = 9,
	RULE_USERNS = 10,
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

enum frame_status {
	FRAME_EMPTY = 0,
	FRAME_VALID = 1,
	FRAME_IP = 2,
};

enum protected {
	PROTECTED_BPF_SYSCALL = 1,
	PROTECTED_MODULE_REQUEST = 2,
	PROTECTED_SIGNAL_OWNER = 3,
	PROTECTED_MOUNT_TREE = 4,
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
#define IPC_CREATE 0x1ULL
#define IPC_GET 0x2ULL
#define IPC_READ 0x4ULL
#define IPC_WRITE 0x8ULL
#define IPC_GETATTR 0x10ULL
#define IPC_CONTROL 0x20ULL
#define KEY_CREATE 0x1ULL
#define KEY_VIEW 0x2ULL
#define KEY_READ 0x4ULL
#define KEY_WRITE 0x8ULL
#define KEY_SEARCH 0x10ULL
#define KEY_LINK 0x20ULL
#define KEY_SETATTR 0x40ULL
#define IOCTL_TCGETS 0x1ULL
#define IOCTL_TCGETS2 0x2ULL
#define IOCTL_TIOCGWINSZ 0x4ULL
#define IOCTL_TIOCGPGRP 0x8ULL
#define IOCTL_TIOCGSID 0x10ULL
#define IOCTL_TIOCGETD 0x20ULL
#define IOCTL_FIONREAD 0x40ULL
#define IOCTL_TIOCOUTQ 0x80ULL
#define IOCTL_TIOCGPTN 0x100ULL
#define IOCTL_TIOCMGET 0x200ULL
#define IOCTL_TCSETS 0x400ULL
#define IOCTL_TCSETSW 0x800ULL
#define IOCTL_TCSETSF 0x1000ULL
#define IOCTL_TIOCSWINSZ 0x2000ULL
#define IOCTL_TIOCSPGRP 0x4000ULL
#define IOCTL_TIOCSCTTY 0x8000ULL
#define IOCTL_TIOCNOTTY 0x10000ULL
#define IOCTL_TCFLSH 0x20000ULL
#define IOCTL_TCXONC 0x40000ULL
#define IOCTL_TCSBRK 0x80000ULL
#define IOCTL_TIOCSPTLCK 0x100000ULL
#define IOCTL_TIOCGPTPEER 0x200000ULL
#define IOCTL_TIOCEXCL 0x400000ULL
#define IOCTL_TIOCNXCL 0x800000ULL
#define IOCTL_TIOCVHANGUP 0x1000000ULL
#define IOCTL_FIOCLEX 0x2000000ULL
#define IOCTL_FIONCLEX 0x4000000ULL
#define IOCTL_FIONBIO 0x8000000ULL
#define IOCTL_FIOASYNC 0x10000000ULL
#define IOCTL_TIOCSTI 0x20000000ULL
#define IOCTL_TIOCLINUX 0x40000000ULL
#define IOCTL_TIOCCONS 0x80000000ULL
#define IOCTL_TIOCSETD 0x100000000ULL
#define IOCTL_KDSKBENT 0x200000000ULL
#define IOCTL_KDSKBSENT 0x400000000ULL
#define IOCTL_KDSETKEYCODE 0x800000000ULL
#define USERNS_CREATE 0x1ULL

/* SysV IPC object kinds (the `class` of ipc rules). */
#define IPC_CLASS_SHM 0
#define IPC_CLASS_SEM 1
#define IPC_CLASS_MSG 2

/* ioctl commands: X(NAME, number) for each command an ioctl rule can name; a command
 * with no name requests IOCTL_UNNAMED. */
#define IOCTL_UNNAMED 0x8000000000000000ULL
#define IOCTL_COMMANDS(X) \
	X(TCGETS, 0x5401U) \
	X(TCGETS2, 0x802c542aU) \
	X(TIOCGWINSZ, 0x5413U) \
	X(TIOCGPGRP, 0x540fU) \
	X(TIOCGSID, 0x5429U) \
	X(TIOCGETD, 0x5424U) \
	X(FIONREAD, 0x541bU) \
	X(TIOCOUTQ, 0x5411U) \
	X(TIOCGPTN, 0x80045430U) \
	X(TIOCMGET, 0x5415U) \
	X(TCSETS, 0x5402U) \
	X(TCSETSW, 0x5403U) \
	X(TCSETSF, 0x5404U) \
	X(TIOCSWINSZ, 0x5414U) \
	X(TIOCSPGRP, 0x5410U) \
	X(TIOCSCTTY, 0x540eU) \
	X(TIOCNOTTY, 0x5422U) \
	X(TCFLSH, 0x540bU) \
	X(TCXONC, 0x540aU) \
	X(TCSBRK, 0x5409U) \
	X(TIOCSPTLCK, 0x40045431U) \
	X(TIOCGPTPEER, 0x5441U) \
	X(TIOCEXCL, 0x540cU) \
	X(TIOCNXCL, 0x540dU) \
	X(TIOCVHANGUP, 0x5437U) \
	X(FIOCLEX, 0x5451U) \
	X(FIONCLEX, 0x5450U) \
	X(FIONBIO, 0x5421U) \
	X(FIOASYNC, 0x5452U) \
	X(TIOCSTI, 0x5412U) \
	X(TIOCLINUX, 0x541cU) \
	X(TIOCCONS, 0x541dU) \
	X(TIOCSETD, 0x5423U) \
	X(KDSKBENT, 0x4b47U) \
	X(KDSKBSENT, 0x4b49U) \
	X(KDSETKEYCODE, 0x4b4dU) \
	/* end of IOCTL_COMMANDS */

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
	__u64 repeats;
};
_Static_assert(sizeof(struct event) == 320, "struct event must match the runtime's decoder");

struct repeat_count {
	__u64 reported_ns;
	__u64 repeats;
};
_Static_assert(sizeof(struct repeat_count) == 16, "struct repeat_count must match the runtime's decoder");

struct stack_frame {
	__u32 status;
	unsigned char build_id[20];
	__u64 offset;
};
_Static_assert(sizeof(struct stack_frame) == 32, "struct stack_frame must match struct bpf_stack_build_id (linux/bpf.h)");

struct learn_event {
	struct event event;
	char exe[256];
	__u64 stack_size;
	struct stack_frame stack[32];
	__u64 exe_entry;
	__u64 user_sp;
	__u64 window_size;
	unsigned char window[2048];
};
_Static_assert(sizeof(struct learn_event) == 3680, "struct learn_event must match the runtime's decoder");

struct task_state {
	__u32 confined;
	__u32 pending;
	__u32 tainted;
	__u32 depth[64];
	__u32 statfs_passed;
	__u64 entry_sp[64];
	__u64 entry_ret[64];
	__u64 overlay_sb;
};
_Static_assert(sizeof(struct task_state) == 1304, "struct task_state must match TASK_STATE_LAYOUT (a pinned task-storage map is reused across programs)");

#endif /* BPFBOX_ABI_H */
