"""The metadata bpfboxc embeds in every compiled profile, written and read by the same code.

The code generator builds a `Document` and embeds `to_json()` in the ELF section
`abi.METADATA_SECTION`; the runtime reads it back with `Document.from_json`, which validates
every field and names the exact place of the first problem, so a stale or hand-edited object
fails before anything is loaded rather than half-way through attaching.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from . import abi, hook_abi, kinds
from .errors import BpfboxError


class MetadataError(BpfboxError):
    """The object's metadata is missing or does not follow the contract."""

    exit_code = 1
    help = "recompile the policy with the bpfboxc that matches this bpfbox-run"


@dataclass(frozen=True)
class Context:
    """A context rules can be restricted to: a user function (uprobe) or a kernel function."""

    index: int
    kind: str  # "func" or "kfunc"
    symbol: str
    binary: str | None = None  # func only
    offset: int | None = None  # func only
    enter_program: str | None = None
    leave_program: str | None = None


@dataclass(frozen=True)
class Rule:
    """A rule of the policy, as events refer to it."""

    id: int
    #: The file the rule is written in: the policy's base name (as `Document.policy`), a
    #: shipped fragment's `<bpfbox>/NAME.bpfbox`, or a file fragment's path from the policy.
    file: str
    line: int
    column: int
    kind: str
    action: str  # "allow", "deny", "taint" or "audit" (audit only)
    text: str
    contexts: tuple[str, ...] = ()
    #: The access bits the rule names (abi flag bits, `1 << number` for signals, capabilities).
    flags: int = 0
    audit: bool = False

    @property
    def location(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True)
class Document:
    """Everything the runtime needs to know about one compiled profile."""

    policy: str
    profile: str
    name: str
    contexts: tuple[Context, ...]
    rules: tuple[Rule, ...]
    task_state_layout: int = abi.TASK_STATE_LAYOUT
    #: The hooks with a program per prototype (or only on some kernels): which program of the
    #: object expects which parameter types, so the runtime can keep the running kernel's.
    hooks: tuple[hook_abi.HookAbi, ...] = tuple(hook_abi.HOOKS.values())

    def to_json(self) -> str:
        """Compact, sorted JSON: the same document always gives the same bytes."""
        document = {
            "version": abi.METADATA_VERSION,
            "policy": self.policy,
            "profile": self.profile,
            "name": self.name,
            "task_state_layout": self.task_state_layout,
            "contexts": [_without_none(c.__dict__) for c in self.contexts],
            "rules": [{**r.__dict__, "contexts": list(r.contexts)} for r in self.rules],
            "hooks": [_hook_json(h) for h in self.hooks],
        }
        return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=True)

    @classmethod
    def from_json(cls, doc: Any, path: str) -> Document:
        """Validate a decoded metadata document; `path` only serves the error messages."""
        check = _Checker(path)
        if not isinstance(doc, dict):
            raise check.fail("(top level)", "must be a JSON object")
        version = check.field(doc, "version", int, "metadata")
        if version != abi.METADATA_VERSION:
            raise MetadataError(
                f"{path}: metadata version {version}, but this bpfbox-run reads version "
                f"{abi.METADATA_VERSION}"
            )
        contexts = tuple(
            _context(check, c, f"contexts[{i}]")
            for i, c in enumerate(check.field(doc, "contexts", list, "metadata"))
        )
        rules: dict[int, Rule] = {}
        for i, r in enumerate(check.field(doc, "rules", list, "metadata")):
            rule = _rule(check, r, f"rules[{i}]")
            if rule.id in rules:
                raise check.fail(f"rules[{i}].id", f"repeats rule id {rule.id}")
            rules[rule.id] = rule
        profile = check.field(doc, "profile", str, "metadata")
        return cls(
            policy=check.field(doc, "policy", str, "metadata"),
            profile=_absolute(check, profile, "metadata.profile"),
            name=check.field(doc, "name", str, "metadata"),
            contexts=contexts,
            rules=tuple(rules.values()),
            task_state_layout=check.field(doc, "task_state_layout", int, "metadata"),
            hooks=tuple(
                _hook(check, h, f"hooks[{i}]")
                for i, h in enumerate(check.field(doc, "hooks", list, "metadata"))
            ),
        )


def _hook_json(hook: hook_abi.HookAbi) -> dict[str, Any]:
    variants = [{"program": v.program, "params": list(v.params)} for v in hook.variants]
    return _without_none(
        {
            "hook": hook.hook,
            "variants": variants,
            "since": hook.since,
            "without": hook.without or None,
        }
    )


