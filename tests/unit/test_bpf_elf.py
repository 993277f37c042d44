"""runtime/bpf_elf.py: what it reads of real objects is what pyelftools reads, and a file
whose tables point anywhere else is an ElfError, never another exception."""

from __future__ import annotations

import struct

import pytest
from bpfbox.runtime.bpf_elf import BpfElf, ElfError
from elftools.elf.elffile import ELFFile
from elftools.elf.enums import ENUM_SH_TYPE_BASE, ENUM_ST_INFO_TYPE, ENUM_ST_SHNDX
from elftools.elf.sections import SymbolTableSection


def test_sections_and_symbols_are_those_pyelftools_reads(compiled_mylogin, tmp_path):
    path = tmp_path / "x.o"
    path.write_bytes(compiled_mylogin)
    mine = BpfElf(compiled_mylogin)
    with path.open("rb") as stream:
        theirs = ELFFile(stream)
        assert [(s.name, s.type, s.offset, s.size, s.link) for s in mine.sections] == [
            (
                s.name,
                _number(ENUM_SH_TYPE_BASE, s["sh_type"]),
                s["sh_offset"],
                s["sh_size"],
                s["sh_link"],
            )
            for s in _raw_sections(theirs)
        ]
        for section in mine.sections:
            if section.name:
                assert mine.data(section) == theirs.get_section_by_name(section.name).data()
        symtab = theirs.get_section_by_name(".symtab")
        assert isinstance(symtab, SymbolTableSection)
        assert [(s.name, s.type, s.section, s.value, s.size) for s in mine.symbols()] == [
            (s.name, _number(ENUM_ST_INFO_TYPE, s["st_info"]["type"]),
             _number(ENUM_ST_SHNDX, s["st_shndx"]), s["st_value"], s["st_size"])
            for s in symtab.iter_symbols()
        ]  # fmt: skip
    assert len(mine.sections) > 20 and any(s.name.startswith("lsm/") for s in mine.sections)


def _number(names: dict, value: str | int) -> int:
    """A field's number, where pyelftools gives the name it has for it."""
    return value if isinstance(value, int) else names[value]


def _raw_sections(elf: ELFFile):
    for index in range(elf.num_sections()):
        yield elf.get_section(index)


def _edited(image: bytes, offset: int, layout: str, *values: int) -> bytes:
    edited = bytearray(image)
    struct.pack_into(layout, edited, offset, *values)
    return bytes(edited)


def _section_header(image: bytes, index: int) -> int:
    (table,) = struct.unpack_from("<Q", image, 0x28)
    return table + 64 * index


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda image: image[:40], "shorter than an ELF header"),
        (lambda image: b"\x7fELG" + image[4:], "no ELF magic number"),
        (lambda image: _edited(image, 4, "<B", 1), "not a 64-bit little-endian"),
        (lambda image: _edited(image, 0x3A, "<H", 40), "section headers of 40 bytes"),
        (lambda image: _edited(image, 0x3C, "<H", 0), "extended section numbering"),
        (lambda image: _edited(image, 0x28, "<Q", 2**63), "section header table ends past"),
        (lambda image: _edited(image, 0x3C, "<H", 0xFFFF), "section header table ends past"),
        (lambda image: _edited(image, 0x3E, "<H", 0xFFF0), "section name table 65520"),
        (lambda image: _edited(image, _section_header(image, 1), "<I", 2**31),
         "section name outside its string table"),
        (lambda image: _edited(image, _section_header(image, 1) + 24, "<Q", 2**40),
         "ends past the end of the file"),
    ],
)  # fmt: skip
def test_tables_pointing_outside_the_file_are_refused(compiled_mylogin, edit, message):
    with pytest.raises(ElfError, match=message):
        elf = BpfElf(edit(compiled_mylogin))
        for section in elf.sections:
            elf.data(section)


def test_symbol_names_outside_their_table_are_refused(compiled_mylogin):
    elf = BpfElf(compiled_mylogin)
    symtab = next(s for s in elf.sections if s.name == ".symtab")
    tampered = _edited(
        compiled_mylogin, symtab.offset + 24, "<I", 2**31
    )  # the second symbol's name
    with pytest.raises(ElfError, match="symbol name outside its string table"):
        list(BpfElf(tampered).symbols())
