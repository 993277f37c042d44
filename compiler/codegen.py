"""Pass 7, code generation: IR to one self-contained libbpf CO-RE C file.

Input: an `ir.Program`.  Output: the C text.  The fixed logic is real C, the BPF library in
codegen_templates/bpf (path walk, DFA scan, verdict, the hooks of each family);
codegen_templates/program.bpf.c.j2 is the policy's part only (metadata, DFA tables, one
decide_KIND function per rule kind with the rules as constant checks, context probes), laid
out from what this module computes.  The library is pasted in where the template includes it,
so the output needs no file of bpfbox to compile.  It is deterministic: same IR, same bytes
(no time stamps, no build paths).
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources
from importlib.abc import Traversable
from pathlib import PurePosixPath

import jinja2
from bpfbox.contract import abi, header, kinds
from bpfbox.contract import metadata as contract_metadata
from bpfbox.contract.kinds import Object, RuleKind

from . import c_text, glob, language
from .ir import Context, GlobTable, Program, Rule

TEMPLATE = "program.bpf.c.j2"
DFA_TEMPLATE = "dfa.c.j2"
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
    """The C source of `program`, self-contained."""
    return paste_library(policy_part(program))


def policy_part(program: Program) -> str:
    """The policy's part of the C source: the template rendered, the library's `#include`s
    left in place (compile it with `-I` codegen_templates to check the library as files)."""
    fs_table, target_table = program.fs_globs, program.target_globs
    context_kinds = {c.index: c.kind for c in program.contexts}
    context = {
        "abi": abi,
        "policy": c_text.comment(program.policy),
        "profile": c_text.comment(program.profile),
        "has_taint": program.has_taint,
        "metadata_chunks": c_text.string_literal_chunks(
            metadata(program).to_json(), _METADATA_CHUNK
        ),
        "dfas": [_dfa_view(t) for t in (fs_table, target_table)],
        "fs_guard": _guard_view(program, fs_table),
        "rule_kinds": [
            _kind_view(k, program, fs_table, target_table, context_kinds)
            for k in language.RULE_KINDS.values()
        ],
        "hook_headers": [h if h.startswith("/") else f"bpf/{h}" for h in kinds.headers()],
        "contexts": [_context_view(c) for c in program.contexts],
    }
    return _environment().get_template(TEMPLATE).render(context)


def dfa_part(table: GlobTable) -> str:
    """The C of one glob table: its DFA's tables and the library's scan instantiated for it
    (the template's part for each table; the host test of the scan compiles it alone)."""
    return _environment().get_template(DFA_TEMPLATE).render(dfa=_dfa_view(table))


_INCLUDE = re.compile(r'^#include "([^"]+)"\n', re.M)


def paste_library(source: str) -> str:
    """Replace each `#include "FILE"` of the library by FILE's text, recursively; a file with
    an include guard is pasted once, dfa.bpf.h (made to be included once per DFA) each time."""
    root = resources.files("bpfbox.codegen_templates")
    pasted: set[str] = set()

    def expand(text: str, folder: PurePosixPath) -> str:
        def replace(match: re.Match[str]) -> str:
            name = str(folder / match.group(1))
            content = _library_file(root, name)
            if name in pasted and "#ifndef BPFBOX_" in content:
                return ""
            pasted.add(name)
            body = expand(content, PurePosixPath(name).parent)
            return f"/* ---- {name} ---- */\n{body}"

        return _INCLUDE.sub(replace, text)

    return expand(source, PurePosixPath("."))


def _library_file(root: Traversable, name: str) -> str:
    if PurePosixPath(name).name == header.FILE_NAME:
        return header.render()
    return root.joinpath(name).read_text()


def metadata(program: Program) -> contract_metadata.Document:
    """What the runtime needs to know about the program (the contract's metadata document)."""
    contexts = []
    for c in program.contexts:
        enter, leave = abi.probe_names(c.kind, c.index)
        contexts.append(
            contract_metadata.Context(
                index=c.index,
                kind=c.kind,
                symbol=c.symbol,
                binary=c.binary if c.kind == "func" else None,
                offset=c.offset if c.kind == "func" else None,
                enter_program=enter,
                leave_program=leave,
            )
        )
    symbols = {c.index: c.symbol for c in program.contexts}
    rules = tuple(
        contract_metadata.Rule(
            id=r.id,
            file=program.rule_file(r),
            line=r.span.line,
            column=r.span.column,
            kind=r.kind,
            action=r.decision or "audit",
            audit=r.audit,
            text=r.text,
            contexts=tuple(sorted({symbols[i] for clause in r.contexts for i in clause})),
            flags=r.flags,
        )
        for r in program.rules
    )
    return contract_metadata.Document(
        policy=program.policy,
        profile=program.profile,
        name=program.name,
        contexts=tuple(contexts),
        rules=rules,
    )


def _guard_view(program: Program, fs_table: GlobTable) -> dict:
    """Per fs DFA state, the first deny rule that matches the path, and the first that matches
    it or a path beneath it: renaming or linking such a path would take the files out from
    under the rule."""
    first_deny: dict[int, int] = {}
    for rule in program.rules_of("fs"):
        if rule.decision == "deny" and rule.path is not None:
            first_deny.setdefault(fs_table.index(rule.path), rule.id)
    guards = glob.guard_states(fs_table.dfa, first_deny)
    return {
        "name": fs_table.name,
        "states": len(guards),
        "rows": [f"{{ {itself}, {beneath} }}" for itself, beneath in guards],
    }


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


def _kind_view(
    kind: RuleKind,
    program: Program,
    fs_table: GlobTable,
    targets: GlobTable,
    context_kinds: dict[int, str],
) -> dict:
    return {
        "name": kind.name,
        "parameters": kind.c_parameters,
        "rules": [
            _rule_view(r, kind, fs_table, targets, context_kinds)
            for r in sorted(program.rules_of(kind.name) + program.absorbed(kind.name), key=_id)
        ],
    }


def _id(rule: Rule) -> int:
    return rule.id


def _granted(rule: Rule, kind: RuleKind) -> int:
    """The bits of `kind`'s flags that the rule decides: its own flags, or for a rule of a
    kind that `kind` absorbs, what the absorption gives it."""
    if rule.kind == kind.name:
        return rule.flags
    assert kind.absorbs is not None and kind.absorbs.kind == rule.kind
    return kind.absorbs.allows if rule.decision == "allow" else kind.absorbs.applies


def _rule_view(
    rule: Rule,
    kind: RuleKind,
    fs_table: GlobTable,
    targets: GlobTable,
    context_kinds: dict[int, str],
) -> dict:
    return {
        "id": rule.id,
        "location": c_text.comment(f"{rule.span.file}:{rule.span.line}"),
        "comment": c_text.comment(rule.text),
        "match": _match_expression(rule, kind.object, fs_table, targets),
        "decision": f"DECISION_{abi.Decision.of(rule.decision).name}",
        "audit": int(rule.audit),
        "flags": f"{_granted(rule, kind):#x}ULL",
        "context": _context_expression(rule, context_kinds),
    }


def _match_expression(rule: Rule, kind: Object, fs_table: GlobTable, targets: GlobTable) -> str:
    """The C condition under which the rule's object matches (decide_KIND's parameters)."""
    if kind is Object.PATH and rule.path is not None:
        return f"fs_has(state, {fs_table.index(rule.path)})"
    if kind is Object.TARGET and rule.target is not None:
        if rule.target.kind == "self":
            return "same"
        if rule.target.kind == "any":
            return "1"
        return f"target_has(target, {targets.index(rule.target.path_glob)})"
    if kind is Object.CLASS:
        return f"class < 64 && (({rule.classes:#x}ULL >> class) & 1)"
    if kind is Object.NONE:
        return "1"
    raise ValueError(f"codegen: no object match for a `{rule.kind}` rule")


def _context_expression(rule: Rule, context_kinds: dict[int, str]) -> str:
    if not rule.contexts:
        return "1"
    clauses = [
        "(" + " || ".join(_inside(context_kinds[i], i) for i in clause) + ")"
        for clause in rule.contexts
    ]
    return " && ".join(clauses)


def _inside(context_kind: str, index: int) -> str:
    """The C test of one context: a program function's call is checked to be still running
    (its return probe may never fire), a kernel function's depth is exact (fexit)."""
    test = "inside_kernel_call" if context_kind == "kfunc" else "inside_call"
    return f"{test}(t, {index})"


def _context_view(context: Context) -> dict:
    enter, leave = abi.probe_names(context.kind, context.index)
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
