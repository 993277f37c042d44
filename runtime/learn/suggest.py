"""From denials to policy edits (what `aa-logprof` does for AppArmor).

Input: the JSON event log of `bpfbox-run --log-format json` (fields in runtime/events.py) and
the policy file the profile was compiled from.  Every distinct denial (`deny` or `complain`
event) becomes the smallest edit that allows it, and edits aimed at the same place merge:

- `partial_grant`: the rule the event names matched (so its function context, if any, held)
  but lacks flags: the missing flags are added to that rule, inside its `#[func]` block.
- `no_rule`, or a rule in an included fragment: flags are added to an always-active allow
  rule of the policy file with the very same object when there is one; otherwise a new rule
  goes at the end of the last top-level `#[allow] { ... }` block without a context, or at the
  end of the file.
- `outside_context`: the event says which rule would have allowed it inside its function, not
  which function the thread was in, so the only edit sure to allow it is an always-active
  rule as for `no_rule`; its comment says that it widens the function's scope.
- `denied_by_rule`: an explicit `#[deny]` matched; no edit is proposed (fail closed).

Each edit is checked before it is shown: the edited policy must compile and, by `decide` on
its IR, allow every denial the edit stands for.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bpfbox.compiler import ast, ir, language
from bpfbox.compiler.resolve import ElfResolver
from bpfbox.contract import abi

from . import jsonl
from .decide import Request, allows
from .policy import (
    PolicyProblem,
    RuleObject,
    closure,
    compile_text,
    flag_names,
    object_of,
    same_program,
)

DENIALS = ("deny", "complain")


class SuggestError(Exception):
    """Unusable input: an event log that breaks the format, or one about another policy."""


@dataclass(frozen=True)
class Denial:
    """One distinct denial: what was asked, why it was refused, how often."""

    request: Request
    reason: str
    rule_id: int | None
    rule_text: str | None  # the text of the rule the event names, as the policy had it
    message: str
    count: int


@dataclass
class Change:
    """One edit of the policy text: insert `text()` at `offset` (nothing is deleted)."""

    offset: int
    where: str  # what the edit does, for people
    kind: str
    rule: RuleObject | None = None  # a new rule; None: flags added to an existing rule
    granted: int = 0  # an existing rule: what it grants already
    functions: frozenset[str] = frozenset()  # an existing rule: the functions it holds in
    indent: str = ""
    prefix: str = ""  # what separates a new rule from the text before it
    denials: list[Denial] = field(default_factory=list)
    mask: int = 0  # what the denials asked for
    widens: str = ""  # for a new rule granting what a `#[func]` rule grants: which one

    def text(self) -> str:
        missing = self.mask & ~self.granted
        if self.rule is None:
            return "|" + "|".join(flag_names(self.kind, missing))
        times = sum(d.count for d in self.denials)
        reasons = ", ".join(sorted({d.reason for d in self.denials}))
        comment = f"added by bpfbox-learn: denied {times} time{'s' * (times > 1)} ({reasons})"
        if self.widens:
            comment += f"; {self.widens}, this rule everywhere"
        return (
            f"{self.prefix}{self.indent}// {comment}\n" f"{self.indent}{self.rule.rule(missing)}\n"
        )


def read_denials(path: Path, policy_name: str, profile: str, resolver: ElfResolver) -> list[Denial]:
    """The distinct denials of `policy_name` in the event log at `path`, in first-seen order."""
    lines = jsonl.read_lines(path, "an event log", SuggestError)
    counts: dict[tuple[Request, str, int | None, str | None], list[Any]] = {}
    policies: set[str] = set()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        event = jsonl.json_object(line, where, SuggestError)
        if event.get("event") not in (
            *DENIALS,
            "audit",
            "taint",
            "lost",
        ):
            raise SuggestError(f"{where}: not a bpfbox-run event (`--log-format json`)")
        policies.add(str(event.get("policy")))
        if event["event"] not in DENIALS or event.get("policy") != policy_name:
            continue
        key = _denial(event, where, profile, resolver)
        times = _times(event, where)
        if key in counts:
            counts[key][1] += times
        else:
            counts[key] = [str(event.get("message", "")), times]
    if not counts and policy_name not in policies and policies:
        raise SuggestError(
            f"`{path}` has no event of `{policy_name}`, only of {', '.join(sorted(policies))}"
        )
    return [
        Denial(request, reason, rule_id, rule_text, message, count)
        for (request, reason, rule_id, rule_text), (message, count) in counts.items()
    ]


def _times(event: dict[str, Any], where: str) -> int:
    """The accesses an event line stands for: itself, and the repeats it counts
    (`bpfbox-run --reduce-repeats`); a count still pending at the end (`"pid": null`) stands
    for its repeats only."""
    repeats = event.get("repeats", 0)
    if not isinstance(repeats, int) or isinstance(repeats, bool) or repeats < 0:
        raise SuggestError(f"{where}: `repeats` is not a count of events")
    pending = "pid" in event and event["pid"] is None
    return repeats + (not pending)


def _denial(
    event: dict[str, Any], where: str, profile: str, resolver: ElfResolver
) -> tuple[Request, str, int | None, str | None]:
    kind = event.get("rule_kind")
    if kind not in language.RULE_KINDS:
        raise SuggestError(f"{where}: `rule_kind` {kind!r} is not a rule kind")
    table = language.RULE_KINDS[kind].flags
    names = event.get("access")
    if not isinstance(names, list) or not names or any(n not in table.bits for n in names):
        raise SuggestError(f"{where}: `access` {json.dumps(names)} is not a list of {kind} names")
    reason = event.get("reason")
    if reason not in abi.REASONS:
        raise SuggestError(f"{where}: `reason` {reason!r} is not a denial reason")
    obj = event.get("object")
    rule_kind = language.RULE_KINDS[kind]
    # The class of a net denial is its `family`, of an ipc denial its `object` ("shm").
    family = event.get("family") if kind == "net" else obj
    if rule_kind.object in (language.Object.PATH, language.Object.TARGET) and not (
        isinstance(obj, str) and obj.startswith("/")
    ):
        raise SuggestError(f"{where}: a {kind} denial needs an absolute `object`")
    if rule_kind.object is language.Object.CLASS and family not in rule_kind.classes.bits:
        raise SuggestError(f"{where}: `{kind}` denial names no {rule_kind.classes.what}")
    rule = event.get("rule")
    if not isinstance(rule, dict):
        rule = {}
    rule_id, rule_text = rule.get("id"), rule.get("text")
    if rule_id is not None and (not isinstance(rule_id, int) or isinstance(rule_id, bool)):
        raise SuggestError(f"{where}: `rule.id` must be an integer")
    if rule_text is not None and not isinstance(rule_text, str):
        raise SuggestError(f"{where}: `rule.text` must be a string")
    targeted = rule_kind.object is language.Object.TARGET
    request = Request(
        kind=kind,
        mask=table.mask(names),
        path=obj if rule_kind.object is language.Object.PATH else None,
        target=obj if targeted else None,
        target_is_self=targeted and isinstance(obj, str) and same_program(obj, profile, resolver),
        family=family if rule_kind.object is language.Object.CLASS else None,
    )
    return request, reason, rule_id, rule_text


@dataclass(frozen=True)
class Suggestions:
    """The changes to propose, and the denials no change is proposed for (with why)."""

    changes: list[Change]
    skipped: list[tuple[Denial, str]]


def suggest(text: str, policy: Path, resolver: ElfResolver, denials: list[Denial]) -> Suggestions:
    """The edits of `text` (the policy file at `policy`) that allow `denials`."""
    compilation = compile_text(text, policy.name, policy, resolver, warnings_ok=True)
    program, tree = compilation.program, compilation.policy
    lines = _line_offsets(text)
    changes: dict[tuple[object, ...], Change] = {}
    skipped: list[tuple[Denial, str]] = []
    for denial in denials:
        rule = _rule(program, denial.rule_id)
        if denial.rule_text is not None and (rule is None or rule.text != denial.rule_text):
            now = f"is `{rule.text}`" if rule else "does not exist"
            raise SuggestError(
                f"{policy.name} changed since the events were recorded: their rule "
                f"{denial.rule_id}, `{denial.rule_text}`, now {now}; record the events again "
                "with the policy as it is"
            )
        # A deny rule said no, about the path or (a rename, a link) about one beneath it.
        if denial.reason in ("denied_by_rule", "guards_beneath"):
            where = f"line {rule.span.line}" if rule else "a deny rule"
            skipped.append(
                (
                    denial,
                    f"{where} of {rule.span.file if rule else policy.name} "
                    "denies it explicitly; narrow or remove that rule yourself",
                )
            )
            continue
        if allows(program, denial.request):
            skipped.append((denial, "the policy already allows it (the log is older)"))
            continue
        target = None
        if denial.reason == "partial_grant" and rule and rule.span.file == policy.name:
            target = rule
        target = target or _same_object_rule(program, denial.request, policy.name)
        if target is not None:
            key: tuple[object, ...] = ("edit", target.id)
            change = changes.get(key) or _edit(target, tree, lines, program)
        else:
            obj = object_of(denial.request)
            # A rule that widens a function's scope is its own edit, to be accepted alone.
            widens = rule if denial.reason == "outside_context" else None
            key = ("new", obj, widens and widens.id)
            change = changes.get(key) or _new_rule(obj, tree, text, lines)
            if widens is not None:
                change.widens = (
                    f"line {widens.span.line} allows it only inside {_functions(program, widens)}"
                )
        change.denials.append(denial)
        change.mask |= denial.request.mask
        changes[key] = change
    result = list(changes.values())
    for change in result:
        _check(text, policy, resolver, change)
    return Suggestions(result, skipped)


def _rule(program: ir.Program, rule_id: int | None) -> ir.Rule | None:
    if rule_id is None or not 0 < rule_id <= len(program.rules):
        return None
    return program.rules[rule_id - 1]


def _same_object_rule(program: ir.Program, request: Request, main: str) -> ir.Rule | None:
    """An always-active allow rule of the main file about exactly the request's object."""
    wanted = object_of(request)
    for rule in program.rules:
        if (
            rule.span.file != main
            or rule.decision is not abi.Decision.ALLOW
            or not rule.always_active
        ):
            continue
        if rule.kind == request.kind and _object(rule) == wanted:
            return rule
    return None


