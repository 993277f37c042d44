"""Pass 1, parse: policy text to AST.

Input: a `SourceFile`.  Output: a `Policy` AST whose nodes all carry spans, or diagnostics.
The grammar lives in grammar/policy.lark; this module turns lark's trees and errors into our
AST and our error codes.  A syntax error stops the parse of that file (the first one is the
one worth reading: later ones are usually its echoes).
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources
from typing import Any

from lark import Lark, Token, Transformer, Tree, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken
from lark.tree import Meta

from . import ast, files
from .diagnostics import Diagnostics
from .source import SourceFile, Span

#: How terminals read in "expected ..." help lines.
_TERMINAL_NAMES = {
    "NAME": "a name",
    "STRING": "a string",
    "LBRACE": "`{`",
    "RBRACE": "`}`",
    "LPAR": "`(`",
    "RPAR": "`)`",
    "COMMA": "`,`",
    "VBAR": "`|`",
    "RSQB": "`]`",
    "IN": "`in`",
    "__ANON_0": "`#![`",
    "__ANON_1": "`#[`",
    "$END": "the end of the file",
}

#: How deep blocks may nest: far beyond any real policy, far below Python's recursion limit.
MAX_NESTING = 64

_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "0": "\0", "\\": "\\", '"': '"', "'": "'"}
_ESCAPE = re.compile(r"\\(x[0-9A-Fa-f]{2}|.)")


@cache
def _parser() -> Lark:
    grammar = resources.files("bpfbox.grammar").joinpath("policy.lark").read_text()
    return Lark(grammar, parser="lalr", propagate_positions=True, maybe_placeholders=False)


def parse_source(source: SourceFile, diagnostics: Diagnostics) -> ast.Policy | None:
    """Parse one file; report what is wrong with it and return None when it cannot be parsed."""
    if not _is_text(source, diagnostics):
        return None
    try:
        tree = _parser().parse(source.text)
    except UnexpectedInput as error:
        _report_syntax_error(error, source, diagnostics)
        return None
    too_deep = _first_block_too_deep(tree)
    if too_deep is not None:
        diagnostics.add(
            "E0009",
            f"blocks nest more than {MAX_NESTING} deep",
            _meta_span(source.name, too_deep.meta).start(),
            label="this block is too deep",
            help="flatten the policy: a rule in nested blocks can be written in one block",
        )
        return None
    builder = _AstBuilder(source.name, diagnostics)
    items = tuple(builder.transform(tree).children)
    policy = ast.Policy(source.name, items, Span(source.name, 1, 1, *_end(source)))
    if not items and not diagnostics.error_count():
        diagnostics.add(
            "E0007",
            "the policy file has no rules and no profile",
            policy.span.start(),
            help='a policy starts with `#![profile "/path/to/program"]`',
        )
    return policy


def _first_block_too_deep(tree: Tree[Token]) -> Tree[Token] | None:
    """The first block nested deeper than MAX_NESTING, found without recursion (the AST
    builder and later passes recurse, once per level, and must stay far from Python's limit)."""
    pending = [(tree, 0)]
    while pending:
        node, depth = pending.pop()
        if node.data == "block":
            depth += 1
            if depth > MAX_NESTING:
                return node
        pending.extend((c, depth) for c in reversed(node.children) if isinstance(c, Tree))
    return None


def _end(source: SourceFile) -> tuple[int, int]:
    end = source.end_span()
    return end.line, end.column


def _is_text(source: SourceFile, diagnostics: Diagnostics) -> bool:
    """Reject binary garbage and empty files before lark sees them."""
    start = Span(source.name, 1, 1, 1, 1)
    if source.oversized:
        diagnostics.add(
            "E0008",
            f"`{source.name}` is larger than the limit of "
            f"{files.describe_size(files.MAX_POLICY_BYTES)}",
            start,
            help="a policy this large is not a policy; check that the right file was given",
        )
        return False
    if "\0" in source.text or "\ufffd" in source.text:
        diagnostics.add(
            "E0006",
            f"`{source.name}` is not a text file",
            start,
            help="a policy is UTF-8 text; check that the right file was given",
        )
        return False
    if not source.text.strip():
        diagnostics.add(
            "E0007",
            f"`{source.name}` is empty",
            start,
            help='a policy starts with `#![profile "/path/to/program"]`',
        )
        return False
    return True


def _report_syntax_error(error: UnexpectedInput, source: SourceFile, diag: Diagnostics) -> None:
    if isinstance(error, UnexpectedCharacters):
        _report_bad_character(error, source, diag)
    elif isinstance(error, UnexpectedEOF) or (
        isinstance(error, UnexpectedToken) and error.token.type == "$END"
    ):
        _report_early_end(source, diag, getattr(error, "expected", set()))
    elif isinstance(error, UnexpectedToken):
        token = error.token
        span = _token_span(source.name, token)
        diag.add(
            "E0001",
            f"unexpected `{token.value}`",
            span,
            label="not expected here",
            help=_expected_help(error.expected),
        )
    else:  # pragma: no cover - lark has no other UnexpectedInput subclasses
        diag.add("E0001", "syntax error", Span(source.name, error.line, error.column, 0, 0))


def _report_bad_character(
    error: UnexpectedCharacters, source: SourceFile, diag: Diagnostics
) -> None:
    rest = source.text[error.pos_in_stream :]
    here = Span(source.name, error.line, error.column, error.line, error.column + 1)
    if rest[:1] in "\"'":
        diag.add(
            "E0002",
            "unterminated string",
            here,
            label="this string is never closed",
            help=f"close it with `{rest[0]}` on the same line",
        )
    elif rest.startswith("/*"):
        here = Span(source.name, error.line, error.column, error.line, error.column + 2)
        diag.add(
            "E0004",
            "unterminated comment",
            here,
            label="this comment is never closed",
            help="close it with `*/`",
        )
    else:
        diag.add(
            "E0001",
            f"unexpected character `{rest[:1]}`",
            here,
            label="not part of the language",
            help=_expected_help(error.allowed or set()),
        )


def _report_early_end(source: SourceFile, diag: Diagnostics, expected: set[str]) -> None:
    opening = _unclosed_brace(source)
    if opening is not None:
        diag.add(
            "E0003",
            "unclosed block",
            opening,
            label="this `{` is never closed",
            help="add the matching `}`",
        )
        return
    diag.add(
        "E0001",
        "unexpected end of file",
        source.end_span(),
        help=_expected_help(expected),
    )


def _unclosed_brace(source: SourceFile) -> Span | None:
    """The innermost `{` left open at the end of the file, found with the grammar's own lexer."""
    stack: list[Token] = []
    try:
        for token in _parser().lex(source.text):
            if token.type == "LBRACE":
                stack.append(token)
            elif token.type == "RBRACE" and stack:
                stack.pop()
    except UnexpectedInput:
        return None
    return _token_span(source.name, stack[-1]) if stack else None


def _expected_help(expected: set[str]) -> tuple[str, ...]:
    names = sorted({_TERMINAL_NAMES.get(t, f"`{t}`") for t in expected})
    if not names:
        return ()
    if len(names) == 1:
        return (f"expected {names[0]}",)
    return (f"expected one of {', '.join(names[:-1])} or {names[-1]}",)


def _token_span(file: str, token: Token) -> Span:
    # lark types a token's position Optional (for tokens made by hand); its lexer sets all.
    line, column, end_line, end_column = token.line, token.column, token.end_line, token.end_column
    assert line is not None and column is not None, f"token {token!r} has no position"
    assert end_line is not None and end_column is not None, f"token {token!r} has no end"
    return Span(file, line, column, end_line, end_column)


def _meta_span(file: str, meta: Meta) -> Span:
    return Span(file, meta.line, meta.column, meta.end_line, meta.end_column)


@v_args(meta=True)
class _AstBuilder(Transformer[Token, Any]):
    """lark tree to AST, decoding string escapes on the way.

    Each method gets the children of one grammar rule, already built bottom-up: tokens and
    AST nodes mixed as the grammar (grammar/policy.lark) orders them, hence `Any`.
    """

    def __init__(self, file: str, diagnostics: Diagnostics) -> None:
        super().__init__()
        self.file = file
        self.diagnostics = diagnostics

    def start(self, meta: Meta, items: list[Any]) -> Tree[Any]:
        return Tree("items", items)

    def file_attribute(self, meta: Meta, children: list[Any]) -> ast.FileAttribute:
        name, *args = children
        return ast.FileAttribute(self._name(name), args[0] if args else None, self._span(meta))

    def directive(self, meta: Meta, children: list[Any]) -> ast.Directive:
        name, *args = children
        return ast.Directive(self._name(name), args[0] if args else None, self._span(meta))

    def attribute_args(self, meta: Meta, children: list[Token]) -> ast.AttributeArgs:
        value = self._string(children[0])
        library = self._string(children[2]) if len(children) == 3 else None
        return ast.AttributeArgs(value, library)

    def directed(self, meta: Meta, children: list[Any]) -> ast.Directed:
        *directives, body = children
        return ast.Directed(tuple(directives), body, self._span(meta))

    def block(self, meta: Meta, children: list[Any]) -> ast.Block:
        items = tuple(c for c in children if not isinstance(c, Token))
        return ast.Block(items, self._span(meta))

    def rule(self, meta: Meta, children: list[Any]) -> ast.Rule:
        kind, *args = children
        return ast.Rule(self._name(kind), tuple(args), self._span(meta))

    def string_argument(self, meta: Meta, children: list[Token]) -> ast.String:
        return self._string(children[0])

    def flags_argument(self, meta: Meta, children: list[Token]) -> ast.Flags:
        return ast.Flags(tuple(self._name(t) for t in children), self._span(meta))

    def _span(self, meta: Meta) -> Span:
        return _meta_span(self.file, meta)

    def _name(self, token: Token) -> ast.Name:
        return ast.Name(str(token), _token_span(self.file, token))

    def _string(self, token: Token) -> ast.String:
        span = _token_span(self.file, token)
        return ast.String(self._unescape(str(token)[1:-1], span), span)

    def _unescape(self, body: str, span: Span) -> str:
        def replace(match: re.Match[str]) -> str:
            escape: str = match.group(1)
            if escape in _ESCAPES:
                return _ESCAPES[escape]
            if escape.startswith("x") and len(escape) == 3:
                return chr(int(escape[1:], 16))
            column = span.column + 1 + match.start()
            self.diagnostics.add(
                "E0005",
                f"unknown escape `\\{escape}` in a string",
                Span(span.file, span.line, column, span.line, column + 1 + len(escape)),
                help="the escapes are \\\\, \\\", \\', \\n, \\t, \\r, \\0 and \\xHH",
            )
            return escape

        return _ESCAPE.sub(replace, body)
