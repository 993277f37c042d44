"""Pass 5, lowering: checked AST plus resolved symbols to the IR.

Input: the include-expanded, checked AST and `Resolved`.  Output: an `ir.Program`: rules
numbered in source order with their accumulated decision, audit flag, flag bits, object and
context clauses, and the DFAs of their globs (E0508 when those would be too large).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TypeVar

from bpfbox.contract import abi

from . import ast, glob, language
from .diagnostics import Diagnostics
from .ir import GlobTable, Program, Rule, Target
from .resolve import Resolved


def lower(policy: ast.Policy, resolved: Resolved, diagnostics: Diagnostics) -> Program | None:
    """Build the IR program of `policy`; None when it cannot be loaded (too many function
    contexts, or globs too complex)."""
    if len(resolved.contexts) > abi.MAX_CONTEXTS:
        first_extra = resolved.contexts[abi.MAX_CONTEXTS]
        diagnostics.add(
            "E0510",
            f"too many function contexts: {len(resolved.contexts)}, at most "
            f"{abi.MAX_CONTEXTS} per policy",
            first_extra.span,
            label=f"context number {abi.MAX_CONTEXTS + 1}",
            help="restrict rules to fewer distinct functions (each `#[func]` or `#[kfunc]` "
            "name counts once, however often it is used)",
        )
        return None
    rules = tuple(
        _lower_rule(rule, chain, rule_id, resolved)
        for rule_id, (rule, chain) in enumerate(ast.directed_rules(policy.items), start=1)
    )
    paths = sorted({r.path for r in rules if r.path is not None})
    targets = sorted({r.target.path_glob for r in rules if r.target and r.target.kind == "path"})
    try:
        fs_globs = _glob_table("fs", "file path", paths)
        target_globs = _glob_table("target", "target", targets)
    except glob.TooComplexError as error:
        diagnostics.add(
            "E0508",
            f"the policy is too complex to load: {error}",
            help="split wide globs such as `**` out of long alternations, or use fewer globs",
        )
        return None
    program = Program(
        policy=Path(policy.file).name,
        source=policy.file,
        profile=resolved.profile,
        name=profile_name(resolved.profile),
        contexts=resolved.contexts,
        rules=rules,
        fs_globs=fs_globs,
        target_globs=target_globs,
    )
    problem = _path_table_problem(program)
    if problem:
        diagnostics.add(
            "E0508",
            f"the policy is too complex to load: {problem}",
            help="fewer rules whose globs overlap (each path matching many of them), or "
            "fewer rules",
        )
        return None
    return program


def _path_table_problem(program: Program) -> str | None:
    """Why the path rules' tables (codegen: one record per path kind and rule, and per
    accept row the records its globs have) would not fit one map each, or None."""
    per_glob: dict[int, int] = {}
    records = 0
    for kind in language.RULE_KINDS.values():
        if kind.object is language.Object.PATH:
            for rule in program.rules_of(kind.name) + program.absorbed(kind.name):
                assert rule.path is not None  # a path kind's rules always name one
                index = program.fs_globs.index(rule.path)
                per_glob[index] = per_glob.get(index, 0) + 1
                records += 1
    rows = set(program.fs_globs.dfa.accepts)
    members = sum(per_glob.get(g, 0) for accepted in rows for g in accepted)
    for what, size in (("rules", records * RECORD_BYTES), ("rules per path", members * 4)):
        if size > glob.MAX_TABLE_BYTES:
            return (
                f"its path {what} need a {size // 1024} KiB table, more than the "
                f"{glob.MAX_TABLE_BYTES // 1024} KiB the kernel takes in one map"
            )
    return None


#: The size of one path rule's record in the generated tables (struct path_rule).
RECORD_BYTES = 24


def _glob_table(name: str, what: str, globs: list[str]) -> GlobTable:
    return GlobTable(name, what, tuple(globs), glob.compile_globs(globs))


def profile_name(profile: str) -> str:
    """A C-identifier-safe short name for the profile (its program's base name)."""
    return re.sub(r"[^A-Za-z0-9_]", "_", Path(profile).name) or "profile"


def _lower_rule(rule: ast.Rule, chain: ast.Chain, rule_id: int, resolved: Resolved) -> Rule:
    kind = language.RULE_KINDS[rule.kind.text]
    values = _argument_values(kind, rule.args)
    path: str | None = None
    target: Target | None = None
    classes = flags = 0
    for index, (parameter, value) in enumerate(zip(kind.parameters, values, strict=True)):
        # The value's type follows the parameter's kind (_argument_values).
        if isinstance(value, str):
            path = value
        elif isinstance(value, Target):
            target = value
        elif kind.object is language.Object.CLASS and index == 0:
            classes = parameter.flag_set.mask(value)
        else:
            flags = parameter.flag_set.mask(value)
    return Rule(
        id=rule_id,
        kind=kind.name,
        decision=_decision(chain),
        audit=any(d.name.text == language.AUDIT for ds in chain for d in ds),
        flags=flags,
        path=path,
        target=target,
        classes=classes,
        contexts=_contexts(chain, resolved),
        text=rule_text(rule),
        span=rule.span,
    )


def _argument_values(
    kind: language.RuleKind, args: tuple[ast.Argument, ...]
) -> list[str | Target | list[str]]:
    """Each parameter's value: a path string, a Target, or a list of flag names."""
    values: list[str | Target | list[str]] = []
    for index, parameter in enumerate(kind.parameters):
        argument = args[index] if index < len(args) else None
        if parameter.kind is language.Param.PATH:
            values.append(_checked(argument, ast.String).value)
        elif parameter.kind is language.Param.TARGET:
            if isinstance(argument, ast.String):
                values.append(Target("path", argument.value))
            else:
                values.append(Target(_checked(argument, ast.Flags).names[0].text))
        elif argument is None:
            values.append([_checked(parameter.default, str)])
        else:
            values.append([n.text for n in _checked(argument, ast.Flags).names])
    return values


_Shape = TypeVar("_Shape")


def _checked(value: object, shape: type[_Shape]) -> _Shape:
    """An argument (or a left-out one's default) as the checks let it through: of the shape
    its parameter takes, and present unless the parameter has a default."""
    assert isinstance(value, shape), f"the checks let {value!r} through"
    return value


def _decision(chain: ast.Chain) -> abi.Decision:
    """The innermost decision directive; ALLOW when there is none and no `audit` either, NONE
    for `audit` alone."""
    decision = None
    audit = False
    for directives in chain:
        for directive in directives:
            if directive.name.text in language.DECISIONS:
                decision = abi.Decision[directive.name.text.upper()]
            audit = audit or directive.name.text == language.AUDIT
    if decision is None:
        return abi.Decision.NONE if audit else abi.Decision.ALLOW
    return decision


def _contexts(chain: ast.Chain, resolved: Resolved) -> tuple[tuple[int, ...], ...]:
    clauses = []
    for directives in chain:
        clause = sorted({resolved.index(d) for d in directives if d.name.text in language.CONTEXTS})
        if clause and tuple(clause) not in clauses:
            clauses.append(tuple(clause))
    return tuple(clauses)


def rule_text(rule: ast.Rule) -> str:
    """The rule written out canonically, for messages: `fs("/etc/passwd", read|append)`."""
    parts = []
    for argument in rule.args:
        if isinstance(argument, ast.String):
            parts.append('"' + argument.value.replace("\\", "\\\\").replace('"', '\\"') + '"')
        else:
            parts.append("|".join(n.text for n in argument.names))
    return f"{rule.kind.text}({', '.join(parts)})"
