"""The decision a compiled policy makes on one access, computed on the host from the IR.

This follows docs/language.md "Semantics" 3 with the compiler's own glob automata (the DFAs
the generated program scans), so that bpfbox-learn can tell which recorded accesses a
fragment such as `base` already grants, and check that a draft or an edited policy allows
what it should, without a kernel.  Taint is not modelled: a draft has no taint rules, and a
tainted process's allow and deny rules decide exactly as here.
"""

from __future__ import annotations

from dataclasses import dataclass

from bpfbox.compiler import ir, language
from bpfbox.contract import abi


@dataclass(frozen=True)
class Request:
    """One access: what `kind` asks for (`mask`, bits of the kind's flag table) on what."""

    kind: str
    mask: int
    path: str | None = None  # fs: the file
    target: str | None = None  # proc, signal, ptrace: the target's executable
    target_is_self: bool = False  # the target runs the profile's program (or is the task)
    family: str | None = None  # net: the address family; ipc: the IPC object kind

    # Whoever makes a request sets the object its kind names (the learning log requires it).
    @property
    def known_path(self) -> str:
        """`path`, of a request of a kind whose rules name a path."""
        return _named(self.path, "path", self.kind)

    @property
    def known_target(self) -> str:
        """`target`, of a request of a kind whose rules name a target."""
        return _named(self.target, "target", self.kind)


def _named(name: str | None, what: str, kind: str) -> str:
    if name is None:
        raise ValueError(f"a `{kind}` request without its {what}")
    return name


def allows(program: ir.Program, request: Request, inside: frozenset[str] = frozenset()) -> bool:
    """Whether `program` grants `request` to a thread inside calls to the functions `inside`
    (names of `#[func]` contexts on the profile's program; kernel contexts never hold here)."""
    active_contexts = {
        context.index
        for context in program.contexts
        if context.kind == "func" and context.library is None and context.symbol in inside
    }
    granted = 0
    for rule in _matching_rules(program, request):
        if not all(any(i in active_contexts for i in clause) for clause in rule.contexts):
            continue
        if rule.decision is abi.Decision.DENY and rule.flags & request.mask:
            return False
        if rule.decision is abi.Decision.ALLOW:
            granted |= rule.flags
    return request.mask & ~granted == 0


def _matching_rules(program: ir.Program, request: Request) -> list[ir.Rule]:
    rules = program.rules_of(request.kind)
    kind = language.RULE_KINDS[request.kind]
    if kind.object is language.Object.PATH:
        matched = program.fs_globs.dfa.match(request.known_path.encode())
        return [
            r for r in rules if r.path is not None and program.fs_globs.index(r.path) in matched
        ]
    if kind.object is language.Object.CLASS:
        bit = kind.classes.bits.get(request.family or "", 0)
        return [r for r in rules if r.classes & bit]
    if kind.object is language.Object.NONE:
        return list(rules)
    matched = program.target_globs.dfa.match(request.known_target.encode())
    return [
        r
        for r in rules
        if r.target is not None and _target_matches(program, r.target, matched, request)
    ]


def _target_matches(
    program: ir.Program, target: ir.Target, matched: frozenset[int], request: Request
) -> bool:
    if target.kind == "any":
        return True
    if target.kind == "self":
        return request.target_is_self
    return program.target_globs.index(target.path_glob) in matched
