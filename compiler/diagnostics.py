"""Compiler diagnostics: stable codes, rustc-style rendering, and the collector passes use.

A pass never raises on a policy error: it reports a `Diagnostic` and carries on, so that one
run shows every error of that pass.  The pipeline stops after the first pass that reported an
error.  Codes are stable: tests, docs and users refer to them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import Enum

from .source import SourceMap, Span

#: Every code the compiler can emit, with the one-line summary docs/language.md lists.
CODES = {
    # Reading and syntax.
    "E0001": "syntax error",
    "E0002": "unterminated string",
    "E0003": "unclosed block",
    "E0004": "unterminated comment",
    "E0005": "invalid escape in a string",
    "E0006": "the policy file is not text",
    "E0007": "the policy file is empty",
    "E0008": "the policy file is too large",
    "E0009": "blocks nest too deep",
    # Names and types.
    "E0101": "unknown rule kind",
    "E0102": "unknown access flag",
    "E0103": "unknown directive",
    "E0104": "unknown address family",
    "E0105": "unknown signal",
    "E0106": "unknown capability",
    "E0107": "wrong number of arguments",
    "E0108": "wrong kind of argument",
    "E0109": "unknown file attribute",
    "E0110": "malformed attribute arguments",
    "E0111": "conflicting action directives",
    "E0112": "`any` combined with other names",
    "E0113": "unknown target",
    "E0114": "unknown IPC object kind",
    "E0115": "unknown ioctl command",
    # Paths and globs.
    "E0201": "relative path",
    "E0202": "malformed glob",
    "E0203": "malformed path",
    # Profile and includes.
    "E0301": "missing profile",
    "E0302": "duplicate profile",
    "E0303": "misplaced file attribute",
    "E0401": "include not found",
    "E0402": "include cycle",
    "E0403": "include cannot be read",
    "E0404": "too many includes or includes nested too deep",
    # Symbols.
    "E0501": "profile program not found",
    "E0502": "profile program is not an ELF executable",
    "E0503": "function not found",
    "E0504": "stripped binary",
    "E0505": "ambiguous function name",
    "E0506": "kernel function not in BTF",
    "E0507": "library not usable",
    "E0508": "policy too complex",
    "E0509": "symbols do not match the binary",
    "E0510": "too many function contexts",
    "E0511": "function name is not a symbol name",
    # Warnings.
    "W0001": "duplicate rule",
    "W0002": "allow rule shadowed by a deny rule",
}


class Severity(Enum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True)
class Note:
    """A secondary location that explains the primary one (e.g. where a profile was first set)."""

    message: str
    span: Span | None = None


@dataclass(frozen=True)
class Diagnostic:
    """One error or warning, located in the source when it has a place there."""

    code: str
    message: str
    span: Span | None = None
    label: str = ""
    help: tuple[str, ...] = ()
    notes: tuple[Note, ...] = ()

    def __post_init__(self) -> None:
        if self.code not in CODES:
            raise ValueError(f"unregistered diagnostic code {self.code}")

    @property
    def severity(self) -> Severity:
        return Severity.WARNING if self.code.startswith("W") else Severity.ERROR


@dataclass
class Diagnostics:
    """What passes report into; the pipeline reads it to decide whether to go on."""

    items: list[Diagnostic] = field(default_factory=list)

    def report(self, diagnostic: Diagnostic) -> None:
        self.items.append(diagnostic)

    def add(
        self,
        code: str,
        message: str,
        span: Span | None = None,
        *,
        label: str = "",
        help: str | tuple[str, ...] = (),
        notes: tuple[Note, ...] = (),
    ) -> None:
        """Report `code` (an error, or a warning for W codes) at `span`.

        `help` takes one string or several."""
        helps = (help,) if isinstance(help, str) else help
        self.report(Diagnostic(code, message, span, label, helps, notes))

    def error_count(self) -> int:
        return sum(1 for d in self.items if d.severity is Severity.ERROR)

    def sorted(self) -> list[Diagnostic]:
        """Errors and warnings in source order (files in order of first appearance)."""
        order: dict[str, int] = {}
        for d in self.items:
            if d.span:
                order.setdefault(d.span.file, len(order))

        def key(d: Diagnostic) -> tuple[object, ...]:
            if d.span is None:
                return (-1, 0, 0, d.code)
            return (order[d.span.file], d.span.line, d.span.column, d.code)

        return sorted(self.items, key=key)


def did_you_mean(candidates: list[str]) -> tuple[str, ...]:
    """The help line for near names, or nothing when there are none."""
    if not candidates:
        return ()
    names = " or ".join(f"`{c}`" for c in candidates)
    return (f"did you mean {names}?",)


def render(diagnostic: Diagnostic, sources: SourceMap) -> str:
    """Format one diagnostic the way rustc does: header, location, source line, carets, help."""
    header = (
        f"{diagnostic.severity.value}[{diagnostic.code}]: {shorten_long_words(diagnostic.message)}"
    )
    lines = [header]
    span = diagnostic.span
    if span is None:
        lines.extend(f"  = help: {shorten_long_words(h)}" for h in diagnostic.help)
        lines.extend(f"  = note: {shorten_long_words(n.message)}" for n in diagnostic.notes)
        return "\n".join(lines)
    gutter = " " * len(str(span.line))
    lines.append(f"{gutter}--> {span}")
    source = sources.get(span.file)
    if source is not None and source.printable:
        shown, carets = _shown_line(source.line(span.line), span)
        lines.append(f"{gutter} |")
        lines.append(f"{span.line} | {shown}")
        lines.append(f"{gutter} | {carets} {diagnostic.label}".rstrip())
    if diagnostic.help or diagnostic.notes:
        lines.append(f"{gutter} |")
    lines.extend(f"{gutter} = help: {shorten_long_words(h)}" for h in diagnostic.help)
    for note in diagnostic.notes:
        where = f" (at {note.span})" if note.span else ""
        lines.append(f"{gutter} = note: {shorten_long_words(note.message)}{where}")
    return "\n".join(lines)


# A source line wider than this many columns is shown as a window of them around the span,
# `...` marking what is cut (as rustc does): a one-line policy of megabytes, generated or
# hostile, would otherwise be printed whole, for every error on it.
SHOWN_COLUMNS = 100
# How many of the window's columns come before the span, where the line has them.
LEAD_COLUMNS = 20


_LONG_WORD = re.compile(rf"\S{{{SHOWN_COLUMNS + 1},}}")


def shorten_long_words(message: str) -> str:
    """`message` with each word (a name or path it quotes) wider than SHOWN_COLUMNS cut to
    its two ends around `...`."""
    half = SHOWN_COLUMNS // 2
    return _LONG_WORD.sub(lambda m: m[0][:half] + "..." + m[0][-half:], message)


def _shown_line(text: str, span: Span) -> tuple[str, str]:
    """The source line as shown (tabs expanded, a window of a long one) and its carets:
    spaces up to the span's first column, then `^` to its end (or the line's end)."""
    first = max(span.column - 1, 0)
    end = span.end_column - 1 if span.end_line == span.line else len(text)
    end = max(end, first + 1)
    shown = text.expandtabs(4)
    start = len(text[:first].expandtabs(4))
    width = max(len(text[:end].expandtabs(4)) - start, 1)
    if len(shown) <= SHOWN_COLUMNS:
        return shown, " " * start + "^" * width
    left = max(0, min(start - LEAD_COLUMNS, len(shown) - SHOWN_COLUMNS))
    right = left + SHOWN_COLUMNS
    head = "..." if left else ""
    tail = "..." if right < len(shown) else ""
    width = max(min(width, right - start), 1)
    return head + shown[left:right] + tail, " " * (len(head) + start - left) + "^" * width


def render_all(diagnostics: Diagnostics, sources: SourceMap) -> str:
    """Every diagnostic, blank-line separated, then a summary line like rustc's."""
    items = diagnostics.sorted()
    blocks = [render(d, sources) for d in items]
    errors = diagnostics.error_count()
    warnings = len(items) - errors
    if errors:
        noun = "error" if errors == 1 else "errors"
        blocks.append(f"error: could not compile the policy due to {errors} previous {noun}")
    elif warnings:
        noun = "warning" if warnings == 1 else "warnings"
        blocks.append(f"warning: {warnings} {noun} emitted")
    return "\n\n".join(blocks) + ("\n" if blocks else "")
