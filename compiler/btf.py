"""Kernel function names from raw BTF, and the shared "did you mean" helper.

A `#[kfunc "NAME"]` context only makes sense if the running kernel has a function called NAME,
and the kernel says which functions it has in its BTF (`/sys/kernel/btf/vmlinux`): every
function it can attach to has a `BTF_KIND_FUNC` record there.  This module reads that blob
directly (no libbpf, no bpftool) so that the compiler works on machines without either, and so
that golden tests can pass a small checked-in blob instead of the machine's kernel.

Raw BTF is a `struct btf_header`, then a section of `struct btf_type` records, each followed
by kind-dependent trailing data, then a section of NUL-terminated strings.  Records carry no
length, so finding the FUNC records means knowing the size of every kind.
"""

from __future__ import annotations

import difflib
import struct
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from bpfbox.contract import abi

from . import files

DEFAULT_BTF_PATH = abi.BTF_PATH

_MAGIC = 0xEB9F
_VERSION = 1
# magic, version, flags, hdr_len, type_off, type_len, str_off, str_len
_HEADER = "HBBIIIII"
_HEADER_SIZE = struct.calcsize("<" + _HEADER)
# name_off, info, size-or-type: the fixed part of every `struct btf_type`.
_TYPE = "III"
TYPE_SIZE = struct.calcsize("<" + _TYPE)

_KIND_FUNC = abi.BTF_KIND_FUNC
_KIND_PTR = 2
_KIND_ENUM = 6
_KIND_FUNC_PROTO = 13
#: VOLATILE, CONST, RESTRICT, TYPE_TAG: dropped when spelling a type.
_QUALIFIERS = frozenset({9, 10, 11, 18})
#: The C keyword in front of a named type of these kinds (FWD: a declared-only struct).
_TAGS = {4: "struct ", 5: "union ", 6: "enum ", 7: "struct ", 19: "enum "}
# Bytes that follow the fixed part of a record, as (fixed, per vlen item), by kind number.
# FUNC keeps its linkage in vlen, so vlen is not a count there.
_TRAILER_SIZES = {
    1: (4, 0),  # INT: encoding word
    2: (0, 0),  # PTR
    3: (12, 0),  # ARRAY: struct btf_array
    4: (0, 12),  # STRUCT: struct btf_member per member
    5: (0, 12),  # UNION: struct btf_member per member
    6: (0, 8),  # ENUM: struct btf_enum per value
    7: (0, 0),  # FWD
    8: (0, 0),  # TYPEDEF
    9: (0, 0),  # VOLATILE
    10: (0, 0),  # CONST
    11: (0, 0),  # RESTRICT
    _KIND_FUNC: (0, 0),  # FUNC
    13: (0, 8),  # FUNC_PROTO: struct btf_param per parameter
    14: (4, 0),  # VAR: struct btf_var
    15: (0, 12),  # DATASEC: struct btf_var_secinfo per variable
    16: (0, 0),  # FLOAT
    17: (4, 0),  # DECL_TAG: struct btf_decl_tag
    18: (0, 0),  # TYPE_TAG
    19: (0, 12),  # ENUM64: struct btf_enum64 per value
}


class BtfError(Exception):
    """The BTF file cannot be read or is not well-formed raw BTF."""


def kernel_function_names(btf_path: str | Path = DEFAULT_BTF_PATH) -> frozenset[str]:
    """Return the names of all `BTF_KIND_FUNC` records in the raw BTF file at `btf_path`.

    These are the kernel functions a `#[kfunc]` context may name.  Raises BtfError when the
    file is missing, unreadable, or not well-formed raw BTF.
    """
    data = _read(Path(btf_path))
    order = _byte_order(data, btf_path)
    types, strings = _sections(data, order, btf_path)
    return frozenset(
        _string_at(strings, name_off, btf_path)
        for kind, name_off in _iter_types(types, order, btf_path)
        if kind == _KIND_FUNC
    )


