"""The rule kinds: one registry entry per kind, and everything else derives from it.

An entry says how a rule of the kind is written (its parameters and their flag tables), what
its object is (which decides how the generated program matches it), which LSM hooks decide it
and with which flags, which file of the BPF library (codegen_templates/bpf) holds those
hooks, the extra C parameters of its `decide_KIND()` function, its number in events and how
events describe an access.  The checks, the lowering, the IR's hook table, the code
generator, the metadata validation, the runtime's messages and the docs test read it;
adding a kind is one entry here and the hooks in one C header.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from . import abi


class Param(Enum):
    """What an argument position accepts."""

    PATH = "a path"
    TARGET = "a target (an executable path, `self` or `any`)"
    FLAGS = "names joined with `|`"


class Object(Enum):
    """What a rule names besides its flags, and so how the generated program matches it."""

    PATH = "path"  # a glob over file paths: a state of the fs DFA
    TARGET = "target"  # another process, by its program: `self`, `any` or the target DFA
    #: A set of numbered classes, named by the kind's first parameter: address families
    #: (net), SysV IPC object kinds (ipc).
    CLASS = "class"
    NONE = "none"  # nothing: every access of the kind is a candidate


@dataclass(frozen=True)
class FlagSet:
    """The names a FLAGS argument may use, their bits, and the error code for a wrong name."""

    what: str  # "access flag", "signal"...: used in messages
    bits: dict[str, int]
    unknown_code: str
    implied: dict[str, tuple[str, ...]] | None = None
    #: The bits are `1 << number` of a kernel numbering (signals, capabilities, families,
    #: IPC object kinds):
    #: the C side computes them from the number, so the C header has no macro for each.
    numbered: bool = False

    def mask(self, names: list[str]) -> int:
        """The bit set of `names`; `any` is every name."""
        if "any" in names:
            names = list(self.bits)
        mask = 0
        for name in names:
            mask |= self.bits[name]
            for implied in (self.implied or {}).get(name, ()):
                mask |= self.bits[implied]
        return mask

    def names(self, mask: int) -> list[str]:
        """The names of the bits in `mask`, in table order."""
        return [name for name, bit in self.bits.items() if mask & bit]


def _numbered(numbers: dict[str, int]) -> dict[str, int]:
    return {name: 1 << number for name, number in numbers.items()}


@dataclass(frozen=True)
class Parameter:
    name: str
    kind: Param
    flags: FlagSet | None = None
    default: str | None = None  # for an optional trailing parameter: its value when omitted

    @property
    def flag_set(self) -> FlagSet:
        """The names of a FLAGS parameter (each has its table; only FLAGS parameters do)."""
        assert self.flags is not None, f"parameter {self.name}: no flags"
        return self.flags


@dataclass(frozen=True)
class Hook:
    """An LSM hook that decides a rule kind, and the flags it can request (None: all)."""

    name: str
    flags: tuple[str, ...] | None = None
    #: The library file with its program, when not its kind's (exec checks are lifecycle's).
    header: str | None = None
    #: The hook is not told which process is the target (prlimit): only rules whose target
    #: is `any` decide it.
    unknown_target: bool = False


@dataclass(frozen=True)
class Absorbed:
    """Rules of `kind` with `flag` decide this kind's accesses too: an allow rule grants the
    bits `allows`, any other decision (deny, taint, audit) applies to `applies`.  So
    `fs(PATH, ioctl)` allows every ioctl command but the dangerous ones, and denies all."""

    kind: str
    flag: str
    allows: int
    applies: int


@dataclass(frozen=True)
class RuleKind:
    name: str
    #: Its number in events (`rule_kind`) and in the C header (RULE_NAME).
    number: int
    parameters: tuple[Parameter, ...]
    object: Object
    hooks: tuple[Hook, ...]
    #: The library file (codegen_templates/bpf) with its hooks' programs.
    header: str
    #: How events describe an access: a str.format of access, object, target, family, kind.
    wording: str
    #: The extra C parameters of its decide_KIND() function, after `__u64 req`.
    c_parameters: str = ""
    #: Rules of another kind that take part in this kind's decisions (see Absorbed).
    absorbs: Absorbed | None = None
    #: The request bit of an access no flag names (events then show its number instead).
    unnamed: int = 0

    @property
    def required(self) -> int:
        return sum(1 for p in self.parameters if p.default is None)

    def signature(self) -> str:
        parts = [p.name if p.default is None else f"{p.name}?" for p in self.parameters]
        return f"{self.name}({', '.join(parts)})"

    @property
    def flags(self) -> FlagSet:
        """The flag table of the last FLAGS parameter: what a rule's `flags` bits mean."""
        flag_set = self.parameters[-1].flags
        assert flag_set is not None, f"rule kind {self.name}: last parameter has no flags"
        return flag_set

    @property
    def classes(self) -> FlagSet:
        """The flag table of the first parameter of a CLASS kind: what `classes` bits mean."""
        flag_set = self.parameters[0].flags
        assert self.object is Object.CLASS and flag_set, f"rule kind {self.name}: no classes"
        return flag_set

    def hook_flags(self, hook: Hook) -> tuple[str, ...]:
        return hook.flags if hook.flags is not None else tuple(self.flags.bits)


