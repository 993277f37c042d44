"""Pass 6, lints: rules that can never matter.  Warnings only; the program is still built.

Input: the IR.  Output: W-coded diagnostics.  A duplicate rule says nothing its twin does not;
an allow rule whose every flag is denied, on objects all of which a deny rule covers, under
no narrower context, grants nothing.  Glob coverage is decided exactly, on the program's DFA of
all its globs (every path the allow glob matches is matched by the deny glob).
"""

from __future__ import annotations

from bpfbox.contract import abi

from .diagnostics import Diagnostics, Note
from .ir import GlobTable, Program, Rule


def lint(program: Program, diagnostics: Diagnostics) -> None:
    """Report duplicate and shadowed rules."""
    seen: dict[tuple[object, ...], Rule] = {}
    for rule in program.rules:
        key = _identity(rule)
        if key in seen:
            diagnostics.add(
                "W0001",
                "this rule repeats an earlier one",
                rule.span,
                notes=(Note("the same rule", seen[key].span),),
                help="remove one of them",
            )
        else:
            seen[key] = rule
    denies = [r for r in program.rules if r.decision is abi.Decision.DENY and r.always_active]
    fs_coverage = _GlobCoverage(program.fs_globs)
    target_coverage = _GlobCoverage(program.target_globs)
    # A path rule can only be covered by a deny rule whose glob covers its own: looking those
    # up keeps policies of thousands of rules from testing every (allow, deny) pair.
    path_denies: dict[str, list[Rule]] = {}
    for deny in denies:
        if deny.path is not None:
            path_denies.setdefault(deny.path, []).append(deny)
    for rule in program.rules:
        if rule.decision is not abi.Decision.ALLOW:
            continue
        candidates = denies
        if rule.path is not None:
            wider = fs_coverage.covering(rule.path)
            if wider is not None:
                found = (d for g in wider for d in path_denies.get(g, ()))
                candidates = sorted(found, key=lambda d: d.id)
        shadow = next(
            (d for d in candidates if _covers(d, rule, fs_coverage, target_coverage)), None
        )
        if shadow is not None:
            diagnostics.add(
                "W0002",
                "this allow rule never grants anything: a deny rule covers it",
                rule.span,
                notes=(Note("the deny rule", shadow.span),),
                help="deny wins over allow; narrow the deny rule or remove this one",
            )


def _identity(rule: Rule) -> tuple[object, ...]:
    return (
        rule.kind,
        rule.decision,
        rule.audit,
        rule.flags,
        rule.path,
        rule.target,
        rule.classes,
        rule.contexts,
    )


def _covers(deny: Rule, allow: Rule, paths: _GlobCoverage, targets: _GlobCoverage) -> bool:
    """Does `deny` deny every flag of `allow` on every object `allow` names?"""
    if deny.kind != allow.kind or allow.flags & ~deny.flags:
        return False
    if allow.classes & ~deny.classes:
        return False
    # Rules of one kind name the same objects: both a path, or both a target.
    if allow.path is not None:
        return deny.path is not None and paths.covers(deny.path, allow.path)
    if allow.target is not None:
        if deny.target is None:
            return False
        if deny.target.kind == "any" or deny.target == allow.target:
            return True
        return allow.target.kind == "path" == deny.target.kind and targets.covers(
            deny.target.path_glob, allow.target.path_glob
        )
    return True


class _GlobCoverage:
    """Which globs of a table match every path another one matches, read off the table's DFA.

    The DFA matches all the table's globs at once (one product automaton, built for the
    program anyway), so glob `wide` covers glob `narrow` exactly when every state that accepts
    `narrow` accepts `wide` too.  Computed once per table, on first use: linear in its size,
    where a DFA per (allow, deny) pair was quadratic in the number of rules.
    """

    def __init__(self, table: GlobTable) -> None:
        self._table = table
        self._index = {pattern: index for index, pattern in enumerate(table.globs)}
        self._implied: dict[int, frozenset[int]] | None = None

    def covers(self, wide: str, narrow: str) -> bool:
        if wide == narrow:
            return True
        implied = self._implied_by(narrow)
        # A glob that matches no path at all is covered by anything.
        return implied is None or self._index[wide] in implied

    def covering(self, narrow: str) -> list[str] | None:
        """The globs that cover `narrow` (itself included), or None for all of them (it
        matches no path)."""
        implied = self._implied_by(narrow)
        if implied is None:
            return None
        return [self._table.globs[i] for i in implied]

    def _implied_by(self, narrow: str) -> frozenset[int] | None:
        if self._implied is None:
            self._implied = _implied_globs(self._table)
        return self._implied.get(self._index[narrow])


def _implied_globs(table: GlobTable) -> dict[int, frozenset[int]]:
    """For each glob some path matches: the globs that match every path it matches."""
    implied: dict[int, frozenset[int]] = {}
    for accepted in table.dfa.accepts:
        for index in accepted:
            implied[index] = implied[index] & accepted if index in implied else accepted
    return implied
