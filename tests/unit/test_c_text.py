"""compiler/c_text.py: whatever the text, what it makes is C that means that text."""

from __future__ import annotations

import ctypes
import re
import subprocess

import pytest
from bpfbox.compiler import c_text
from bpfbox.contract.abi import CLANG_FLAGS

HOSTILE = [
    "*/ int injected; /*",
    "/* nested */",
    'quote " and \\" and \\\\',
    "line\\\nsplice",
    "new\nline\r\ttab",
    "nul \0 byte",
    "??/ trigraph ??=",
    "é ü 漢 \U0001f600",
    "".join(map(chr, range(256))),
    "\\",
    "",
]


def _c_string_value(body: str) -> bytes:
    """What a C compiler makes of a string literal body made of printable characters,
    `\\\\`, `\\"` and three-digit octal escapes (all string_literal writes)."""
    out = bytearray()
    for match in re.finditer(r'\\([0-7]{3}|\\|")|(.)', body, re.DOTALL):
        escape, plain = match.groups()
        if plain is not None:
            assert plain != "\\" and plain != '"'
            out += plain.encode()
        elif escape in ("\\", '"'):
            out += escape.encode()
        else:
            out.append(int(escape, 8))
    return bytes(out)


@pytest.mark.parametrize("text", HOSTILE)
def test_comment_is_one_printable_line_that_cannot_end_early(text):
    comment = c_text.comment(text)
    assert all(" " <= c <= "~" for c in comment)
    assert "*/" not in comment and "/*" not in comment
    assert not comment.endswith("\\") or comment.endswith("\\\\")


@pytest.mark.parametrize("text", HOSTILE)
def test_string_literal_holds_the_utf8_of_the_text(text):
    body = c_text.string_literal(text)
    assert all(" " <= c <= "~" for c in body)
    assert _c_string_value(body) == text.encode()


@pytest.mark.parametrize("width", [1, 2, 5, 96])
@pytest.mark.parametrize("text", HOSTILE)
def test_chunks_never_split_an_escape(text, width):
    chunks = c_text.string_literal_chunks(text, width)
    assert not any("??" in chunk for chunk in chunks), "a trigraph could start there"
    # Each chunk is a whole literal: read separately, they still give the text.
    assert b"".join(_c_string_value(chunk) for chunk in chunks) == text.encode()


def test_clang_reads_back_every_hostile_text(tmp_path):
    """Comments stay comments and literals hold exactly the text's bytes, for clang too."""
    lines = []
    for index, text in enumerate(HOSTILE):
        chunks = c_text.string_literal_chunks(text, 7) or [""]
        initializer = " ".join(f'"{chunk}"' for chunk in chunks)
        size = len(text.encode()) + 1
        lines += [
            f"/* {c_text.comment(text)} */",
            f"static const char text{index}[] = {initializer};",
            f'_Static_assert(sizeof(text{index}) == {size}, "text {index}");',
        ]
    source = tmp_path / "hostile.c"
    source.write_text("\n".join(lines) + "\n")
    result = subprocess.run(
        ["clang", *CLANG_FLAGS, "-Werror", "-Wno-unused-const-variable", "-fsyntax-only",
         str(source)],
        capture_output=True,
        text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("name", ["vfs_read", "_x1", "A"])
def test_identifiers_pass(name):
    assert c_text.identifier(name) == name


@pytest.mark.parametrize("name", ['vfs_read"', "a b", "1x", "", "x*/", "f.cold", "é"])
def test_anything_else_is_not_an_identifier(name):
    with pytest.raises(ValueError, match="not a C identifier"):
        c_text.identifier(name)


def test_byte_tables_compile_to_their_bytes(tmp_path):
    """Data tables (codegen's) hold exactly their bytes once clang compiled them, whatever
    the bytes and wherever a chunk ends."""
    data = bytes(range(256)) + b"\0" * 3 + b"??/??=" + b"01\x017\x08" + bytes(range(255, -1, -1))
    chunks = c_text.byte_literal_chunks(data, 5)
    body = "\n".join(f'\t"{chunk}"' for chunk in chunks)
    source = tmp_path / "table.c"
    source.write_text(f"const unsigned char table[{len(data)}] =\n{body};\n")
    library = tmp_path / "table.so"
    result = subprocess.run(
        ["clang", "-Werror", "-shared", "-fPIC", str(source), "-o", str(library)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    table = (ctypes.c_ubyte * len(data)).in_dll(ctypes.CDLL(str(library)), "table")
    assert bytes(table) == data
    assert all(" " <= c <= "~" for chunk in chunks for c in chunk)
