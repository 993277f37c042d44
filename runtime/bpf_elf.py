"""The sections and symbols of a compiled profile: an ELF64 little-endian object, as clang
writes it for the BPF target.

bpfbox-run reads a few things from it before libbpf opens it (runtime/metadata.py): the
metadata section, the programs' section names, the `.rodata` variables.  This reader does
that with `struct` and nothing else, every offset and count checked against the file: the
general ELF library the compiler uses (pyelftools, for the profile programs' symbols) cost
some 0.08 s of every start, imports included (50 times that in the emulated VM).
"""

from __future__ import annotations

import mmap
import struct
from collections.abc import Iterator
from dataclasses import dataclass

_IDENT = struct.Struct("<4sBB")  # magic, class, data encoding
#: From 0x28: e_shoff, e_flags, e_ehsize, e_phentsize, e_phnum, e_shentsize, e_shnum, e_shstrndx.
_SECTION_TABLE = struct.Struct("<Q10xHHH")
_SECTION_HEADER = struct.Struct("<IIQQQQIIQQ")
_SYMBOL = struct.Struct("<IBBHQQ")
_ELFCLASS64, _ELFDATA2LSB = 2, 1
_SHT_SYMTAB, _SHT_NOBITS = 2, 8
#: A symbol's type: the low four bits of st_info.
STT_OBJECT = 1


class ElfError(ValueError):
    """The file is not an ELF object this reader takes, or its tables point outside it."""


@dataclass(frozen=True)
class Section:
    """A section header's fields that bpfbox-run reads (sh_name resolved)."""

    index: int
    name: str
    type: int
    offset: int
    size: int
    link: int


@dataclass(frozen=True)
class Symbol:
    """A symbol table entry: its name, type (STT_*), section index, value and size."""

    name: str
    type: int
    section: int
    value: int
    size: int


class BpfElf:
    """An object file's section table, read at once; data and symbols read when asked."""

    def __init__(self, image: bytes | mmap.mmap) -> None:
        # Kept as it is (no memoryview of a mapping, which could then not be closed).
        self.image = image
        if len(self.image) < 0x40:
            raise ElfError("shorter than an ELF header")
        magic, elf_class, encoding = _IDENT.unpack_from(self.image, 0)
        if magic != b"\x7fELF":
            raise ElfError("no ELF magic number")
        if (elf_class, encoding) != (_ELFCLASS64, _ELFDATA2LSB):
            raise ElfError("not a 64-bit little-endian ELF file")
        table, entry, count, names = _SECTION_TABLE.unpack_from(self.image, 0x28)
        if entry != _SECTION_HEADER.size:
            raise ElfError(f"section headers of {entry} bytes, not {_SECTION_HEADER.size}")
        if count == 0 and table:  # more sections than the header's field counts: not clang's
            raise ElfError("extended section numbering")
        self._within(table, count * entry, "the section header table")
        headers = [_SECTION_HEADER.unpack_from(self.image, table + i * entry) for i in range(count)]
        if count and not names < count:
            raise ElfError(f"section name table {names} of {count} sections")
        strings = self.data(_section(names, headers[names], "")) if count else b""
        self.sections = [
            _section(i, h, _string(strings, h[0], "section name")) for i, h in enumerate(headers)
        ]

    def section(self, name: str) -> Section | None:
        """The first section called `name`, as ELF readers find one."""
        return next((s for s in self.sections if s.name == name), None)

    def data(self, section: Section) -> bytes:
        if section.type == _SHT_NOBITS:
            return b""
        self._within(section.offset, section.size, f"section {section.index}")
        return self.image[section.offset : section.offset + section.size]

    def symbols(self) -> Iterator[Symbol]:
        """The symbols of the (first) symbol table, in order; none if there is no table."""
        table = next((s for s in self.sections if s.type == _SHT_SYMTAB), None)
        if table is None:
            return
        if not table.link < len(self.sections):
            raise ElfError(f"symbol names in section {table.link} of {len(self.sections)}")
        data, names = self.data(table), self.data(self.sections[table.link])
        for offset in range(0, len(data) - _SYMBOL.size + 1, _SYMBOL.size):
            name, info, _, section, value, size = _SYMBOL.unpack_from(data, offset)
            yield Symbol(_string(names, name, "symbol name"), info & 0xF, section, value, size)

    def _within(self, offset: int, size: int, what: str) -> None:
        if offset + size > len(self.image):
            raise ElfError(f"{what} ends past the end of the file")


def _section(index: int, header: tuple[int, ...], name: str) -> Section:
    """A section from its header's fields (_SECTION_HEADER's order)."""
    _, kind, _, _, offset, size, link, _, _, _ = header
    return Section(index, name, kind, offset, size, link)


def _string(table: bytes, offset: int, what: str) -> str:
    """The NUL-terminated string at `offset` of a string table."""
    end = table.find(b"\0", offset)
    if offset >= len(table) or end < 0:
        raise ElfError(f"a {what} outside its string table")
    return table[offset:end].decode("utf-8", errors="replace")
