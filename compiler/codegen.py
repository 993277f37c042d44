"""Pass 7, code generation: IR to one self-contained libbpf CO-RE C file.

Input: an `ir.Program`.  Output: the C text.  The fixed logic is real C, the BPF library in
codegen_templates/bpf (path walk, DFA scan, rule tables, verdict, the hooks of each family);
codegen_templates/program.bpf.c.j2 is the policy's part only (metadata, DFA tables, the path
rules as constant tables, one decide_KIND function per other rule kind with its rules as
constant checks, context probes), laid out from what this module computes.  Tables are
written as data (string literals, each in a `.rodata.NAME` section of its own, so each is
one read-only map of at most glob.MAX_TABLE_BYTES), not as C code: what the kernel's
verifier reads, and what clang compiles, does not grow with the number of path rules.  The
library is pasted in where the template includes it, so the output needs no file of bpfbox
to compile.  It is deterministic: same IR, same bytes
(no time stamps, no build paths).
"""

from __future__ import annotations

import re
import struct
import sys
from array import array
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from importlib import resources
from importlib.abc import Traversable
from pathlib import PurePosixPath
from typing import Any

import jinja2
from bpfbox.contract import abi, header, kinds
from bpfbox.contract import metadata as contract_metadata
from bpfbox.contract.kinds import Object, RuleKind

from . import c_text, glob, language, lower
from .ir import Context, GlobTable, Program, Rule

TEMPLATE = "program.bpf.c.j2"
DFA_TEMPLATE = "dfa.c.j2"
#: Bytes of the metadata JSON per line of C (quotes escaped make a line of about 96).
_METADATA_CHUNK = 80


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
        "dfas": [_dfa_view(fs_table, sets=False), _dfa_view(target_table, sets=True)],
        "fs_guard": _guard_view(program, fs_table),
        "path_rules": _path_rules_view(program, context_kinds),
        "rule_kinds": [
            _kind_view(k, program, target_table, context_kinds)
            for k in language.RULE_KINDS.values()
            if k.object is not Object.PATH
        ],
        "hook_headers": [h if h.startswith("/") else f"bpf/{h}" for h in kinds.headers()],
        "contexts": [_context_view(c) for c in program.contexts],
    }
    return _environment().get_template(TEMPLATE).render(context)


def dfa_part(table: GlobTable, sets: bool = True) -> str:
    """The C of one glob table: its DFA's tables and the library's scan instantiated for it
    (the template's part for each table; the host test of the scan compiles it alone)."""
    return _environment().get_template(DFA_TEMPLATE).render(dfa=_dfa_view(table, sets))


#: An `#include "FILE"` of the library; a match counts only at the start of a line.  (Not
#: `^` with re.M: that pattern has no literal start to search for, and scanning the
#: megabytes of a large policy's tables for it takes ten times as long.)
_INCLUDE = re.compile(r'#include "([^"]+)"\n')


def paste_library(source: str) -> str:
    """Replace each `#include "FILE"` of the library by FILE's text, recursively; a file with
    an include guard is pasted once, dfa.bpf.h (made to be included once per DFA) each time."""
    root = resources.files("bpfbox.codegen_templates")
    pasted: set[str] = set()

    def expand(text: str, folder: PurePosixPath) -> str:
        def replace(match: re.Match[str]) -> str:
            if match.start() and text[match.start() - 1] != "\n":
                return match.group(0)
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
            action=r.decision.action,
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


def _guard_view(program: Program, fs_table: GlobTable) -> dict[str, Any]:
    """Per fs DFA state, the first deny rule that matches the path, and the first that matches
    it or a path beneath it: renaming or linking such a path would take the files out from
    under the rule."""
    first_deny: dict[int, int] = {}
    for rule in program.rules_of("fs"):
        if rule.decision is abi.Decision.DENY and rule.path is not None:
            first_deny.setdefault(fs_table.index(rule.path), rule.id)
    guards = glob.guard_states(fs_table.dfa, first_deny)
    return {
        "name": fs_table.name,
        "states": len(guards),
        "table": _data(
            f"{fs_table.name}_guard",
            f"{fs_table.name[:2]}grd",
            _u32(g for pair in guards for g in pair),
        ),
    }