#: LSM hooks of the library that no rule kind owns: exec identity, confinement, inheritance.
LIFECYCLE_HOOKS = (
    "bprm_creds_for_exec",
    "bprm_committed_creds",
    "task_alloc",
    "task_free",
)
#: The library file with the lifecycle hooks besides the kinds' (task_alloc and task_free
#: share hooks_task.bpf.h with signals and ptrace).
LIFECYCLE_HEADER = "hooks_exec.bpf.h"
#: LSM hooks that refuse whatever the policy says (self-protection: no rule can allow them),
#: and their library file.
SELF_PROTECTION_HOOKS = (
    "bpf",
    "kernel_module_request",
    "sb_mount",
    "sb_umount",
    "move_mount",
    "sb_pivotroot",
)
SELF_PROTECTION_HEADER = "hooks_self.bpf.h"


FS_ACCESS = FlagSet("access flag", abi.FS_FLAGS, "E0102", abi.FS_IMPLIED)
PROC_ACCESS = FlagSet("access flag", abi.PROC_FLAGS, "E0102")
PTRACE_ACCESS = FlagSet("access flag", abi.PTRACE_FLAGS, "E0102")
NET_OPS = FlagSet("network operation", abi.NET_OPS, "E0102")
FAMILIES = FlagSet("address family", _numbered(abi.FAMILIES), "E0104", numbered=True)
SIGNALS = FlagSet("signal", _numbered(abi.SIGNALS), "E0105", numbered=True)
CAPABILITIES = FlagSet("capability", _numbered(abi.CAPABILITIES), "E0106", numbered=True)
IPC_CLASSES = FlagSet("IPC object kind", _numbered(abi.IPC_KINDS), "E0114", numbered=True)
IPC_OPS = FlagSet("IPC operation", abi.IPC_OPS, "E0102", abi.IPC_IMPLIED)
KEY_OPS = FlagSet("key operation", abi.KEY_OPS, "E0102")
USERNS_OPS = FlagSet("user namespace operation", abi.USERNS_OPS, "E0102")
IOCTL_COMMANDS = FlagSet("ioctl command", abi.IOCTL_FLAGS, "E0115")
_IOCTL_EVERY = sum(abi.IOCTL_FLAGS.values()) | abi.IOCTL_UNNAMED
_IOCTL_DANGEROUS = IOCTL_COMMANDS.mask(list(abi.IOCTL_DANGEROUS))

_TARGET_PARAMETERS = ", int same, __u32 target"

