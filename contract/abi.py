"""The contract between a generated BPF program and the runtime that loads it.

Everything both sides must agree on lives here and nowhere else: the bit values of access
flags, the names of maps, read-only configuration variables and programs, the layout of the
events the program sends through its ring buffer, and the name of the ELF section that carries
the profile's metadata.  The code generator renders these values into the C it emits; the
runtime uses the same values to configure, attach and decode.  Changing a value here changes
both sides at once, which is the point.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

#: Version of the metadata format; the runtime refuses objects with another version.
#: 2: rules carry their source file and their granted flag bits.
#: 3: `hooks`: the program of each hook prototype (contract/hook_abi.py).
METADATA_VERSION = 4

#: ELF section of the compiled object that holds the metadata JSON (NUL-terminated).
METADATA_SECTION = ".bpfbox.meta"
#: The C symbol of the metadata string in that section.
METADATA_SYMBOL = "bpfbox_meta"

#: Maps the runtime touches by name.
EVENTS_MAP = "bpfbox_events"
STATS_MAP = "bpfbox_stats"
TASKS_MAP = "bpfbox_tasks"
#: Per-task path scratch buffer (no userspace access; named here so the names cannot clash).
SCRATCH_MAP = "bpfbox_scratch"
#: With CFG_REDUCE_REPEATS: each event reported in the last REPEAT_WINDOW_NS (the event with
#: its acting task's fields and `repeats` zeroed) -> a `struct repeat_count`; the runtime
#: reports what is still counted when it stops reading.  Holds at most REPEATS_ENTRIES
#: distinct events (past that, new ones are reported each time, as without the option).
REPEATS_MAP = "bpfbox_repeats"
REPEATS_ENTRIES = 16384
#: The per-task event such a key is made in (no userspace access).
REPEAT_SCRATCH_MAP = "bpfbox_repeat_scratch"
REPEAT_WINDOW_NS = 1_000_000_000
#: Keys of the u64 counters in the stats array map: events the ring buffer had no room for,
#: and tasks alive and confined right now (+1 on confinement or inheritance, -1 at task_free).
STAT_LOST_EVENTS = 0
STAT_CONFINED_TASKS = 1
#: Accesses denied since the profile was first loaded (replacements keep counting).
STAT_DENIALS = 2
STAT_COUNT = 3

#: Function contexts a policy may have: `struct task_state` holds a call depth for each, so
#: the per-task state has the same layout whatever the policy (a profile can be replaced in
#: place, keeping its task-storage map).
MAX_CONTEXTS = 64
#: Version of `struct task_state`'s layout (TASK_STATE_FIELDS), carried in the metadata so that
#: a pinned task-storage map is reused only by a program with the same layout.  Bump it with
#: any change to TASK_STATE_FIELDS.
TASK_STATE_LAYOUT = 4

#: Read-only configuration the runtime sets between open and load (`const volatile`).
#: The profile program's identity: inode number and the kernel's encoding of its device.
CFG_PROFILE_INO = "bpfbox_cfg_profile_ino"
CFG_PROFILE_DEV = "bpfbox_cfg_profile_dev"
#: Non-zero: log what would be denied instead of denying it.
CFG_COMPLAIN = "bpfbox_cfg_complain"
#: Non-zero: a learning run (`bpfbox-learn record`, always with complain mode): every event is
#: a `struct learn_event`, carrying the acting task's executable and user stack as well.
CFG_LEARN = "bpfbox_cfg_learn"
#: Non-zero: an event the same as one reported less than REPEAT_WINDOW_NS ago, whatever task
#: of the profile acts, is counted (REPEATS_MAP) instead of reported; the next report of it
#: carries the count in `repeats`.  Never with CFG_LEARN (a learning event's stack differs).
CFG_REDUCE_REPEATS = "bpfbox_cfg_reduce_repeats"
#: The profile program's resolved path (NUL-terminated) and the length of its last component:
#: the second identity check, for file systems (overlayfs) whose inode numbers userspace sees
#: differently from the kernel.
CFG_PROFILE_PATH = "bpfbox_cfg_profile_path"
CFG_PROFILE_NAME_LEN = "bpfbox_cfg_profile_name_len"
#: Size of the CFG_PROFILE_PATH array, NUL included.
PROFILE_PATH_LEN = 256

#: Program-name prefixes of function-context probes; the suffix is the context index.
UPROBE_ENTER_PREFIX = "bpfbox_func_enter_"
UPROBE_LEAVE_PREFIX = "bpfbox_func_leave_"
KFUNC_ENTER_PREFIX = "bpfbox_kfunc_enter_"
KFUNC_LEAVE_PREFIX = "bpfbox_kfunc_leave_"


def probe_names(context_kind: str, index: int) -> tuple[str, str]:
    """The entry and exit program names of context `index` ("func" or "kfunc")."""
    if context_kind == "func":
        return f"{UPROBE_ENTER_PREFIX}{index}", f"{UPROBE_LEAVE_PREFIX}{index}"
    return f"{KFUNC_ENTER_PREFIX}{index}", f"{KFUNC_LEAVE_PREFIX}{index}"


#: The running kernel's BTF, and the BTF record kind of a function.
BTF_PATH = "/sys/kernel/btf/vmlinux"
BTF_KIND_FUNC = 12

#: How every generated program is compiled (the runtime's build, the host tests).
CLANG_FLAGS = ("-O2", "-g", "-target", "bpf", "-D__TARGET_ARCH_x86", "-I/usr/include")

#: Path resolution limits of the generated program: the scratch buffer (a power of two, so
#: that an index masked with PATH_BUF - 1 is in bounds), the longest path and name resolved,
#: and the most components walked.  The path is written backwards into the buffer and ends
#: at its last byte, so PATH_MAX_LEN + 1 bytes are all it needs: the per-task scratch value
#: (the buffer, a name's slack, the start) must stay under 8 KiB, the most Linux 7.3 creates
#: in task storage from an LSM program (a 8,452-byte one came back NULL: every path
#: unresolved, every access denied).
PATH_BUF = 4096
PATH_MAX_LEN = 4095
NAME_MAX = 255
WALK_STEPS = 256

# Access flags of each rule kind.  One bit each, so that a request (several flags at once)
# and a grant (the union of rules) are plain bit sets.
FS_FLAGS = {
    "read": 1 << 0,
    "write": 1 << 1,
    "append": 1 << 2,
    "exec": 1 << 3,
    "getattr": 1 << 4,
    "setattr": 1 << 5,
    "create": 1 << 6,
    "rm": 1 << 7,
    "link": 1 << 8,
    "ioctl": 1 << 9,
}
#: `write` grants `append` too: appending is a restricted form of writing.  Access to a file's
#: contents grants its metadata: programs `fstat` what they open (glibc's `opendir` does).
FS_IMPLIED: dict[str, tuple[str, ...]] = {
    "read": ("getattr",),
    "write": ("append", "getattr"),
    "append": ("getattr",),
    "exec": ("getattr",),
}

PROC_FLAGS = {"read": 1 << 0, "write": 1 << 1, "getattr": 1 << 4}

PTRACE_FLAGS = {"read": 1 << 0, "attach": 1 << 1}

NET_OPS = {
    "create": 1 << 0,
    "connect": 1 << 1,
    "bind": 1 << 2,
    "listen": 1 << 3,
    "accept": 1 << 4,
    "send": 1 << 5,
    "recv": 1 << 6,
    "shutdown": 1 << 7,
}

#: Signal numbers (x86-64 / generic Linux).  `sigcheck` is signal 0: the existence probe.
SIGNALS = {
    "sigcheck": 0,
    "sighup": 1,
    "sigint": 2,
    "sigquit": 3,
    "sigill": 4,
    "sigtrap": 5,
    "sigabrt": 6,
    "sigbus": 7,
    "sigfpe": 8,
    "sigkill": 9,
    "sigusr1": 10,
    "sigsegv": 11,
    "sigusr2": 12,
    "sigpipe": 13,
    "sigalrm": 14,
    "sigterm": 15,
    "sigstkflt": 16,
    "sigchld": 17,
    "sigcont": 18,
    "sigstop": 19,
    "sigtstp": 20,
    "sigttin": 21,
    "sigttou": 22,
    "sigurg": 23,
    "sigxcpu": 24,
    "sigxfsz": 25,
    "sigvtalrm": 26,
    "sigprof": 27,
    "sigwinch": 28,
    "sigio": 29,
    "sigpwr": 30,
    "sigsys": 31,
}

#: Address families by their AF_ name, lower case without the prefix.
FAMILIES = {
    "unix": 1,
    "inet": 2,
    "ax25": 3,
    "ipx": 4,
    "appletalk": 5,
    "netrom": 6,
    "bridge": 7,
    "atmpvc": 8,
    "x25": 9,
    "inet6": 10,
    "rose": 11,
    "decnet": 12,
    "netbeui": 13,
    "security": 14,
    "key": 15,
    "netlink": 16,
    "packet": 17,
    "ash": 18,
    "econet": 19,
    "atmsvc": 20,
    "rds": 21,
    "sna": 22,
    "irda": 23,
    "pppox": 24,
    "wanpipe": 25,
    "llc": 26,
    "ib": 27,
    "mpls": 28,
    "can": 29,
    "tipc": 30,
    "bluetooth": 31,
    "iucv": 32,
    "rxrpc": 33,
    "isdn": 34,
    "phonet": 35,
    "ieee802154": 36,
    "caif": 37,
    "alg": 38,
    "nfc": 39,
    "vsock": 40,
    "kcm": 41,
    "qipcrtr": 42,
    "smc": 43,
    "xdp": 44,
    "mctp": 45,
}

#: Linux capabilities by name without the CAP_ prefix.
CAPABILITIES = {
    "chown": 0,
    "dac_override": 1,
    "dac_read_search": 2,
    "fowner": 3,
    "fsetid": 4,
    "kill": 5,
    "setgid": 6,
    "setuid": 7,
    "setpcap": 8,
    "linux_immutable": 9,
    "net_bind_service": 10,
    "net_broadcast": 11,
    "net_admin": 12,
    "net_raw": 13,
    "ipc_lock": 14,
    "ipc_owner": 15,
    "sys_module": 16,
    "sys_rawio": 17,
    "sys_chroot": 18,
    "sys_ptrace": 19,
    "sys_pacct": 20,
    "sys_admin": 21,
    "sys_boot": 22,
    "sys_nice": 23,
    "sys_resource": 24,
    "sys_time": 25,
    "sys_tty_config": 26,
    "mknod": 27,
    "lease": 28,
    "audit_write": 29,
    "audit_control": 30,
    "setfcap": 31,
    "mac_override": 32,
    "mac_admin": 33,
    "syslog": 34,
    "wake_alarm": 35,
    "block_suspend": 36,
    "audit_read": 37,
    "perfmon": 38,
    "bpf": 39,
    "checkpoint_restore": 40,
}

#: SysV IPC object kinds (the `ipc` rule's KINDS), numbered for the generated program.
IPC_KINDS = {"shm": 0, "sem": 1, "msg": 2}
#: What the `ipc` rule's OPS grant on them (docs/language.md maps each LSM hook to one).
IPC_OPS = {
    "create": 1 << 0,
    "get": 1 << 1,
    "read": 1 << 2,
    "write": 1 << 3,
    "getattr": 1 << 4,
    "control": 1 << 5,
}
#: As for files: access to an object's contents grants its attributes.
IPC_IMPLIED: dict[str, tuple[str, ...]] = {"read": ("getattr",), "write": ("getattr",)}

#: Kernel keyring operations (the `key` rule): `create` is key_alloc, the others the
#: KEY_NEED_* permissions of key_permission.
KEY_OPS = {
    "create": 1 << 0,
    "view": 1 << 1,
    "read": 1 << 2,
    "write": 1 << 3,
    "search": 1 << 4,
    "link": 1 << 5,
    "setattr": 1 << 6,
}

#: User namespace operations (the `userns` rule): `create` is userns_create, made by
#: unshare(CLONE_NEWUSER) and clone(CLONE_NEWUSER).
USERNS_OPS = {"create": 1 << 0}

#: ioctl commands the `ioctl` rule can name (x86-64 numbers); each gets the bit of its
#: position.  Terminal queries, terminal settings, file-descriptor flags, and the commands
#: that `fs(PATH, ioctl)` never grants (IOCTL_DANGEROUS).
IOCTL_COMMANDS = {
    "tcgets": 0x5401,
    "tcgets2": 0x802C542A,
    "tiocgwinsz": 0x5413,
    "tiocgpgrp": 0x540F,
    "tiocgsid": 0x5429,
    "tiocgetd": 0x5424,
    "fionread": 0x541B,
    "tiocoutq": 0x5411,
    "tiocgptn": 0x80045430,
    "tiocmget": 0x5415,
    "tcsets": 0x5402,
    "tcsetsw": 0x5403,
    "tcsetsf": 0x5404,
    "tiocswinsz": 0x5414,
    "tiocspgrp": 0x5410,
    "tiocsctty": 0x540E,
    "tiocnotty": 0x5422,
    "tcflsh": 0x540B,
    "tcxonc": 0x540A,
    "tcsbrk": 0x5409,
    "tiocsptlck": 0x40045431,
    "tiocgptpeer": 0x5441,
    "tiocexcl": 0x540C,
    "tiocnxcl": 0x540D,
    "tiocvhangup": 0x5437,
    "fioclex": 0x5451,
    "fionclex": 0x5450,
    "fionbio": 0x5421,
    "fioasync": 0x5452,
    "tiocsti": 0x5412,
    "tioclinux": 0x541C,
    "tioccons": 0x541D,
    "tiocsetd": 0x5423,
    "kdskbent": 0x4B47,
    "kdskbsent": 0x4B49,
    "kdsetkeycode": 0x4B4D,
}
#: Commands that type into a terminal or take over a console: granted only by an `ioctl` rule
#: that names them, never by `fs(PATH, ioctl)` (docs/language.md says why, one by one).
IOCTL_DANGEROUS = (
    "tiocsti",
    "tioclinux",
    "tioccons",
    "tiocsetd",
    "kdskbent",
    "kdskbsent",
    "kdsetkeycode",
)
IOCTL_FLAGS = {name: 1 << index for index, name in enumerate(IOCTL_COMMANDS)}
#: The request of a command with no name in IOCTL_COMMANDS: only `fs(PATH, ioctl)` grants it.
IOCTL_UNNAMED = 1 << 63

# Rule kinds and their numbers in events: contract/kinds.py.


class Decision(IntEnum):
    """What a rule decides, as the generated program's `apply()` receives it."""

    NONE = 0  # an `audit`-only rule: it logs, grants nothing
    ALLOW = 1
    DENY = 2
    TAINT = 3

    @property
    def action(self) -> str:
        """The policy's word for it: its directive, `audit` for an audit-only rule."""
        return "audit" if self is Decision.NONE else self.name.lower()


