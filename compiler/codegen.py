"""Pass 7, code generation: IR to one self-contained libbpf CO-RE C file.

Input: an `ir.Program`.  Output: the C text.  Every name, number and decision is computed
here; codegen_templates/program.bpf.c.j2 only lays them out.  The output is deterministic:
same IR, same bytes (no time stamps, no build paths).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources

import jinja2

from . import abi, c_text, language
from .ir import GlobTable, Program, Rule

TEMPLATE = "program.bpf.c.j2"
_DECISIONS = {None: 0, "allow": 1, "deny": 2, "taint": 3}
_METADATA_CHUNK = 96


@cache
def _environment() -> jinja2.Environment:
    folder = resources.files("bpfbox.codegen_templates")
    return jinja2.Environment(
        loader=jinja2.FunctionLoader(lambda name: folder.joinpath(name).read_text()),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )


def generate(program: Program) -> str:
    """The C source of `program`."""
    fs_table, target_table = program.fs_globs, program.target_globs
    context = {
        "abi": abi,
        "policy": c_text.comment(program.policy),
        "profile": c_text.comment(program.profile),
        "has_taint": program.has_taint,
        "context_slots": max(1, len(program.contexts)),
        "metadata_chunks": c_text.string_literal_chunks(metadata_json(program), _METADATA_CHUNK),
        "event_fields": [_EventDeclaration(f) for f in abi.EVENT_FIELDS],
        "dfas": [_dfa_view(t) for t in (fs_table, target_table)],
        "rule_kinds": [_kind_view(k, program, fs_table, target_table) for k in language.RULE_KINDS],
        "contexts": [_context_view(c) for c in program.contexts],
        "fs": _hex_flags(language.FS_ACCESS),
        "proc": _hex_flags(language.PROC_ACCESS),
        "ptrace": _hex_flags(language.PTRACE_ACCESS),
        "net": _hex_flags(language.NET_OPS),
    }
    return _environment().get_template(TEMPLATE).render(context)


def metadata_json(program: Program) -> str:
    """What the runtime needs to know about the program, as compact, sorted JSON."""
    contexts = []
    for c in program.contexts:
        entry = {"index": c.index, "kind": c.kind, "symbol": c.symbol}
        entry["enter_program"], entry["leave_program"] = _probe_names(c.kind, c.index)
        if c.kind == "func":
            entry.update(binary=c.binary, offset=c.offset)
        contexts.append(entry)
    symbols = {c.index: c.symbol for c in program.contexts}
    rules = [
        {
            "id": r.id,
            "file": r.span.file,
            "line": r.span.line,
            "column": r.span.column,
            "kind": r.kind,
            "action": r.decision or "audit",
            "audit": r.audit,
            "text": r.text,
            "contexts": sorted({symbols[i] for clause in r.contexts for i in clause}),
        }
        for r in program.rules
    ]
    document = {
        "version": abi.METADATA_VERSION,
        "policy": program.policy,
        "profile": program.profile,
        "name": program.name,
        "contexts": contexts,
        "rules": rules,
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def _probe_names(kind: str, index: int) -> tuple[str, str]:
    if kind == "func":
        return f"{abi.UPROBE_ENTER_PREFIX}{index}", f"{abi.UPROBE_LEAVE_PREFIX}{index}"
    return f"bpfbox_kfunc_enter_{index}", f"bpfbox_kfunc_leave_{index}"


@dataclass(frozen=True)
class _EventDeclaration:
    field: abi.EventField

    @property
    def declaration(self) -> str:
        c_type = self.field.c_type
        if "[" in c_type:
            base, size = c_type.split("[")
            return f"{base} {self.field.name}[{size}"
        return f"{c_type} {self.field.name}"


def _hex_flags(flags: language.FlagSet) -> dict[str, str]:
    return {name: f"{bit:#x}ULL" for name, bit in flags.bits.items()}


def _dfa_view(table: GlobTable) -> dict:
    dfa = table.dfa
    words = max(1, (len(table.globs) + 63) // 64)
    return {
        "name": table.name,
        "what": table.what,
        "states": len(dfa.transitions),
        "classes": dfa.class_count,
        "words": words,
        "class_table": ", ".join(str(c) for c in dfa.classes),
        "transition_rows": [", ".join(str(s) for s in row) for row in dfa.transitions],
        "accept_rows": [", ".join(_accept_words(a, words)) for a in dfa.accepts],
    }


def _accept_words(accepted: frozenset[int], words: int) -> list[str]:
    values = [0] * words
    for index in accepted:
        values[index // 64] |= 1 << (index % 64)
    return [f"{v:#x}ULL" for v in values]


#: Extra parameters of each kind's decide function, and how a rule's object is matched.
_KIND_PARAMETERS = {
    "fs": ", __u32 state",
    "proc": ", int same, __u32 target",
    "signal": ", int same, __u32 target",
    "ptrace": ", int same, __u32 target",
    "net": ", __u32 family",
    "cap": "",
}


def _kind_view(kind: str, program: Program, fs_table: GlobTable, targets: GlobTable) -> dict:
    return {
        "name": kind,
        "parameters": _KIND_PARAMETERS[kind],
        "rules": [_rule_view(r, fs_table, targets) for r in program.rules_of(kind)],
    }


def _rule_view(rule: Rule, fs_table: GlobTable, targets: GlobTable) -> dict:
    return {
        "id": rule.id,
        "location": c_text.comment(f"{rule.span.file}:{rule.span.line}"),
        "comment": c_text.comment(rule.text),
        "match": _match_expression(rule, fs_table, targets),
        "decision": _DECISIONS[rule.decision],
        "audit": int(rule.audit),
        "flags": f"{rule.flags:#x}ULL",
        "context": _context_expression(rule),
    }


def _match_expression(rule: Rule, fs_table: GlobTable, targets: GlobTable) -> str:
    if rule.path is not None:
        return f"fs_has(state, {fs_table.index(rule.path)})"
    if rule.target is not None:
        if rule.target.kind == "self":
            return "same"
        if rule.target.kind == "any":
            return "1"
        return f"target_has(target, {targets.index(rule.target.glob)})"
    if rule.kind == "net":
        return f"family < 64 && (({rule.families:#x}ULL >> family) & 1)"
    if rule.kind == "cap":
        return "1"
    raise ValueError(f"codegen: no object match for a `{rule.kind}` rule")


def _context_expression(rule: Rule) -> str:
    if not rule.contexts:
        return "1"
    clauses = [
        "(" + " || ".join(f"active(t, {i})" for i in clause) + ")" for clause in rule.contexts
    ]
    return " && ".join(clauses)


def _context_view(context) -> dict:
    enter, leave = _probe_names(context.kind, context.index)
    if context.kind == "func":
        comment = f"inside {context.symbol}() of {context.binary}, file offset {context.offset:#x}"
    else:
        comment = f"inside the kernel function {context.symbol}()"
    return {
        "index": context.index,
        "kind": context.kind,
        # Only kernel functions name a section (`SEC("fentry/NAME")`).
        "symbol": c_text.identifier(context.symbol) if context.kind == "kfunc" else None,
        "enter": enter,
        "leave": leave,
        "comment": c_text.comment(comment),
    }