#: The rule kinds in order (IR hook table, decide functions, docs).  Tests may add entries.
REGISTRY: dict[str, RuleKind] = {
    kind.name: kind
    for kind in (
        RuleKind(
            "fs",
            1,
            (Parameter("PATH", Param.PATH), Parameter("ACCESS", Param.FLAGS, FS_ACCESS)),
            Object.PATH,
            (
                Hook("file_open", ("read", "write", "append", "exec")),
                Hook("bprm_check_security", ("exec",), header=LIFECYCLE_HEADER),
                Hook("mmap_file", ("exec",)),
                Hook("file_mprotect", ("exec",)),
                Hook("inode_getattr", ("getattr",)),
                Hook("inode_getxattr", ("getattr",)),
                Hook("inode_listxattr", ("getattr",)),
                Hook("inode_get_acl", ("getattr",)),
                Hook("sb_statfs", ("getattr",)),
                Hook("path_notify", ("read",)),
                Hook("inode_readlink", ("read",)),
                Hook("path_chmod", ("setattr",)),
                Hook("path_chown", ("setattr",)),
                Hook("inode_setattr", ("setattr",)),
                Hook("inode_setxattr", ("write", "setattr")),
                Hook("inode_removexattr", ("write", "setattr")),
                Hook("inode_set_acl", ("setattr",)),
                Hook("inode_remove_acl", ("setattr",)),
                Hook("path_truncate", ("write",)),
                Hook("file_truncate", ("write",)),
                Hook("path_mknod", ("create",)),
                Hook("path_mkdir", ("create",)),
                Hook("path_symlink", ("create",)),
                Hook("path_unlink", ("rm",)),
                Hook("path_rmdir", ("rm",)),
                Hook("path_link", ("link", "create")),
                Hook("path_rename", ("rm", "create")),
                # Writes beyond an append grant: fallocate, RWF_NOAPPEND, io_uring (also
                # sockets' send/recv), clearing O_APPEND (also F_SETOWN: self-protection).
                Hook("file_permission", ("write",)),
                Hook("file_fcntl", ("write",)),
                # Exclusive locks: flock(LOCK_EX), fcntl(F_WRLCK), write leases.
                Hook("file_lock", ("append",)),
                # Connecting or sending to a pathname unix socket writes to its file.
                Hook("unix_stream_connect", ("write",), header="hooks_net.bpf.h"),
                Hook("unix_may_send", ("write",), header="hooks_net.bpf.h"),
                # POSIX message queues: created and removed below the path hooks.
                Hook("inode_create", ("create",), header="hooks_ipc.bpf.h"),
                Hook("inode_unlink", ("rm",), header="hooks_ipc.bpf.h"),
            ),
            header="hooks_fs.bpf.h",
            wording="{access} {object}",
            c_parameters=", __u32 state",
        ),
        RuleKind(
            "proc",
            2,
            (Parameter("TARGET", Param.TARGET), Parameter("ACCESS", Param.FLAGS, PROC_ACCESS)),
            Object.TARGET,
            (
                Hook("file_open", ("read", "write")),
                Hook("inode_getattr", ("getattr",)),
                Hook("inode_getxattr", ("getattr",)),
                Hook("inode_listxattr", ("getattr",)),
                Hook("inode_get_acl", ("getattr",)),
                Hook("sb_statfs", ("getattr",)),
                Hook("path_notify", ("read",)),
                Hook("inode_readlink", ("read",)),
                # Changing how another process runs, and its resource limits (reading them:
                # read).
                *(
                    Hook(f"task_{change}", ("write",), header="hooks_task.bpf.h")
                    for change in ("setnice", "setioprio", "setscheduler", "movememory")
                ),
                Hook(
                    "task_prlimit",
                    ("read", "write"),
                    header="hooks_task.bpf.h",
                    unknown_target=True,
                ),
            ),
            header="hooks_fs.bpf.h",
            wording="proc {access} {target}",
            c_parameters=_TARGET_PARAMETERS,
        ),
        RuleKind(
            "signal",
            3,
            (Parameter("TARGET", Param.TARGET), Parameter("SIGNALS", Param.FLAGS, SIGNALS)),
            Object.TARGET,
            (Hook("task_kill"),),
            header="hooks_task.bpf.h",
            wording="signal {access} to {target}",
            c_parameters=_TARGET_PARAMETERS,
        ),
        RuleKind(
            "ptrace",
            4,
            (
                Parameter("TARGET", Param.TARGET),
                Parameter("ACCESS", Param.FLAGS, PTRACE_ACCESS, default="any"),
            ),
            Object.TARGET,
            (Hook("ptrace_access_check", ("read", "attach")), Hook("ptrace_traceme", ("attach",))),
            header="hooks_task.bpf.h",
            wording="ptrace {access} {target}",
            c_parameters=_TARGET_PARAMETERS,
        ),
        RuleKind(
            "net",
            5,
            (
                Parameter("FAMILY", Param.FLAGS, FAMILIES),
                Parameter("OPS", Param.FLAGS, NET_OPS),
            ),
            Object.CLASS,
            tuple(
                Hook(f"socket_{hook}", (op,))
                for hook, op in (
                    ("create", "create"),
                    ("connect", "connect"),
                    ("bind", "bind"),
                    ("listen", "listen"),
                    ("accept", "accept"),
                    ("sendmsg", "send"),
                    ("recvmsg", "recv"),
                    ("shutdown", "shutdown"),
                )
            )
            # Reads and writes of a socket's file: sendfile, splice, read, write.
            + (Hook("file_permission", ("send", "recv"), header="hooks_fs.bpf.h"),),
            header="hooks_net.bpf.h",
            wording="net {family} {access}",
            c_parameters=", __u32 class",
        ),
        RuleKind(
            "cap",
            6,
            (Parameter("NAMES", Param.FLAGS, CAPABILITIES),),
            Object.NONE,
            (Hook("capable"),),
            header="hooks_cap.bpf.h",
            wording="cap {access}",
        ),
        RuleKind(
            "ipc",
            7,
            (
                Parameter("KINDS", Param.FLAGS, IPC_CLASSES),
                Parameter("OPS", Param.FLAGS, IPC_OPS),
            ),
            Object.CLASS,
            (
                *(Hook(f"{kind}_alloc_security", ("create",)) for kind in ("shm", "sem")),
                Hook("msg_queue_alloc_security", ("create",)),
                *(Hook(f"{kind}_associate", ("get",)) for kind in ("shm", "sem")),
                Hook("msg_queue_associate", ("get",)),
                Hook("shm_shmat", ("read", "write")),
                Hook("sem_semop", ("read", "write")),
                Hook("msg_queue_msgsnd", ("write",)),
                Hook("msg_queue_msgrcv", ("read",)),
                Hook("shm_shmctl", ("getattr", "control")),
                Hook("sem_semctl", ("read", "write", "getattr", "control")),
                Hook("msg_queue_msgctl", ("getattr", "control")),
            ),
            header="hooks_ipc.bpf.h",
            wording="ipc {class} {access}",
            c_parameters=", __u32 class",
        ),
        RuleKind(
            "key",
            8,
            (Parameter("OPS", Param.FLAGS, KEY_OPS),),
            Object.NONE,
            (
                Hook("key_alloc", ("create",)),
                Hook("key_permission", ("view", "read", "write", "search", "link", "setattr")),
            ),
            header="hooks_key.bpf.h",
            wording="key {access}",
        ),
        RuleKind(
            "ioctl",
            9,
            (Parameter("PATH", Param.PATH), Parameter("COMMANDS", Param.FLAGS, IOCTL_COMMANDS)),
            Object.PATH,
            (Hook("file_ioctl"), Hook("file_ioctl_compat")),
            header="hooks_ioctl.bpf.h",
            wording="ioctl {access} {object}",
            c_parameters=", __u32 state",
            absorbs=Absorbed("fs", "ioctl", _IOCTL_EVERY & ~_IOCTL_DANGEROUS, _IOCTL_EVERY),
            unnamed=abi.IOCTL_UNNAMED,
        ),
        RuleKind(
            "userns",
            10,
            (Parameter("OPS", Param.FLAGS, USERNS_OPS),),
            Object.NONE,
            (Hook("userns_create", ("create",)),),
            header="hooks_userns.bpf.h",
            wording="userns {access}",
        ),
    )
}


def by_number(number: int) -> RuleKind | None:
    """The kind with that event number, or None."""
    kind = _FOUND_BY_NUMBER.get(number)
    # Asked several times per event: a kind found before is kept while it is registered.
    if kind is None or REGISTRY.get(kind.name) is not kind:
        kind = next((k for k in REGISTRY.values() if k.number == number), None)
        if kind is not None:
            _FOUND_BY_NUMBER[number] = kind
    return kind


_FOUND_BY_NUMBER: dict[int, RuleKind] = {}


def headers() -> list[str]:
    """The library files with hooks, each once: the lifecycle's, the kinds' in registry
    order (and those their hooks name), then self-protection's."""
    kind_headers = (k.header for k in REGISTRY.values())
    named = [h.header for k in REGISTRY.values() for h in k.hooks if h.header]
    return list(dict.fromkeys([LIFECYCLE_HEADER, *kind_headers, *named, SELF_PROTECTION_HEADER]))