class EventKind(IntEnum):
    """What an event reports."""

    DENY = 1
    AUDIT = 2
    COMPLAIN = 3
    TAINT = 4


class Reason(IntEnum):
    """Why an event names its rule: the deny rule that matched, or an allow rule that would
    have granted the access had its function context held."""

    NO_RULE = 0
    DENIED_BY_RULE = 1
    OUTSIDE_CONTEXT = 2
    PARTIAL_GRANT = 3
    #: bpfbox protects itself and the kernel: no rule can allow it (docs/language.md).
    SELF_PROTECTION = 4
    #: A rename or hard link of a path at or above what the named deny rule can match.
    GUARDS_BENEATH = 5


class Protected(IntEnum):
    """What a self-protection denial refused, in `object_num` of an event whose `rule_kind` is
    SELF_PROTECTION_KIND (a bpffs path is an fs event with reason SELF_PROTECTION instead)."""

    BPF_SYSCALL = 1  # the bpf() system call; `target_pid` unused
    MODULE_REQUEST = 2  # a kernel module load on the process's behalf
    SIGNAL_OWNER = 3  # F_SETOWN/F_SETOWN_EX naming another process
    MOUNT_TREE = 4  # mounting, unmounting, moving a mount, pivot_root


#: The `rule_kind` of self-protection events: no rule kind (rule kinds number from 1).
SELF_PROTECTION_KIND = 0


