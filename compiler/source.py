"""Source files and spans: where every AST node, IR rule and diagnostic points to."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import NamedTuple

from . import files


class Span(NamedTuple):
    """A range of one source file: 1-based line and column of its first and last character.

    A named tuple, not a frozen dataclass: a policy of 10,000 rules makes 130,000 of them,
    and a frozen dataclass takes twice as long to make."""

    file: str
    line: int
    column: int
    end_line: int
    end_column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"

    def start(self) -> Span:
        """The span of this span's first character, for errors that point at a position."""
        return Span(self.file, self.line, self.column, self.line, self.column)


@dataclass
class SourceFile:
    """One policy file as read, under the name diagnostics show for it."""

    name: str
    path: Path | None
    text: str
    #: The file was larger than the policy size limit; `text` holds only its beginning.
    oversized: bool = False

    @cached_property
    def lines(self) -> list[str]:
        """The file's lines, split once: diagnostics ask for lines many times."""
        return self.text.splitlines()

    @property
    def printable(self) -> bool:
        """False for binary garbage, whose lines are not worth echoing to a terminal."""
        return "\0" not in self.text and "\ufffd" not in self.text

    def line(self, number: int) -> str:
        """The text of a 1-based line without its newline ('' past the end)."""
        return self.lines[number - 1] if 0 < number <= len(self.lines) else ""

    def end_span(self) -> Span:
        """A span at the very end of the file, for errors like an unclosed block."""
        lines = self.lines or [""]
        last = len(lines)
        column = len(lines[-1]) + 1
        return Span(self.name, last, column, last, column)


@dataclass
class SourceMap:
    """All files of one compilation (the policy and its includes), by display name."""

    files: dict[str, SourceFile] = field(default_factory=dict)

    def add(self, source: SourceFile) -> SourceFile:
        self.files[source.name] = source
        return source

    def get(self, name: str) -> SourceFile | None:
        return self.files.get(name)


def read_policy(path: Path, display: str | None = None, what: str = "policy") -> SourceFile:
    """Read a policy file (or an include fragment) as text; undecodable bytes become U+FFFD,
    which parsing rejects, and a file over the size limit is marked for the parser to refuse.
    Raises files.InputFileError (naming `what`) for anything but a readable regular file."""
    fd = files.open_regular(path, what)
    with os.fdopen(fd, "rb") as stream:
        data = stream.read(files.MAX_POLICY_BYTES + 1)
    oversized = len(data) > files.MAX_POLICY_BYTES
    text = data[: files.MAX_POLICY_BYTES].decode("utf-8", errors="replace")
    return SourceFile(display or str(path), path, text, oversized)