def _dfa_view(table: GlobTable, sets: bool) -> dict[str, Any]:
    """The DFA's tables as data: byte classes; the packed transitions (glob.Packed): each
    state's stored row and own transition, and the stored rows (2-byte state numbers up to
    65,536 states, 4-byte past that) split over as many maps as they need; each state's
    accept row; with `sets`, each row's glob bit set (for `NAME_has`: the target globs, which
    few rules name; path rules are decided from rows, see _path_rules_view)."""
    dfa, name = table.dfa, table.name
    packed = dfa.packed
    states, classes, stored = len(dfa.transitions), dfa.class_count, len(packed.rows)
    width = glob.entry_bytes(states)
    per_shard = glob.rows_per_shard(states, classes)
    shards: list[dict[str, Any]] = []
    for first in range(0, stored, per_shard):
        end = min(stored, first + per_shard)
        entries = array("H" if width == 2 else "I")
        for row in packed.rows[first:end]:
            entries.extend(row)
        shard = _data(f"{name}_next{len(shards)}", f"{name[:2]}n{len(shards)}", _bytes(entries))
        shards.append(shard | {"first": first, "end": end, "entries": (end - first) * classes})
    state_words = array("I", bytes(8 * states))
    state_words[0::2] = array("I", packed.row_of)
    state_words[1::2] = array("I", packed.exception)
    rows, of_state = dfa.accept_rows
    words = max(1, (len(table.globs) + 63) // 64)
    view = {
        "name": name,
        "what": table.what,
        "states": states,
        "classes": classes,
        "entry": "__u16" if width == 2 else "__u32",
        "class_table": ", ".join(str(c) for c in dfa.classes),
        "stored": stored,
        "state_table": _data(f"{name}_states", f"{name[:2]}sta", _bytes(state_words)),
        "exception_shift": glob.EXCEPTION_SHIFT,
        "shards": shards,
        "rows": len(rows),
        "row_table": _data(f"{name}_rows", f"{name[:2]}row", _u32(of_state)),
        "words": words,
        "sets": None,
    }
    if sets:
        bits = array("Q")
        for accepted in rows:
            bits.extend(_accept_words(accepted, words))
        view["sets"] = _data(f"{name}_sets", f"{name[:2]}set", _bytes(bits))
    return view


def _accept_words(accepted: frozenset[int], words: int) -> list[int]:
    values = [0] * words
    for index in accepted:
        values[index // 64] |= 1 << (index % 64)
    return values


#: Bytes of a data table per line of C.
_DATA_LINE = 64
#: struct path_rule (codegen_templates/bpf/rules.bpf.h): flags, id, decision, audit, clause
#: count, first clause, padding.
_PATH_RULE = struct.Struct("<QIBBHII")
assert _PATH_RULE.size == lower.RECORD_BYTES


def _data(name: str, section: str, data: bytes, entry: int = 8) -> dict[str, Any]:
    """A constant table as the template writes it: `name`, in the section `.rodata.SECTION`
    (a map of its own; libbpf names it after the section, so SECTION is kept to the 7
    characters a map name has left), `data` as string literals.  An empty table gets one
    zero entry of `entry` bytes: C has no empty arrays, and the program reads entry 0."""
    data = data or bytes(entry)
    if len(data) > glob.MAX_TABLE_BYTES:
        raise ValueError(f"codegen: table {name} of {len(data)} bytes does not fit one map")
    return {
        "name": name,
        "section": section,
        "size": len(data),
        "chunks": c_text.byte_literal_chunks(data, _DATA_LINE),
    }


def _bytes(values: array[int]) -> bytes:
    """Little-endian, as the BPF target (x86-64) reads them."""
    if sys.byteorder != "little":
        values.byteswap()
    return values.tobytes()


def _u32(values: Iterable[int]) -> bytes:
    return _bytes(array("I", values))


def _path_kinds() -> list[RuleKind]:
    """The rule kinds whose object is a path: decided from the fs DFA's rows."""
    return [k for k in language.RULE_KINDS.values() if k.object is Object.PATH]


@dataclass(frozen=True)
class PathTables:
    """The path rules as constant tables: "the constant tables are the rules".

    `records`: one struct path_rule per (path kind, rule deciding it), the kind's own rules
    and those it absorbs, in rule order, with the flags it decides for that kind.  For each
    accept row of the fs DFA and each path kind (`kinds`, in that order), a slice of
    `members`, (first, count) in `slices`: the records whose glob the row accepts, in rule
    order.  The program walks the DFA once, then applies the records of the row's slice, in
    that order, as decide_KIND once applied one `if` per rule: the same rules, the same first
    rule named.  A record with contexts points at its clauses: masks of context numbers, one
    per clause, each needing one of its contexts.
    """

    kinds: tuple[RuleKind, ...]
    records: tuple[bytes, ...]
    comments: tuple[str, ...]
    members: tuple[int, ...]
    slices: tuple[int, ...]
    clauses: tuple[int, ...]


def path_tables(program: Program) -> PathTables:
    """The path rules' tables of `program` (see PathTables)."""
    fs_table = program.fs_globs
    rows, _ = fs_table.dfa.accept_rows
    kinds = _path_kinds()
    records: list[bytes] = []
    comments: list[str] = []
    clauses: list[int] = []
    #: Per kind: glob index -> the kind's record numbers of rules with that glob.
    by_glob: list[dict[int, list[int]]] = []
    for kind in kinds:
        of_glob: dict[int, list[int]] = {}
        for rule in sorted(program.rules_of(kind.name) + program.absorbed(kind.name), key=_id):
            assert rule.path is not None
            of_glob.setdefault(fs_table.index(rule.path), []).append(len(records))
            masks = [sum(1 << i for i in clause) for clause in rule.contexts]
            records.append(
                _PATH_RULE.pack(
                    _granted(rule, kind),
                    rule.id,
                    rule.decision.value,
                    int(rule.audit),
                    len(masks),
                    len(clauses),
                    0,
                )
            )
            clauses += masks
            comments.append(
                c_text.comment(
                    f"{len(records) - 1}: {kind.name} rule {rule.id}, "
                    f"{rule.span.file}:{rule.span.line}: {rule.text}"
                )
            )
        by_glob.append(of_glob)
    members: list[int] = []
    slices: list[int] = []
    for accepted in rows:
        for of_glob in by_glob:
            matching = sorted(r for g in accepted for r in of_glob.get(g, ()))
            slices += [len(members), len(matching)]
            members += matching
    return PathTables(
        tuple(kinds), tuple(records), tuple(comments), tuple(members), tuple(slices), tuple(clauses)
    )


def _path_rules_view(program: Program, context_kinds: dict[int, str]) -> dict[str, Any]:
    tables = path_tables(program)
    kfunc = sum(1 << i for i, kind in context_kinds.items() if kind == "kfunc")
    return {
        "kinds": [(f"PATH_KIND_{k.name.upper()}", n) for n, k in enumerate(tables.kinds)],
        "kind_count": len(tables.kinds),
        "comments": tables.comments,
        "records": _data("path_rules", "prule", b"".join(tables.records), _PATH_RULE.size),
        "record_count": max(1, len(tables.records)),
        "members": _data("path_members", "pmemb", _u32(tables.members)),
        "member_count": max(1, len(tables.members)),
        "slices": _data("path_slices", "pslice", _u32(tables.slices)),
        "slice_count": len(tables.slices) // 2,
        "clauses": _data("path_clauses", "pclause", _bytes(array("Q", tables.clauses))),
        "clause_count": max(1, len(tables.clauses)),
        "max_clauses": max((len(r.contexts) for r in program.rules), default=0),
        "context_count": len(context_kinds),
        "kfunc_contexts": f"{kfunc:#x}ULL",
    }


def _kind_view(
    kind: RuleKind,
    program: Program,
    targets: GlobTable,
    context_kinds: dict[int, str],
) -> dict[str, Any]:
    return {
        "name": kind.name,
        "parameters": kind.c_parameters,
        "rules": [
            _rule_view(r, kind, targets, context_kinds)
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
    return kind.absorbs.allows if rule.decision is abi.Decision.ALLOW else kind.absorbs.applies


def _rule_view(
    rule: Rule,
    kind: RuleKind,
    targets: GlobTable,
    context_kinds: dict[int, str],
) -> dict[str, Any]:
    return {
        "id": rule.id,
        "location": c_text.comment(f"{rule.span.file}:{rule.span.line}"),
        "comment": c_text.comment(rule.text),
        "match": _match_expression(rule, kind.object, targets),
        "decision": f"DECISION_{rule.decision.name}",
        "audit": int(rule.audit),
        "flags": f"{_granted(rule, kind):#x}ULL",
        "context": _context_expression(rule, context_kinds),
    }


def _match_expression(rule: Rule, kind: Object, targets: GlobTable) -> str:
    """The C condition under which the rule's object matches (decide_KIND's parameters)."""
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


def _context_view(context: Context) -> dict[str, Any]:
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