EVENT_KINDS = {k.name.lower(): k.value for k in EventKind}
REASONS = {r.name.lower(): r.value for r in Reason}
PROTECTED = {p.name.lower(): p.value for p in Protected}

#: Longest path or object name carried in an event (bytes, including the NUL).
EVENT_OBJECT_LEN = 256
EVENT_COMM_LEN = 16


@dataclass(frozen=True)
class Field:
    """One field of a struct shared with the kernel side, in C and in Python's struct notation."""

    name: str
    c_type: str
    struct_code: str

    @property
    def declaration(self) -> str:
        """The C member declaration: `char comm[16]`, `__u32 pid`."""
        if "[" in self.c_type:
            base, size = self.c_type.split("[")
            return f"{base} {self.name}[{size}"
        return f"{self.c_type} {self.name}"


#: The event layout, in order.  The C header renders the struct from this list and the
#: runtime decodes with EVENT_STRUCT, so the two cannot drift apart.
EVENT_FIELDS = (
    Field("kind", "__u32", "I"),
    Field("rule_kind", "__u32", "I"),
    Field("pid", "__u32", "I"),
    Field("tgid", "__u32", "I"),
    Field("flags", "__u64", "Q"),
    Field("rule", "__u32", "I"),
    Field("reason", "__u32", "I"),
    Field("object_num", "__u32", "I"),
    Field("target_pid", "__u32", "I"),
    Field("comm", f"char[{EVENT_COMM_LEN}]", f"{EVENT_COMM_LEN}s"),
    Field("object", f"char[{EVENT_OBJECT_LEN}]", f"{EVENT_OBJECT_LEN}s"),
    # With CFG_REDUCE_REPEATS: the same events left out since this one's previous report.
    Field("repeats", "__u64", "Q"),
)
EVENT_STRUCT = struct.Struct("<" + "".join(f.struct_code for f in EVENT_FIELDS))

