"""Read the metadata bpfboxc embeds in every compiled profile out of its ELF object.

The metadata (a NUL-terminated JSON string in the ELF section `abi.METADATA_SECTION`) is
what lets the runtime attach function-context uprobes and turn a rule id in an event back
into "mylogin.bpfbox:4".  Its format and validation are the contract's
(`bpfbox.contract.metadata`); this module finds it in the object and adds what the ELF file
itself says (the kernel features its programs need, its read-only variables).
"""

from __future__ import annotations

import mmap
import os
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from bpfbox.compiler import files
from bpfbox.contract import abi
from bpfbox.contract.metadata import Document, MetadataError, Rule
from bpfbox.runtime import bounded_json
from bpfbox.runtime.bpf_elf import STT_OBJECT, BpfElf, ElfError

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


@dataclass(frozen=True)
class Metadata(Document):
    """The embedded document, and what the object's ELF file says about its programs."""

    #: Kernel features the object's programs need (values of SECTION_FEATURES).
    features: frozenset[str] = frozenset()
    #: Variables of the object's `.rodata` section: name -> (offset, size in bytes).
    rodata: dict[str, tuple[int, int]] = field(default_factory=dict)

    def rule(self, rule_id: int) -> Rule | None:
        """The rule with that id, or None (abi.NO_RULE or an id the metadata lacks)."""
        return self._rules_by_id.get(rule_id)

    @cached_property
    def _rules_by_id(self) -> dict[int, Rule]:
        # Looked up for every event; the first rule of an id wins, as a search would find it.
        by_id: dict[int, Rule] = {}
        for rule in self.rules:
            by_id.setdefault(rule.id, rule)
        return by_id


def read(path: str) -> Metadata:
    """Read and validate the metadata of the compiled object at `path`."""
    try:
        # Mapped, not read: a tampered section size then ends at the file's end instead of
        # allocating that much memory.
        with (
            os.fdopen(files.open_regular(path, "profile object"), "rb") as f,
            mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as image,
        ):
            elf = BpfElf(image)
            raw = _metadata_bytes(elf, path)
            features = _features(elf)
            rodata = _rodata_variables(elf)
    except files.InputFileError as err:
        raise MetadataError(str(err)) from None
    except ElfError as err:
        raise MetadataError(f"{path} is not a valid ELF object: {err}") from None
    try:
        doc = bounded_json.loads(
            raw.decode(), max_chars=MAX_METADATA_CHARS, max_depth=MAX_METADATA_DEPTH
        )
    except (UnicodeDecodeError, bounded_json.BoundedJsonError) as err:
        raise MetadataError(f"{path}: metadata is not valid JSON: {err}") from None
    return parse(doc, path, features, rodata)


def _metadata_bytes(elf: BpfElf, path: str) -> bytes:
    section = elf.section(abi.METADATA_SECTION)
    if section is None:
        raise MetadataError(
            f"{path} has no bpfbox metadata (ELF section {abi.METADATA_SECTION}); "
            "was it compiled from bpfboxc output?"
        )
    data = elf.data(section)
    start = _symbol_offset(elf, abi.METADATA_SYMBOL)
    end = data.find(b"\0", start)
    if end < 0:
        raise MetadataError(f"{path}: metadata in {abi.METADATA_SECTION} is not NUL-terminated")
    return data[start:end]


def _symbol_offset(elf: BpfElf, name: str) -> int:
    """Offset of symbol `name` within its section; 0 when the symbol is absent."""
    return next((symbol.value for symbol in elf.symbols() if symbol.name == name), 0)


def _rodata_variables(elf: BpfElf) -> dict[str, tuple[int, int]]:
    """Symbols defined in `.rodata`, where libbpf keeps `const volatile` globals."""
    rodata = elf.section(".rodata")
    if rodata is None:
        return {}
    return {
        symbol.name: (symbol.value, symbol.size)
        for symbol in elf.symbols()
        if symbol.section == rodata.index and symbol.type == STT_OBJECT
    }


def _features(elf: BpfElf) -> frozenset[str]:
    found = set()
    for section in elf.sections:
        for prefix, feature in SECTION_FEATURES.items():
            if section.name.startswith(prefix):
                found.add(feature)
    return frozenset(found)


def parse(
    doc: Any,
    path: str,
    features: frozenset[str] = frozenset(),
    rodata: dict[str, tuple[int, int]] | None = None,
) -> Metadata:
    """Validate a decoded metadata document; `path` only serves the error messages."""
    document = Document.from_json(doc, path)
    return Metadata(**document.__dict__, features=features, rodata=rodata or {})