def _object(rule: ir.Rule) -> RuleObject:
    kind = language.RULE_KINDS[rule.kind]
    if kind.object is language.Object.PATH:
        return object_of(Request(rule.kind, 0, path=rule.path), rule.path)
    if kind.object is language.Object.CLASS:
        return RuleObject(rule.kind, "|".join(kind.classes.names(rule.classes)))
    if kind.object is language.Object.NONE:
        return RuleObject(rule.kind, None)
    return RuleObject(rule.kind, str(rule.target))


def _line_offsets(text: str) -> list[int]:
    offsets = [0]
    for line in text.splitlines(keepends=True):
        offsets.append(offsets[-1] + len(line))
    return offsets


def _offset(lines: list[int], line: int, column: int) -> int:
    return lines[line - 1] + column - 1


def _edit(rule: ir.Rule, tree: ast.Policy, lines: list[int], program: ir.Program) -> Change:
    node = next(r for r, _ in ast.directed_rules(tree.items) if r.span == rule.span)
    flags = node.args[-1]
    # Only a rule that grants part of a request is edited, and a rule that leaves its flags
    # out grants them all (`ptrace(self)`): the rule lists its flags last.
    assert isinstance(flags, ast.Flags) and len(node.args) == len(
        language.RULE_KINDS[rule.kind].parameters
    ), f"the rule at line {rule.span.line} names no flags to extend"
    last = flags.names[-1]
    functions = _context_names(program, rule)
    return Change(
        offset=_offset(lines, last.span.line, last.span.column) + len(last.text),
        where=f"flags added to the rule at line {rule.span.line}",
        kind=rule.kind,
        granted=closure(rule.kind, rule.flags),
        functions=functions,
    )