#: A REPEATS_MAP value: when its event was last reported (bpf_ktime_get_ns) and how many of
#: it were counted since.
REPEAT_COUNT_FIELDS = (
    Field("reported_ns", "__u64", "Q"),
    Field("repeats", "__u64", "Q"),
)
REPEAT_COUNT_STRUCT = struct.Struct("<" + "".join(f.struct_code for f in REPEAT_COUNT_FIELDS))

#: User stack frames a learning event carries (innermost first).
LEARN_STACK_DEPTH = 32
#: Bytes of a GNU build ID as the kernel reports it (BPF_BUILD_ID_SIZE).
BUILD_ID_SIZE = 20
#: Longest executable path a learning event carries (bytes, including the NUL).
LEARN_EXE_LEN = 256
#: Bytes of the user stack, from the stack pointer up, a learning event copies.  The kernel's
#: frame-pointer walk stops in a libc function that keeps data in rbp across its system call
#: (glibc's open64), so the host also scans this copy for return addresses into the
#: program's text (runtime/learn/scan.py).  2 KiB reaches main() from a libc call a few
#: frames deep; bigger costs ring-buffer space on every learning event.
LEARN_STACK_WINDOW = 2048


class FrameStatus(IntEnum):
    """`status` of a stack frame (the kernel's enum bpf_stack_build_id_status)."""

    EMPTY = 0  # no frame here
    VALID = 1  # build_id and the file offset are set
    IP = 2  # only the virtual address: the kernel could not read the build ID