def nearest_names(name: str, names: Iterable[str], limit: int = 3) -> list[str]:
    """Return up to `limit` names from `names` that look most like `name`, best first.

    This is the "did you mean" list of every unknown-name diagnostic, so that kernel and user
    functions are suggested the same way.  `name` itself is never suggested, and ties are
    broken by the name, so the answer does not depend on the order of `names`.
    """
    if limit <= 0:
        return []
    others = [candidate for candidate in names if candidate != name]
    return difflib.get_close_matches(name, others, n=limit)


def _read(path: Path) -> bytes:
    try:
        return files.read_regular(path, "BTF file", files.MAX_BTF_BYTES)
    except OSError as error:
        raise BtfError(str(error)) from None


def _byte_order(data: bytes, path: str | Path) -> str:
    """Return the struct prefix for the blob's endianness, which the magic reveals."""
    if data[:2] == struct.pack("<H", _MAGIC):
        return "<"
    if data[:2] == struct.pack(">H", _MAGIC):
        return ">"
    if data[:4] == b"\x7fELF":
        raise BtfError(
            f"`{path}` is an ELF file, not raw BTF; extract its `.BTF` section with "
            "`llvm-objcopy --dump-section .BTF=FILE`"
        )
    raise BtfError(f"`{path}` is not raw BTF: bad magic")


def _sections(data: bytes, order: str, path: str | Path) -> tuple[bytes, bytes]:
    """Check the header and return the type and string sections it describes."""
    if len(data) < _HEADER_SIZE:
        raise BtfError(f"truncated BTF in `{path}`: incomplete header")
    _, version, _, hdr_len, type_off, type_len, str_off, str_len = struct.unpack_from(
        order + _HEADER, data
    )
    if version != _VERSION:
        raise BtfError(f"unsupported BTF version {version} in `{path}`")
    if hdr_len < _HEADER_SIZE:
        raise BtfError(f"corrupt BTF in `{path}`: header length {hdr_len} is too small")
    # Section offsets count from the end of the header, whose length newer kernels may grow.
    type_start = hdr_len + type_off
    str_start = hdr_len + str_off
    if type_start + type_len > len(data) or str_start + str_len > len(data):
        raise BtfError(f"truncated BTF in `{path}`: sections extend past the end of the file")
    return data[type_start : type_start + type_len], data[str_start : str_start + str_len]


def _iter_types(types: bytes, order: str, path: str | Path) -> Iterator[tuple[int, int]]:
    """Yield (kind, name offset) of every record of the type section, in order."""
    for record in _records(types, order, path):
        yield record.kind, record.name_off


@dataclass(frozen=True)
class Record:
    kind: int
    name_off: int
    #: The size or the referenced type id (PTR, TYPEDEF, qualifiers, FUNC, FUNC_PROTO's return).
    ref: int
    #: FUNC_PROTO: the type ids of its parameters; ENUM: (name offset, value) pairs.
    items: tuple[tuple[int, int], ...] = ()


def _records(types: bytes, order: str, path: str | Path) -> Iterator[Record]:
    """Every record of the type section, in order (type id 1 first)."""
    pos = 0
    type_id = 1  # id 0 is the implicit `void`
    while pos < len(types):
        if pos + TYPE_SIZE > len(types):
            raise BtfError(f"corrupt BTF in `{path}`: type section ends inside type #{type_id}")
        (info,) = struct.unpack_from(order + "I", types, pos + 4)
        size = record_size(info)
        if size is None:
            kind = (info >> 24) & 0x1F
            raise BtfError(f"corrupt BTF in `{path}`: type #{type_id} has unknown kind {kind}")
        yield record_at(types, pos, order)
        pos += size
        type_id += 1
    if pos != len(types):
        raise BtfError(f"corrupt BTF in `{path}`: type section ends inside type #{type_id - 1}")


def record_size(info: int) -> int | None:
    """The bytes of a record whose `info` word is `info`, trailer included; None for a kind
    this module does not know."""
    sizes = _TRAILER_SIZES.get((info >> 24) & 0x1F)
    if sizes is None:
        return None
    fixed, per_item = sizes
    return TYPE_SIZE + fixed + per_item * (info & 0xFFFF)