def _context_names(program: ir.Program, rule: ir.Rule) -> frozenset[str]:
    return frozenset(program.contexts[i].symbol for clause in rule.contexts for i in clause)


def _functions(program: ir.Program, rule: ir.Rule) -> str:
    names = sorted(_context_names(program, rule))
    return " or ".join(f"{name}()" for name in names) or "its contexts"


def _new_rule(obj: RuleObject, tree: ast.Policy, text: str, lines: list[int]) -> Change:
    block = _allow_block(tree)
    if block is None:
        prefix = "\n" if text.endswith("\n") else "\n\n"
        return Change(
            offset=len(text),
            where="a new rule at the end of the file",
            kind=obj.kind,
            rule=obj,
            prefix=prefix,
        )
    # The closing brace: a block's span ends just after it.
    close = _offset(lines, block.span.end_line, block.span.end_column) - 1
    start_of_line = text.rfind("\n", 0, close) + 1
    if text[start_of_line:close].strip():
        start_of_line = close
    return Change(
        offset=start_of_line,
        where=f"a new rule in the #[allow] block of line {block.span.line}",
        kind=obj.kind,
        rule=obj,
        indent="    ",
    )


def _allow_block(tree: ast.Policy) -> ast.Block | None:
    """The last top-level `#[allow] { ... }` of the main file with no context directive."""
    found = None
    for item in tree.items:
        if (
            isinstance(item, ast.Directed)
            and isinstance(item.body, ast.Block)
            and [d.name.text for d in item.directives] == ["allow"]
        ):
            found = item.body
    return found


def apply_changes(text: str, changes: list[Change]) -> str:
    """`text` with `changes` (computed against it) made; edits at one place keep their order."""
    result = text
    # From the end, so offsets stay valid; at one offset the later change goes in first.
    ordered = sorted(enumerate(changes), key=lambda item: (item[1].offset, item[0]), reverse=True)
    for _, change in ordered:
        result = result[: change.offset] + change.text() + result[change.offset :]
    return result


def diff(before: str, after: str, name: str) -> str:
    """A unified diff that `patch -p1` applies in the policy's folder."""
    return "".join(
        difflib.unified_diff(
            before.splitlines(keepends=True),
            after.splitlines(keepends=True),
            fromfile=f"a/{name}",
            tofile=f"b/{name}",
        )
    )


def _check(text: str, policy: Path, resolver: ElfResolver, change: Change) -> None:
    """The policy with `change` compiles and allows every denial the change stands for."""
    edited = apply_changes(text, [change])
    try:
        program = compile_text(edited, policy.name, policy, resolver, warnings_ok=True).program
    except PolicyProblem as problem:
        raise AssertionError(f"bpfbox-learn proposed an edit after which {problem}") from None
    for denial in change.denials:
        if not allows(program, denial.request, change.functions):
            raise AssertionError(
                f"bpfbox-learn proposed an edit that does not allow: {denial.message}"
            )
