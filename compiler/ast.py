"""The policy AST: what the parser builds and the checks, include expansion and lowering read.

Every node carries the span of the source it came from, so that any later pass can point at it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from .source import Span


@dataclass(frozen=True)
class Name:
    """A bare word in the source: a flag, a family, `self`, `any`..."""

    text: str
    span: Span


@dataclass(frozen=True)
class String:
    """A quoted string, with escapes already decoded."""

    value: str
    span: Span


@dataclass(frozen=True)
class Flags:
    """`a|b|c`: one or more names joined with `|`."""

    names: tuple[Name, ...]
    span: Span


Argument = String | Flags


@dataclass(frozen=True)
class AttributeArgs:
    """The arguments of an attribute: `"NAME"` or `"NAME" in "LIBRARY"`."""

    value: String
    library: String | None


@dataclass(frozen=True)
class FileAttribute:
    """`#![name args]`: a property of the whole file (profile, include)."""

    name: Name
    args: AttributeArgs | None
    span: Span


@dataclass(frozen=True)
class Directive:
    """`#[name args]`: an action or context applied to the block or rule that follows."""

    name: Name
    args: AttributeArgs | None
    span: Span


@dataclass(frozen=True)
class Rule:
    """`kind(arg, ...)`: access to one kind of object."""

    kind: Name
    args: tuple[Argument, ...]
    span: Span


@dataclass(frozen=True)
class Block:
    """`{ ... }`: a group of items sharing the directives in front of it."""

    items: tuple[Item, ...]
    span: Span


@dataclass(frozen=True)
class Directed:
    """Directives followed by the block or rule they apply to."""

    directives: tuple[Directive, ...]
    body: Block | Rule
    span: Span


@dataclass(frozen=True)
class Included:
    """A fragment spliced in by include expansion where its `#![include]` stood."""

    name: str
    items: tuple[Item, ...]
    span: Span  # the include attribute


Item = FileAttribute | Directed | Block | Rule | Included


@dataclass(frozen=True)
class Policy:
    """One parsed file: its top-level items in order."""

    file: str
    items: tuple[Item, ...]
    span: Span


def attribute_args(attribute: FileAttribute | Directive) -> AttributeArgs:
    """The arguments of an attribute that takes some (`profile`, `include`, `func`, `kfunc`),
    for the passes after the checks, which report every such attribute written without them."""
    args = attribute.args
    assert args is not None, f"`{attribute.name.text}` without arguments passed the checks"
    return args


#: The directive lists of every `Directed` around a rule, from outermost to innermost.
Chain = tuple[tuple[Directive, ...], ...]


def directed_rules(items: tuple[Item, ...], outer: Chain = ()) -> Iterator[tuple[Rule, Chain]]:
    """Yield `(rule, chain)` for every rule, where `chain` holds the directive lists of every
    enclosing `Directed` from outermost to innermost (include fragments are transparent)."""
    for item in items:
        if isinstance(item, Rule):
            yield item, outer
        elif isinstance(item, (Block, Included)):
            yield from directed_rules(item.items, outer)
        elif isinstance(item, Directed):
            chain = (*outer, item.directives)
            body = item.body
            yield from directed_rules((body,), chain)


def file_attributes(items: tuple[Item, ...], name: str) -> list[FileAttribute]:
    """Every `#![name ...]` at the top level of the main file, in order."""
    return [i for i in items if isinstance(i, FileAttribute) and i.name.text == name]


def format_ast(policy: Policy) -> str:
    """The AST as an indented outline with each node's location (`bpfboxc --emit ast`)."""
    lines = [f"Policy {policy.file}"]
    _format_items(policy.items, 1, lines)
    return "\n".join(lines) + "\n"


def _format_items(items: tuple[Item, ...], depth: int, lines: list[str]) -> None:
    pad = "  " * depth
    for item in items:
        where = f"@{item.span.line}:{item.span.column}"
        if isinstance(item, FileAttribute):
            lines.append(f"{pad}FileAttribute {item.name.text}{_format_args(item.args)} {where}")
        elif isinstance(item, Included):
            lines.append(f"{pad}Included {item.name} {where}")
            _format_items(item.items, depth + 1, lines)
        elif isinstance(item, Directed):
            directives = " ".join(
                f"#[{d.name.text}{_format_args(d.args)}]" for d in item.directives
            )
            lines.append(f"{pad}Directed {directives} {where}")
            _format_items((item.body,), depth + 1, lines)
        elif isinstance(item, Block):
            lines.append(f"{pad}Block {where}")
            _format_items(item.items, depth + 1, lines)
        else:
            args = ", ".join(
                repr(a.value) if isinstance(a, String) else "|".join(n.text for n in a.names)
                for a in item.args
            )
            lines.append(f"{pad}Rule {item.kind.text}({args}) {where}")


def _format_args(args: AttributeArgs | None) -> str:
    if args is None:
        return ""
    library = f" in {args.library.value!r}" if args.library else ""
    return f" {args.value.value!r}{library}"