#: One user stack frame: `struct bpf_stack_build_id` of linux/bpf.h, as
#: bpf_get_task_stack(BPF_F_USER_STACK | BPF_F_USER_BUILD_ID) writes it (`offset` is the raw
#: address when `status` is FrameStatus.IP).
STACK_FRAME_FIELDS = (
    Field("status", "__u32", "I"),  # an __s32 in linux/bpf.h, with values 0 to 2
    Field("build_id", f"unsigned char[{BUILD_ID_SIZE}]", f"{BUILD_ID_SIZE}s"),
    Field("offset", "__u64", "Q"),
)
STACK_FRAME_STRUCT = struct.Struct("<" + "".join(f.struct_code for f in STACK_FRAME_FIELDS))

#: What a learning run's events carry after the `struct event` they begin with: the acting
#: task's executable (resolved as paths are; empty if it could not be), the return value
#: of bpf_get_task_stack (bytes of frames written, or a negative errno) with the frames, and
#: for the stack scan: the executable's entry point as loaded (AT_ENTRY of the process's
#: auxiliary vector, 0 if not found: with the ELF header's e_entry it gives the load bias),
#: the user stack pointer, and LEARN_STACK_WINDOW bytes from it up (`window_size`: bytes
#: copied, or bpf_probe_read_user's negative errno).
LEARN_EVENT_FIELDS = (
    Field("event", "struct event", f"{EVENT_STRUCT.size}s"),
    Field("exe", f"char[{LEARN_EXE_LEN}]", f"{LEARN_EXE_LEN}s"),
    # The helper's `long`; C stores its bits, Python reads them signed (a negative errno).
    Field("stack_size", "__u64", "q"),
    Field(
        "stack",
        f"struct stack_frame[{LEARN_STACK_DEPTH}]",
        f"{LEARN_STACK_DEPTH * STACK_FRAME_STRUCT.size}s",
    ),
    Field("exe_entry", "__u64", "Q"),
    Field("user_sp", "__u64", "Q"),
    Field("window_size", "__u64", "q"),
    Field("window", f"unsigned char[{LEARN_STACK_WINDOW}]", f"{LEARN_STACK_WINDOW}s"),
)
LEARN_EVENT_STRUCT = struct.Struct("<" + "".join(f.struct_code for f in LEARN_EVENT_FIELDS))
#: The events ring buffer's size in a learning run or complain mode (bytes, a power of two):
#: set before load, big enough for thousands of events between two polls, since every access
#: may be an event and a lost one is a rule the draft or the user misses.  The compiled-in
#: size (state.bpf.h) serves enforcement, whose events are denials.
LEARN_RING_BYTES = 16 * 1024 * 1024

