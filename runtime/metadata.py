"""Read and validate the metadata bpfboxc embeds in every compiled profile.

The metadata (a NUL-terminated JSON string in the ELF section `abi.METADATA_SECTION`) is
what lets the runtime attach function-context uprobes and turn a rule id in an event back
into "mylogin.bpfbox:4".  It is validated completely before anything is loaded, so a stale
or hand-edited object fails with a message naming the bad field rather than half-way
through attaching.
"""

from __future__ import annotations

import mmap
import os
from dataclasses import dataclass
from typing import Any

from bpfbox.compiler import abi, files, symbols
from bpfbox.runtime import bounded_json
from elftools.elf.elffile import ELFFile
from elftools.elf.sections import SymbolTableSection

#: ELF section-name prefixes of programs and the kernel feature each one needs.
SECTION_FEATURES = {
    "lsm/": "lsm",
    "lsm.s/": "lsm",
    "fentry/": "tracing",
    "fexit/": "tracing",
    "fentry.s/": "tracing",
    "fexit.s/": "tracing",
    "uprobe": "uprobe",
    "uretprobe": "uprobe",
}


#: Bounds on the embedded JSON: rules of real policies are far smaller, and the document
#: nests four levels (document, list, object, list).
MAX_METADATA_CHARS = 16 * files.MIB
MAX_METADATA_DEPTH = 8


class MetadataError(Exception):
    """The object's metadata is missing or does not follow the contract."""

    exit_code = 1
    help = "recompile the policy with the bpfboxc that matches this bpfbox-run"


@dataclass(frozen=True)
class Context:
    """A context rules can be restricted to: a user function (uprobe) or a kernel function."""

    index: int
    kind: str
    symbol: str
    binary: str | None = None
    offset: int | None = None
    enter_program: str | None = None
    leave_program: str | None = None


@dataclass(frozen=True)
class Rule:
    """A rule of the policy, as events refer to it."""

    id: int
    line: int
    column: int
    kind: str
    action: str
    text: str
    contexts: tuple[str, ...]


@dataclass(frozen=True)
class Metadata:
    """Everything the runtime needs to know about one compiled profile."""

    policy: str
    profile: str
    name: str
    contexts: tuple[Context, ...]
    rules: dict[int, Rule]
    #: Kernel features the object's programs need (values of SECTION_FEATURES).
    features: frozenset[str]
    #: Variables of the object's `.rodata` section: name -> (offset, size in bytes).
    rodata: dict[str, tuple[int, int]]

    def rule(self, rule_id: int) -> Rule | None:
        """The rule with that id, or None (abi.NO_RULE or an id the metadata lacks)."""
        return self.rules.get(rule_id)


def read(path: str) -> Metadata:
    """Read and validate the metadata of the compiled object at `path`."""
    try:
        # Mapped, not read: a tampered section size then ends at the file's end instead of
        # allocating that much memory.
        with (
            os.fdopen(files.open_regular(path, "profile object"), "rb") as f,
            mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as image,
        ):
            elf = ELFFile(image)
            raw = _metadata_bytes(elf, path)
            features = _features(elf)
            rodata = _rodata_variables(elf)
    except files.InputFileError as err:
        raise MetadataError(str(err)) from None
    except symbols.ELF_PARSE_ERRORS as err:
        raise MetadataError(f"{path} is not a valid ELF object: {err}") from None
    try:
        doc = bounded_json.loads(
            raw.decode(), max_chars=MAX_METADATA_CHARS, max_depth=MAX_METADATA_DEPTH
        )
    except (UnicodeDecodeError, bounded_json.BoundedJsonError) as err:
        raise MetadataError(f"{path}: metadata is not valid JSON: {err}") from None
    return parse(doc, path, features, rodata)


def _metadata_bytes(elf: ELFFile, path: str) -> bytes:
    section = elf.get_section_by_name(abi.METADATA_SECTION)
    if section is None:
        raise MetadataError(
            f"{path} has no bpfbox metadata (ELF section {abi.METADATA_SECTION}); "
            "was it compiled from bpfboxc output?"
        )
    data = section.data()
    start = _symbol_offset(elf, abi.METADATA_SYMBOL)
    end = data.find(b"\0", start)
    if end < 0:
        raise MetadataError(f"{path}: metadata in {abi.METADATA_SECTION} is not NUL-terminated")
    return data[start:end]


def _symbol_offset(elf: ELFFile, name: str) -> int:
    """Offset of symbol `name` within its section; 0 when the symbol is absent."""
    symtab = elf.get_section_by_name(".symtab")
    if isinstance(symtab, SymbolTableSection):
        for symbol in symtab.get_symbol_by_name(name) or ():
            return int(symbol["st_value"])
    return 0


def _rodata_variables(elf: ELFFile) -> dict[str, tuple[int, int]]:
    """Symbols defined in `.rodata`, where libbpf keeps `const volatile` globals."""
    symtab = elf.get_section_by_name(".symtab")
    index = next((i for i, s in enumerate(elf.iter_sections()) if s.name == ".rodata"), None)
    if not isinstance(symtab, SymbolTableSection) or index is None:
        return {}
    return {
        symbol.name: (int(symbol["st_value"]), int(symbol["st_size"]))
        for symbol in symtab.iter_symbols()
        if symbol["st_shndx"] == index and symbol["st_info"]["type"] == "STT_OBJECT"
    }


def _features(elf: ELFFile) -> frozenset[str]:
    found = set()
    for section in elf.iter_sections():
        for prefix, feature in SECTION_FEATURES.items():
            if section.name.startswith(prefix):
                found.add(feature)
    return frozenset(found)


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


def parse(
    doc: Any,
    path: str,
    features: frozenset[str] = frozenset(),
    rodata: dict[str, tuple[int, int]] | None = None,
) -> Metadata:
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
    return Metadata(
        policy=check.field(doc, "policy", str, "metadata"),
        profile=_absolute(check, check.field(doc, "profile", str, "metadata"), "metadata.profile"),
        name=check.field(doc, "name", str, "metadata"),
        contexts=contexts,
        rules=rules,
        features=features,
        rodata=rodata or {},
    )


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
    if kind not in abi.RULE_KINDS:
        raise check.fail(f"{where}.kind", f"is {kind!r}, not one of {', '.join(abi.RULE_KINDS)}")
    contexts = check.optional(obj, "contexts", list, where) or []
    if not all(isinstance(c, str) for c in contexts):
        raise check.fail(f"{where}.contexts", "must be a list of strings")
    return Rule(
        id=rule_id,
        line=check.field(obj, "line", int, where),
        column=check.field(obj, "column", int, where),
        kind=kind,
        action=check.field(obj, "action", str, where),
        text=check.field(obj, "text", str, where),
        contexts=tuple(contexts),
    )
