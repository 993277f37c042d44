"""The IR: what the generated program must decide, per hook, with every name resolved.

Lowering builds it from the checked AST and the resolved symbols; the lints read it; the code
generator renders it.  `format_ir` prints it as deterministic text (`bpfboxc --emit ir` and
the IR goldens).
"""

from __future__ import annotations

from dataclasses import dataclass

from . import glob, language
from .source import Span


@dataclass(frozen=True)
class Context:
    """A function whose dynamic extent a rule may be limited to."""

    index: int
    kind: str  # "func" or "kfunc"
    symbol: str
    binary: str | None = None  # func: the ELF file the uprobe goes on
    offset: int | None = None  # func: file offset of the entry
    span: Span | None = None
    library: str | None = None  # func: the library named with `in`, None for the program

    def describe(self) -> str:
        if self.kind == "kfunc":
            return f"kernel function {self.symbol}"
        return f"{self.symbol} in {self.binary} at offset {self.offset:#x}"


@dataclass(frozen=True)
class Target:
    """The other process of a proc, signal or ptrace rule."""

    kind: str  # "self", "any" or "path"
    glob: str | None = None

    def __str__(self) -> str:
        return f'"{self.glob}"' if self.kind == "path" else self.kind


@dataclass(frozen=True)
class Rule:
    """One rule with its accumulated directives.

    `decision` is "allow", "deny", "taint" or None (an `audit`-only rule, which grants
    nothing).  `contexts` is a conjunction of disjunctions: every tuple must have one context
    the thread is inside (one tuple per enclosing block with context directives).
    """

    id: int
    kind: str
    decision: str | None
    audit: bool
    flags: int
    path: str | None
    target: Target | None
    families: int
    contexts: tuple[tuple[int, ...], ...]
    text: str
    span: Span

    @property
    def always_active(self) -> bool:
        return not self.contexts

    def flag_names(self) -> list[str]:
        return _flag_set(self.kind).names(self.flags)

    def object_text(self) -> str:
        if self.path is not None:
            return f'"{self.path}"'
        if self.target is not None:
            return str(self.target)
        if self.families:
            return "|".join(language.FAMILIES.names(self.families))
        return "-"


def _flag_set(kind: str) -> language.FlagSet:
    """What a rule kind's `flags` bits mean."""
    return language.RULE_KINDS[kind].access


@dataclass(frozen=True)
class Hook:
    """An LSM hook and the rule kind and flags it decides."""

    name: str
    kind: str
    flags: tuple[str, ...]


#: The hooks of the generated program, in the order the template defines them.  Every hook is
#: always emitted, whatever the policy: a kind with no rule is then denied by default.
HOOKS = (
    Hook("file_open", "fs", ("read", "write", "append", "exec")),
    Hook("bprm_check_security", "fs", ("exec",)),
    Hook("mmap_file", "fs", ("exec",)),
    Hook("file_mprotect", "fs", ("exec",)),
    Hook("inode_getattr", "fs", ("getattr",)),
    Hook("path_chmod", "fs", ("setattr",)),
    Hook("path_chown", "fs", ("setattr",)),
    Hook("inode_setattr", "fs", ("setattr",)),
    Hook("path_truncate", "fs", ("write",)),
    Hook("path_mknod", "fs", ("create",)),
    Hook("path_mkdir", "fs", ("create",)),
    Hook("path_symlink", "fs", ("create",)),
    Hook("path_unlink", "fs", ("rm",)),
    Hook("path_rmdir", "fs", ("rm",)),
    Hook("path_link", "fs", ("link", "create")),
    Hook("path_rename", "fs", ("rm", "create")),
    Hook("file_ioctl", "fs", ("ioctl",)),
    Hook("file_open", "proc", ("read", "write")),
    Hook("inode_getattr", "proc", ("getattr",)),
    Hook("task_kill", "signal", tuple(language.SIGNALS.bits)),
    Hook("ptrace_access_check", "ptrace", ("read", "attach")),
    Hook("ptrace_traceme", "ptrace", ("attach",)),
    Hook("socket_create", "net", ("create",)),
    Hook("socket_connect", "net", ("connect",)),
    Hook("socket_bind", "net", ("bind",)),
    Hook("socket_listen", "net", ("listen",)),
    Hook("socket_accept", "net", ("accept",)),
    Hook("socket_sendmsg", "net", ("send",)),
    Hook("socket_recvmsg", "net", ("recv",)),
    Hook("socket_shutdown", "net", ("shutdown",)),
    Hook("capable", "cap", tuple(language.CAPABILITIES.bits)),
)


@dataclass(frozen=True)
class GlobTable:
    """The distinct globs of one object class (file paths, or target programs), in index
    order, and the DFA that matches all of them at once."""

    name: str
    what: str
    globs: tuple[str, ...]
    dfa: glob.Dfa

    def index(self, pattern: str) -> int:
        return self.globs.index(pattern)


@dataclass(frozen=True)
class Program:
    """Everything the code generator needs for one profile."""

    policy: str
    profile: str
    name: str
    contexts: tuple[Context, ...]
    rules: tuple[Rule, ...]
    fs_globs: GlobTable
    target_globs: GlobTable

    @property
    def has_taint(self) -> bool:
        return any(r.decision == "taint" for r in self.rules)

    def rules_of(self, kind: str) -> tuple[Rule, ...]:
        return tuple(r for r in self.rules if r.kind == kind)

    def rules_for(self, hook: Hook) -> tuple[Rule, ...]:
        """The rules a hook consults: same kind, and asking for a flag the hook can request."""
        bits = _flag_set(hook.kind).bits
        mask = sum(bits[name] for name in hook.flags)
        return tuple(r for r in self.rules_of(hook.kind) if r.flags & mask)


def format_ir(program: Program) -> str:
    """The IR as stable, line-oriented text."""
    lines = [
        f"profile {program.profile}",
        f"policy {program.policy}",
        f"mode {'taint' if program.has_taint else 'enforce-from-exec'}",
    ]
    lines += [f"context {c.index} {c.kind} {c.describe()}" for c in program.contexts]
    for table in (program.fs_globs, program.target_globs):
        lines.append(
            f"dfa {table.name} {len(table.globs)} globs {len(table.dfa.transitions)} states "
            f"{table.dfa.class_count} byte classes"
        )
    for rule in program.rules:
        decision = rule.decision or "none"
        audit = " audit" if rule.audit else ""
        flags = "|".join(rule.flag_names())
        when = ""
        if rule.contexts:
            clauses = " and ".join(
                "(" + " or ".join(f"ctx{i}" for i in clause) + ")" for clause in rule.contexts
            )
            when = f" when {clauses}"
        lines.append(
            f"rule {rule.id} {rule.span} {rule.kind} {decision}{audit} {rule.object_text()} "
            f"{flags}{when}"
        )
    for hook in HOOKS:
        ids = " ".join(str(r.id) for r in program.rules_for(hook)) or "no rule"
        flags = "|".join(hook.flags) if hook.kind not in ("signal", "cap") else "any"
        lines.append(f"hook {hook.name} {hook.kind} {flags}: {ids}")
    return "\n".join(lines) + "\n"
