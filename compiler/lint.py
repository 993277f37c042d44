"""Pass 6, lints: rules that can never matter.  Warnings only; the program is still built.

Input: the IR.  Output: W-coded diagnostics.  A duplicate rule says nothing its twin does not;
an allow rule whose every flag is denied, on objects all of which a deny rule covers, under
no narrower context, grants nothing.  Glob coverage is decided exactly, on the DFA of the two
globs (every path the allow glob matches is matched by the deny glob).
"""

from __future__ import annotations

from . import glob
from .diagnostics import Diagnostics, Note
from .ir import Program, Rule


def lint(program: Program, diagnostics: Diagnostics) -> None:
    """Report duplicate and shadowed rules."""
    seen: dict[tuple, Rule] = {}
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
    denies = [r for r in program.rules if r.decision == "deny" and r.always_active]
    for rule in program.rules:
        if rule.decision != "allow":
            continue
        shadow = next((d for d in denies if _covers(d, rule)), None)
        if shadow is not None:
            diagnostics.add(
                "W0002",
                "this allow rule never grants anything: a deny rule covers it",
                rule.span,
                notes=(Note("the deny rule", shadow.span),),
                help="deny wins over allow; narrow the deny rule or remove this one",
            )


def _identity(rule: Rule) -> tuple:
    return (
        rule.kind,
        rule.decision,
        rule.audit,
        rule.flags,
        rule.path,
        rule.target,
        rule.families,
        rule.contexts,
    )


def _covers(deny: Rule, allow: Rule) -> bool:
    """Does `deny` deny every flag of `allow` on every object `allow` names?"""
    if deny.kind != allow.kind or allow.flags & ~deny.flags:
        return False
    if allow.families & ~deny.families:
        return False
    if allow.path is not None:
        return _glob_covers(deny.path, allow.path)
    if allow.target is not None:
        if deny.target.kind == "any" or deny.target == allow.target:
            return True
        return allow.target.kind == "path" == deny.target.kind and _glob_covers(
            deny.target.glob, allow.target.glob
        )
    return True


def _glob_covers(wide: str, narrow: str) -> bool:
    """Every path `narrow` matches is matched by `wide`."""
    if wide == narrow:
        return True
    dfa = glob.compile_globs([narrow, wide])
    return all(1 in accepted for accepted in dfa.accepts if 0 in accepted)
