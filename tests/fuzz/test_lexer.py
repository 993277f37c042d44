"""The parser's fast lexer (compiler/parse.py, _FastLexer) against lark's own: wherever the
fast one's parse succeeds, lark's gives the same AST and the same diagnostics; where it
fails, parse_source asks lark, so the only cost of a refusal is time, and the only inputs
it may refuse that lark accepts are those with `in` as a name."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import pytest
from bpfbox.compiler import parse
from hypothesis import HealthCheck, given, seed, settings
from lark import Lark
from lark.exceptions import UnexpectedInput

from .policies import corpus, policies

#: `in` as a word of its own: the keyword, which the fast lexer makes of it everywhere.
_IN_WORD = re.compile(r"(?<![A-Za-z0-9_])in(?![A-Za-z0-9_])")
_FAST, _LARK = parse._parser(parse._FastLexer), parse._parser("contextual")


def _outcome(parser: Lark, text: str) -> tuple[list[Any], tuple[Any, ...]] | None:
    """What `parser` builds of `text` (flattened) and the builder's diagnostics; None if it
    refuses it."""
    builder = parse._builder()
    builder.begin("policy.bpfbox")
    try:
        items = parser.parse(text)
    except (parse._NotLexed, UnexpectedInput):
        return None
    return _flat(items), tuple(builder.diagnostics.items)


def _flat(tree: Any) -> list[Any]:
    """The AST's nodes, fields and values in order, without recursion: blocks may nest far
    deeper than the parse pass later accepts, and dataclasses compare recursively."""
    flat: list[Any] = []
    pending = [tree]
    while pending:
        item = pending.pop()
        if isinstance(item, tuple):  # a tuple of nodes, or a span (a named tuple)
            flat.append((type(item).__name__, len(item)))
            pending.extend(reversed(item))
        elif dataclasses.is_dataclass(item):
            flat.append(type(item).__name__)
            pending.extend(reversed([getattr(item, f.name) for f in dataclasses.fields(item)]))
        else:
            flat.append(item)
    return flat


def _agree(text: str) -> bool:
    """Whether the fast parser took `text` (asserting what both parsers made of it)."""
    mine, theirs = _outcome(_FAST, text), _outcome(_LARK, text)
    if mine is not None:
        assert mine == theirs
        return True
    assert theirs is None or _IN_WORD.search(text), "the fast lexer refused what lark parses"
    return False


@pytest.mark.parametrize("text", corpus(), ids=range(len(corpus())))
def test_every_policy_lark_parses_in_the_corpus_parses_fast_and_alike(text: str) -> None:
    parsed = _outcome(_LARK, text) is not None
    assert _agree(text) == parsed


def test_the_keyword_in_parses_fast() -> None:
    assert _agree('#[func "check" in "/usr/lib/libfixture.so"]\nfs("/x", read)\n')
    assert _agree('#[func "check"in"/lib"]\nfs("/x", read)\n')


def test_in_as_a_name_falls_back_to_lark() -> None:
    """A name spelt `in` (no kind or flag is) is a keyword to the fast lexer, so the fast
    parse fails and lark, whose lexer looks at the parser's state, parses it."""
    text = '#![in "x"]\n'
    assert _outcome(_FAST, text) is None
    assert _outcome(_LARK, text) is not None


def test_lines_and_columns_count_across_comments_and_crlf() -> None:
    text = '/* one\n two */ fs("/a",\r\n  read) // x\n\t#[allow] fs("/b", write)\n'
    assert _agree(text)


@seed(7)
@settings(max_examples=300, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(text=policies())
def test_the_fast_parser_agrees_with_lark_on_any_text(text: str) -> None:
    _agree(text)
