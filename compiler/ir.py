"""The IR: what the generated program must decide, per hook, with every name resolved.

Lowering builds it from the checked AST and the resolved symbols; the lints read it; the code
generator renders it.  `format_ir` prints it as deterministic text (`bpfboxc --emit ir` and
the IR goldens).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property

from bpfbox.contract import abi

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

    @property
    def path_glob(self) -> str:
        """The glob of a "path" target (the others name no program)."""
        assert self.kind == "path" and self.glob is not None, f"a `{self.kind}` target has no glob"
        return self.glob

    def __str__(self) -> str:
        return f'"{self.glob}"' if self.kind == "path" else self.kind


@dataclass(frozen=True)
class Rule:
    """One rule with its accumulated directives.

    `decision` is ALLOW, DENY, TAINT or NONE (an `audit`-only rule, which grants
    nothing).  `contexts` is a conjunction of disjunctions: every tuple must have one context
    the thread is inside (one tuple per enclosing block with context directives).
    """

    id: int
    kind: str
    decision: abi.Decision
    audit: bool
    flags: int
    path: str | None
    target: Target | None
    classes: int
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
        if self.classes:
            return "|".join(language.RULE_KINDS[self.kind].classes.names(self.classes))
        return "-"


def _flag_set(kind: str) -> language.FlagSet:
    """The flag table of a rule kind (what its `flags` bits mean)."""
    return language.RULE_KINDS[kind].flags


@dataclass(frozen=True)
class Hook:
    """An LSM hook and the rule kind and flags it decides."""

    name: str
    kind: str
    flags: tuple[str, ...]
    #: The hook can request any flag of its kind (a signal, a capability).
    any_flag: bool = False
    #: Only rules for `any` target decide it (kinds.Hook.unknown_target).
    unknown_target: bool = False


def hooks() -> tuple[Hook, ...]:
    """The hooks of the generated program, kind by kind as the registry lists them.  Every
    hook is always emitted, whatever the policy: a kind with no rule is then denied by
    default."""
    return tuple(
        Hook(hook.name, kind.name, kind.hook_flags(hook), hook.flags is None, hook.unknown_target)
        for kind in language.RULE_KINDS.values()
        for hook in kind.hooks
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
        return self._indexes[pattern]

    @cached_property
    def _indexes(self) -> dict[str, int]:
        # A dict, not tuple.index: policies have thousands of globs.
        return {pattern: index for index, pattern in enumerate(self.globs)}


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
    #: The main policy's file as given to bpfboxc (spans of its rules name it).
    source: str = ""

    def rule_file(self, rule: Rule) -> str:
        """The file a rule is written in, as events show it: the policy's base name for its
        own rules, `<bpfbox>/base.bpfbox` for a shipped fragment's, and a file fragment's
        path relative to the policy's folder."""
        file = rule.span.file
        if file == self.source:
            return self.policy
        if file.startswith("<"):
            return file
        return os.path.relpath(file, os.path.dirname(self.source) or ".")

    @property
    def has_taint(self) -> bool:
        return any(r.decision is abi.Decision.TAINT for r in self.rules)

    def rules_of(self, kind: str) -> tuple[Rule, ...]:
        return tuple(r for r in self.rules if r.kind == kind)

    def rules_for(self, hook: Hook) -> tuple[Rule, ...]:
        """The rules a hook consults: same kind, asking for a flag the hook can request, and
        for `any` target if the hook knows no other; and the rules of another kind that the
        hook's kind absorbs."""
        bits = _flag_set(hook.kind).bits
        mask = sum(bits[name] for name in hook.flags)
        absorbed = self.absorbed(hook.kind)
        return tuple(
            r
            for r in self.rules
            if (r.kind == hook.kind and r.flags & mask and _targets(r, hook)) or r in absorbed
        )

    def absorbed(self, kind: str) -> tuple[Rule, ...]:
        """The rules of another kind that decide `kind`'s accesses too (RuleKind.absorbs)."""
        absorbs = language.RULE_KINDS[kind].absorbs
        if absorbs is None:
            return ()
        flag = _flag_set(absorbs.kind).bits[absorbs.flag]
        return tuple(r for r in self.rules_of(absorbs.kind) if r.flags & flag)


def _targets(rule: Rule, hook: Hook) -> bool:
    """Whether `rule`'s target can match at `hook`: every target where the hook is told the
    process, only `any` where it is not."""
    return not hook.unknown_target or (rule.target is not None and rule.target.kind == "any")


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
        decision = rule.decision.name.lower()
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
    for hook in hooks():
        ids = " ".join(str(r.id) for r in program.rules_for(hook)) or "no rule"
        flags = "any" if hook.any_flag else "|".join(hook.flags)
        lines.append(f"hook {hook.name} {hook.kind} {flags}: {ids}")
    return "\n".join(lines) + "\n"
