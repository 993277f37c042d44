"""Text from a policy, a file name or the kernel's BTF, made safe to paste into generated C.

Everything the code generator copies out of its input into C goes through one of these
functions, so that no input can end a comment early (a path containing `*/`), break out of a
string literal or a section name (a quote from a crafted BTF), or smuggle a control character
or a line splice into the program.  The output is plain printable ASCII.
"""

from __future__ import annotations

import re

#: What a C identifier (and so a kernel function name in `SEC("fentry/NAME")`) looks like.
C_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _printable(character: str) -> bool:
    return " " <= character <= "~"


def comment(text: str) -> str:
    """`text` for the inside of a `/* ... */` comment, on one line.

    A `*/` would end the comment and a `/*` would make clang warn, so their `/` become `\\/`;
    a backslash could splice the next line in; anything not printable ASCII is written as an
    escape (`\\n`, `\\xHH`, `\\u{HHHH}`), so the reader still sees what the input said.
    """
    # Most text has nothing to escape; the rest is rewritten character by character.
    if not (text.isascii() and text.isprintable() and "\\" not in text):
        text = "".join(_comment_character(character) for character in text)
    return text.replace("*/", "*\\/").replace("/*", "/\\*")


def _comment_character(character: str) -> str:
    if character == "\\":
        return "\\\\"
    if _printable(character):
        return character
    if character == "\n":
        return "\\n"
    if character == "\t":
        return "\\t"
    if ord(character) < 0x100:
        return f"\\x{ord(character):02x}"
    return f"\\u{{{ord(character):04x}}}"


def string_literal_chunks(text: str, width: int) -> list[str]:
    """`text` as the bodies of adjacent C string literals, one for each `width` bytes of its
    UTF-8 encoding.

    Bytes outside printable ASCII are octal escapes of exactly three digits, so that no escape
    can run on into the next character, and each literal holds whole escapes (adjacent
    literals are joined after escapes are read: `"\\1" "23"` is not `"\\123"`).  The second
    `?` of a `??` is an escape too: `??/` and its kind are trigraphs (a warning, an error with
    -Werror, and a different string where trigraphs are on); a `?` that ends a literal is
    followed by a quote, never by a trigraph's `?`.
    """
    data = text.encode().decode("latin-1")
    if data.isascii() and data.isprintable():
        # All the JSON metadata: only `\\` and `"` need escapes, and str.replace writes
        # them three times as fast as str.translate.
        return [
            data[i : i + width].replace("\\", "\\\\").replace('"', '\\"').replace("??", "?\\077")
            for i in range(0, len(data), width)
        ]
    return [
        data[i : i + width].translate(_ESCAPED).replace("??", "?\\077")
        for i in range(0, len(data), width)
    ]


def byte_literal_chunks(data: bytes, width: int) -> list[str]:
    """`data` (a table of numbers) as the bodies of adjacent C string literals of `width`
    bytes each.  A byte is itself when printable and neither a digit (which could continue
    an escape before it) nor `\\`, `"` or `?` (trigraphs); otherwise the shortest octal
    escape, which the next character, a backslash or a non-digit, ends.  Clang reads tables
    written so in a fraction of the time it takes for the same numbers as an initializer
    list, and the C is 2 to 3 characters a byte (str.translate: megabytes in milliseconds)."""
    return [
        data[i : i + width].decode("latin-1").translate(_BYTE_LITERAL)
        for i in range(0, len(data), width)
    ]


_BYTE_LITERAL = {
    byte: (
        chr(byte)
        if 0x20 <= byte <= 0x7E and not chr(byte).isdigit() and chr(byte) not in '\\"?'
        else f"\\{byte:o}"
    )
    for byte in range(256)
}


def string_literal(text: str) -> str:
    """`text` as the body of one C string literal (no surrounding quotes)."""
    return "".join(string_literal_chunks(text, len(text.encode()) + 1))


def _escaped_byte(byte: int) -> str:
    if byte in (ord("\\"), ord('"')):
        return "\\" + chr(byte)
    if 0x20 <= byte <= 0x7E:
        return chr(byte)
    return f"\\{byte:03o}"


#: Each byte as string_literal_chunks writes it (a table for str.translate).
_ESCAPED = {byte: _escaped_byte(byte) for byte in range(256)}


def identifier(name: str) -> str:
    """`name`, which goes into C as it is (a section name such as `SEC("fentry/NAME")`),
    if it is a C identifier; the resolve pass already required that of the policy's names."""
    if not C_IDENTIFIER.fullmatch(name):
        raise ValueError(f"{name!r} is not a C identifier")
    return name
