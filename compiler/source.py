"""Source files and spans: where every AST node, IR rule and diagnostic points to."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Span:
    """A range of one source file: 1-based line and column of its first and last character."""

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

    @property
    def printable(self) -> bool:
        """False for binary garbage, whose lines are not worth echoing to a terminal."""
        return "\0" not in self.text and "\ufffd" not in self.text

    def line(self, number: int) -> str:
        """The text of a 1-based line without its newline ('' past the end)."""
        lines = self.text.splitlines()
        return lines[number - 1] if 0 < number <= len(lines) else ""

    def end_span(self) -> Span:
        """A span at the very end of the file, for errors like an unclosed block."""
        lines = self.text.splitlines() or [""]
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