def record_at(data: bytes, pos: int, order: str) -> Record:
    """The record at `pos` of `data`, in byte order `order` (its items only if `data` holds
    them all: a truncated section is reported by the caller)."""
    name_off, info, ref = struct.unpack_from(order + _TYPE, data, pos)
    kind = (info >> 24) & 0x1F
    vlen = info & 0xFFFF
    items: tuple[tuple[int, int], ...] = ()
    if kind in (_KIND_FUNC_PROTO, _KIND_ENUM) and pos + TYPE_SIZE + 8 * vlen <= len(data):
        fmt = order + ("Ii" if kind == _KIND_ENUM else "II")
        start = pos + TYPE_SIZE
        items = tuple(struct.unpack_from(fmt, data, start + 8 * i) for i in range(vlen))
    return Record(kind, name_off, ref, items)


class TypeReader(ABC):
    """Questions about the named functions and enums of a BTF, over whatever reads its
    records: this module's parser (KernelTypes), or libbpf's at run time."""

    path: str | Path

    def parameter_types(self, function: str) -> tuple[str, ...] | None:
        """The parameter types of function `function` as `spell` writes them; None if the
        BTF has no such function."""
        type_id = self._find(_KIND_FUNC, function)
        if type_id is None:
            return None
        proto = self._record(self._record(type_id).ref)
        if proto.kind != _KIND_FUNC_PROTO:
            raise BtfError(f"corrupt BTF in `{self.path}`: {function} has no prototype")
        return tuple(self.spell(param_type) for _, param_type in proto.items)

    def enum_names(self, enum: str) -> frozenset[str]:
        """The value names of enum `enum` (empty if the BTF has no such enum)."""
        type_id = self._find(_KIND_ENUM, enum)
        if type_id is None:
            return frozenset()
        return frozenset(self._name(name_off) for name_off, _ in self._record(type_id).items)

    def spell(self, type_id: int) -> str:
        """A type as C writes it, without qualifiers: `struct dentry *`, `size_t`, `int`."""
        record = self._record(type_id)
        if type_id == 0:
            return "void"
        if record.kind == _KIND_PTR:
            return self.spell(record.ref) + " *"
        if record.kind in _QUALIFIERS:
            return self.spell(record.ref)
        name = self._name(record.name_off) if record.name_off else "(anonymous)"
        return _TAGS.get(record.kind, "") + name

    @abstractmethod
    def _find(self, kind: int, name: str) -> int | None:
        """The id of the first type of `kind` called `name`; None if there is none."""

    @abstractmethod
    def _record(self, type_id: int) -> Record:
        """Type `type_id` (0: void), its items decoded for FUNC_PROTO and ENUM."""

    @abstractmethod
    def _name(self, offset: int) -> str:
        """The string at `offset` of the string section."""


class KernelTypes(TypeReader):
    """The records of a raw BTF file, parsed here (the compiler's machine may lack libbpf)."""

    def __init__(self, btf_path: str | Path = DEFAULT_BTF_PATH) -> None:
        self.path = btf_path
        data = _read(Path(btf_path))
        order = _byte_order(data, btf_path)
        types, self._strings = _sections(data, order, btf_path)
        self._types = [Record(0, 0, 0), *_records(types, order, btf_path)]
        self._named: dict[tuple[int, str], int] = {}
        for type_id, record in enumerate(self._types):
            if record.kind in (_KIND_FUNC, _KIND_ENUM) and record.name_off:
                self._named.setdefault((record.kind, self._name(record.name_off)), type_id)

    def _find(self, kind: int, name: str) -> int | None:
        return self._named.get((kind, name))

    def _record(self, type_id: int) -> Record:
        if not 0 <= type_id < len(self._types):
            raise BtfError(f"corrupt BTF in `{self.path}`: type id {type_id} is out of range")
        return self._types[type_id]

    def _name(self, offset: int) -> str:
        return _string_at(self._strings, offset, self.path)


def _string_at(strings: bytes, offset: int, path: str | Path) -> str:
    end = strings.find(b"\0", offset)
    if offset >= len(strings) or end < 0:
        raise BtfError(f"corrupt BTF in `{path}`: name offset {offset} is out of range")
    try:
        return strings[offset:end].decode()
    except UnicodeDecodeError as error:
        raise BtfError(f"corrupt BTF in `{path}`: name at offset {offset} is not UTF-8") from error