#: The per-task state in task-local storage (confinement, exec in progress, taint, the call
#: depth of each function context, and for `#[func]` contexts the user stack pointer and
#: return address at the outermost entry, which tell whether that call is still running).
#: Fixed whatever the policy: see MAX_CONTEXTS.
TASK_STATE_FIELDS = (
    Field("confined", "__u32", "I"),
    Field("pending", "__u32", "I"),
    Field("tainted", "__u32", "I"),
    Field("depth", f"__u32[{MAX_CONTEXTS}]", f"{MAX_CONTEXTS}I"),
    # Non-zero: the thread's next statfs is an overlay's statfs of its layer, let through
    # (hooks_fs.bpf.h, sb_statfs).  Also aligns the 64-bit arrays below alike in C and Python.
    Field("statfs_passed", "__u32", "I"),
    Field("entry_sp", f"__u64[{MAX_CONTEXTS}]", f"{MAX_CONTEXTS}Q"),
    Field("entry_ret", f"__u64[{MAX_CONTEXTS}]", f"{MAX_CONTEXTS}Q"),
    # The super block of the overlay the thread's last allowed access reached (0: none):
    # overlayfs' own work for that access is not the thread's (overlay.bpf.h).
    Field("overlay_sb", "__u64", "Q"),
)
TASK_STATE_STRUCT = struct.Struct("<" + "".join(f.struct_code for f in TASK_STATE_FIELDS))

#: `rule` value meaning "no rule to point at" (rule ids in metadata start at 1).
NO_RULE = 0
