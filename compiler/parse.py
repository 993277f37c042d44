"""Pass 1, parse: policy text to AST.

Input: a `SourceFile`.  Output: a `Policy` AST whose nodes all carry spans, or diagnostics.
The grammar lives in grammar/policy.lark; this module builds our AST as lark's parser reduces
each rule, and turns lark's errors into our error codes.  A syntax error stops the parse of
that file (the first one is the one worth reading: later ones are usually its echoes).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import cache
from importlib import resources
from typing import Any, cast

from lark import Lark, Token, Transformer
from lark.common import LexerConf
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken
from lark.lexer import Lexer

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
def _builder() -> _AstBuilder:
    """The AST builder both parsers call at each reduction (lark's inline transformer: no
    parse tree is built and walked again)."""
    return _AstBuilder()


@cache
def _parser(lexer: str | type[Lexer]) -> Lark:
    """The grammar's parser with `lexer`: _FastLexer for every policy, lark's own
    ("contextual") for the errors reported (built only when one is).  Every token is kept,
    so that each node's span runs from its first token to its last, brackets included."""
    grammar = resources.files("bpfbox.grammar").joinpath("policy.lark").read_text()
    return Lark(
        grammar,
        parser="lalr",
        lexer=lexer,
        keep_all_tokens=True,
        maybe_placeholders=False,
        transformer=_builder(),
    )


class _NotLexed(Exception):
    """Text _FastLexer has no token for: lark's own lexer says what is wrong with it."""


class _FastLexer(Lexer):
    """The grammar's terminals matched as one regular expression, and tokens made with no
    more work than their positions: over twice as fast as lark's lexers, whose time was
    most of a large policy's parse (81,000 tokens at 10,000 rules).

    The terminals and their order are lark's own (priority, then longest pattern first, as
    its lexers try them), but for keywords: a terminal string that a name pattern also
    matches (`in`).  lark's contextual lexer makes a keyword only where the parser accepts
    one; here a name spelling a keyword is the keyword, which is the same wherever the
    policy is valid (`in` is no name of the language), and elsewhere an error either way.
    Whatever this lexer or the parser after it refuses is parsed again by lark's own lexer
    and parser (parse_source), so its messages are lark's: this lexer changes how fast a
    policy parses, never what is reported."""

    def __init__(self, conf: LexerConf) -> None:
        order = sorted(
            conf.terminals,
            key=lambda t: (-t.priority, -t.pattern.max_width, -len(t.pattern.value), t.name),
        )
        names = [t for t in order if t.pattern.type == "re"]
        self.keywords = {
            t.pattern.value: t.name
            for t in order
            if t.pattern.type == "str"
            and any(re.fullmatch(n.pattern.to_regexp(), t.pattern.value) for n in names)
        }
        self.pattern = re.compile(
            "|".join(
                f"(?P<{t.name}>{t.pattern.to_regexp()})"
                for t in order
                if t.pattern.value not in self.keywords
            ),
            conf.g_regex_flags,
        )
        self.ignore = frozenset(conf.ignore)

    def lex(self, text: str) -> Iterator[Token]:  # type: ignore[override]  # lark's interface 0
        match, ignore, keywords = self.pattern.match, self.ignore, self.keywords
        position, line, line_start, end_of_text = 0, 1, 0, len(text)
        while position < end_of_text:
            found = match(text, position)
            if found is None:
                raise _NotLexed(position)
            kind, end = found.lastgroup, found.end()
            assert kind is not None  # every alternative is a named group
            value = found.group()
            if kind in ignore:
                newlines = value.count("\n")
                if newlines:
                    line += newlines
                    line_start = position + value.rindex("\n") + 1
            else:  # no token but an ignored one spans lines (a string ends on its line)
                column = position - line_start + 1
                yield Token(
                    keywords.get(value, kind),
                    value,
                    position,
                    line,
                    column,
                    line,
                    column + end - position,
                    end,
                )
            position = end


