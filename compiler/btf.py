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
from collections.abc import Iterable, Iterator
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
_TYPE_SIZE = struct.calcsize("<" + _TYPE)

_KIND_FUNC = abi.BTF_KIND_FUNC
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
    pos = 0
    type_id = 1  # id 0 is the implicit `void`
    while pos < len(types):
        if pos + _TYPE_SIZE > len(types):
            raise BtfError(f"corrupt BTF in `{path}`: type section ends inside type #{type_id}")
        name_off, info, _ = struct.unpack_from(order + _TYPE, types, pos)
        kind = (info >> 24) & 0x1F
        if kind not in _TRAILER_SIZES:
            raise BtfError(f"corrupt BTF in `{path}`: type #{type_id} has unknown kind {kind}")
        fixed, per_item = _TRAILER_SIZES[kind]
        pos += _TYPE_SIZE + fixed + per_item * (info & 0xFFFF)
        yield kind, name_off
        type_id += 1
    if pos != len(types):
        raise BtfError(f"corrupt BTF in `{path}`: type section ends inside type #{type_id - 1}")


def _string_at(strings: bytes, offset: int, path: str | Path) -> str:
    end = strings.find(b"\0", offset)
    if offset >= len(strings) or end < 0:
        raise BtfError(f"corrupt BTF in `{path}`: name offset {offset} is out of range")
    try:
        return strings[offset:end].decode()
    except UnicodeDecodeError as error:
        raise BtfError(f"corrupt BTF in `{path}`: name at offset {offset} is not UTF-8") from error