def _hook(check: _Checker, obj: Any, where: str) -> hook_abi.HookAbi:
    if not isinstance(obj, dict):
        raise check.fail(where, "must be a JSON object")
    variants = []
    for i, v in enumerate(check.field(obj, "variants", list, where)):
        if not isinstance(v, dict):
            raise check.fail(f"{where}.variants[{i}]", "must be a JSON object")
        params = check.field(v, "params", list, f"{where}.variants[{i}]")
        if not all(isinstance(p, str) for p in params):
            raise check.fail(f"{where}.variants[{i}].params", "must be a list of strings")
        program = check.field(v, "program", str, f"{where}.variants[{i}]")
        variants.append(hook_abi.Variant(program, tuple(params)))
    if not variants:
        raise check.fail(f"{where}.variants", "must not be empty")
    return hook_abi.HookAbi(
        hook=check.field(obj, "hook", str, where),
        variants=tuple(variants),
        since=check.optional(obj, "since", str, where),
        without=check.optional(obj, "without", str, where) or "",
    )


def _without_none(fields: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if v is not None}


class _Checker:
    """Field-by-field validation that names the exact place of the first problem."""

    def __init__(self, path: str) -> None:
        self.path = path

    def fail(self, where: str, what: str) -> MetadataError:
        return MetadataError(f"{self.path}: metadata field {where} {what}")

    def field(self, obj: dict[str, Any], key: str, kind: type, where: str) -> Any:
        if key not in obj:
            raise self.fail(f"{where}.{key}", "is missing")
        value = obj[key]
        # bool is an int in Python but never a valid number here.
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise self.fail(f"{where}.{key}", f"must be of type {kind.__name__}")
        return value

    def optional(self, obj: dict[str, Any], key: str, kind: type, where: str) -> Any:
        return self.field(obj, key, kind, where) if key in obj else None


def _absolute(check: _Checker, value: str, where: str) -> str:
    if not value.startswith("/"):
        raise check.fail(where, f"must be an absolute path, not {value!r}")
    return value


def _context(check: _Checker, obj: Any, where: str) -> Context:
    if not isinstance(obj, dict):
        raise check.fail(where, "must be a JSON object")
    kind = check.field(obj, "kind", str, where)
    context = Context(
        index=check.field(obj, "index", int, where),
        kind=kind,
        symbol=check.field(obj, "symbol", str, where),
        binary=check.optional(obj, "binary", str, where),
        offset=check.optional(obj, "offset", int, where),
        enter_program=check.optional(obj, "enter_program", str, where),
        leave_program=check.optional(obj, "leave_program", str, where),
    )
    if kind == "func":
        _check_func_context(check, context, where)
    return context


def _check_func_context(check: _Checker, context: Context, where: str) -> None:
    """A user-function context must say where its uprobes go and which programs they are."""
    for key in ("binary", "offset", "enter_program", "leave_program"):
        if getattr(context, key) is None:
            raise check.fail(f"{where}.{key}", "is missing (required for kind 'func')")
    _absolute(check, context.binary or "", f"{where}.binary")
    if (context.offset or 0) < 0:
        raise check.fail(f"{where}.offset", "must not be negative")


def _rule(check: _Checker, obj: Any, where: str) -> Rule:
    if not isinstance(obj, dict):
        raise check.fail(where, "must be a JSON object")
    rule_id = check.field(obj, "id", int, where)
    if rule_id <= abi.NO_RULE:
        raise check.fail(f"{where}.id", f"must be greater than {abi.NO_RULE}")
    kind = check.field(obj, "kind", str, where)
    if kind not in kinds.REGISTRY:
        known = ", ".join(kinds.REGISTRY)
        raise check.fail(f"{where}.kind", f"is {kind!r}, not one of {known}")
    contexts = check.optional(obj, "contexts", list, where) or []
    if not all(isinstance(c, str) for c in contexts):
        raise check.fail(f"{where}.contexts", "must be a list of strings")
    flags = check.field(obj, "flags", int, where)
    if flags < 0:
        raise check.fail(f"{where}.flags", "must not be negative")
    return Rule(
        id=rule_id,
        file=check.field(obj, "file", str, where),
        line=check.field(obj, "line", int, where),
        column=check.field(obj, "column", int, where),
        kind=kind,
        action=check.field(obj, "action", str, where),
        text=check.field(obj, "text", str, where),
        contexts=tuple(contexts),
        flags=flags,
        audit=check.field(obj, "audit", bool, where),
    )