def parse_source(source: SourceFile, diagnostics: Diagnostics) -> ast.Policy | None:
    """Parse one file; report what is wrong with it and return None when it cannot be parsed."""
    if not _is_text(source, diagnostics):
        return None
    builder = _builder()
    builder.begin(source.name)
    try:
        parsed = _parser(_FastLexer).parse(source.text)
    except (_NotLexed, UnexpectedInput):
        builder.begin(source.name)  # what the failed parse built is dropped
        try:
            parsed = _parser("contextual").parse(source.text)  # the refusal, told by lark
        except UnexpectedInput as error:
            _report_syntax_error(error, source, diagnostics)
            return None
    items = cast(tuple[ast.Item, ...], parsed)  # what start() returns
    too_deep = _first_block_too_deep(items)
    if too_deep is not None:
        diagnostics.add(
            "E0009",
            f"blocks nest more than {MAX_NESTING} deep",
            too_deep.span.start(),
            label="this block is too deep",
            help="flatten the policy: a rule in nested blocks can be written in one block",
        )
        return None
    for problem in builder.diagnostics.items:  # reported once the whole file has parsed
        diagnostics.report(problem)
    policy = ast.Policy(source.name, items, Span(source.name, 1, 1, *_end(source)))
    if not items and not diagnostics.error_count():
        diagnostics.add(
            "E0007",
            "the policy file has no rules and no profile",
            policy.span.start(),
            help='a policy starts with `#![profile "/path/to/program"]`',
        )
    return policy


def _first_block_too_deep(items: tuple[ast.Item, ...]) -> ast.Block | None:
    """The first block nested deeper than MAX_NESTING, found without recursion (later passes
    recurse, once per level, and must stay far from Python's limit)."""
    pending = [(item, 0) for item in reversed(items)]
    while pending:
        node, depth = pending.pop()
        if isinstance(node, ast.Directed):
            pending.append((node.body, depth))
        elif isinstance(node, ast.Block):
            if depth + 1 > MAX_NESTING:
                return node
            pending.extend((child, depth + 1) for child in reversed(node.items))
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
        for token in _parser("contextual").lex(source.text):
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


class _AstBuilder(Transformer[Token, Any]):
    """Builds the AST bottom-up as the parser reduces each grammar rule, decoding string
    escapes on the way.

    Each method gets every token and node of one rule, in the grammar's order
    (grammar/policy.lark), hence `Any`; the node's span runs from the first to the last.
    `begin` readies it for the next file.
    """

    def __init__(self) -> None:
        super().__init__()
        self.begin("")

    def begin(self, file: str) -> None:
        self.file = file
        #: Bad escapes, reported only if the whole file parses (as for other passes' errors).
        self.diagnostics = Diagnostics()

    def start(self, children: list[Any]) -> tuple[ast.Item, ...]:
        return tuple(children)

    def file_attribute(self, children: list[Any]) -> ast.FileAttribute:
        _, name, *args, _ = children
        return ast.FileAttribute(self._name(name), args[0] if args else None, self._span(children))

    def directive(self, children: list[Any]) -> ast.Directive:
        _, name, *args, _ = children
        return ast.Directive(self._name(name), args[0] if args else None, self._span(children))

    def attribute_args(self, children: list[Token]) -> ast.AttributeArgs:
        value = self._string(children[0])
        library = self._string(children[2]) if len(children) == 3 else None
        return ast.AttributeArgs(value, library)

    def directed(self, children: list[Any]) -> ast.Directed:
        *directives, body = children
        return ast.Directed(tuple(directives), body, self._span(children))

    def block(self, children: list[Any]) -> ast.Block:
        items = tuple([c for c in children if not isinstance(c, Token)])
        return ast.Block(items, self._span(children))

    def rule(self, children: list[Any]) -> ast.Rule:
        kind, _, *args, _ = children
        arguments = tuple([a for a in args if not isinstance(a, Token)])  # drop the commas
        return ast.Rule(self._name(kind), arguments, self._span(children))

    def string_argument(self, children: list[Token]) -> ast.String:
        return self._string(children[0])

    def flags_argument(self, children: list[Token]) -> ast.Flags:
        names = tuple([self._name(t) for t in children if t.type == "NAME"])
        return ast.Flags(names, self._span(children))

    def _span(self, children: list[Any]) -> Span:
        # Read off the token or node at either end: no span is made for a token on the way
        # (a large policy has hundreds of thousands).  A token's position is typed Optional,
        # for tokens made by hand; both lexers set all of it (_token_span asserts so).
        first, last = children[0], children[-1]
        start: Any = first if isinstance(first, Token) else first.span
        end: Any = last if isinstance(last, Token) else last.span
        return Span(self.file, start.line, start.column, end.end_line, end.end_column)

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
