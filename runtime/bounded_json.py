"""JSON parsing with bounds, for documents read from files someone may have tampered with.

`json.loads` recurses once per nesting level (100,000 nested `[` end in RecursionError) and
turns any run of digits into an int (5,000 digits end in ValueError, more in a long wait), so
a hostile document is checked against size, depth and number-length bounds first, and every
failure is one exception type, BoundedJsonError, with a message saying what is wrong.
"""

from __future__ import annotations

import json
import re
from typing import Any

#: A JSON string (with its escapes), and the brackets that nest.
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKET = re.compile(r"[\[\]{}]")
#: More digits than any 64-bit integer has.
MAX_NUMBER_DIGITS = 20


class BoundedJsonError(ValueError):
    """The document is not JSON, or exceeds a bound."""


def loads(text: str, *, max_chars: int, max_depth: int) -> Any:
    """Parse `text` as JSON if it has at most `max_chars` characters, nests at most
    `max_depth` arrays and objects deep, and has no number longer than MAX_NUMBER_DIGITS."""
    if len(text) > max_chars:
        raise BoundedJsonError(f"it is {len(text)} characters long, more than {max_chars}")
    depth = deepest = 0
    for bracket in _BRACKET.findall(_STRING.sub('""', text)):
        depth += 1 if bracket in "[{" else -1
        deepest = max(deepest, depth)
    if deepest > max_depth:
        raise BoundedJsonError(f"it nests {deepest} levels deep, more than {max_depth}")
    try:
        return json.loads(text, parse_int=_integer, parse_float=_real)
    except (json.JSONDecodeError, RecursionError) as error:
        raise BoundedJsonError(f"it is not valid JSON: {error}") from None


def _integer(digits: str) -> int:
    if len(digits.lstrip("-")) > MAX_NUMBER_DIGITS:
        raise BoundedJsonError(f"a number has {len(digits)} digits, more than {MAX_NUMBER_DIGITS}")
    return int(digits)


def _real(text: str) -> float:
    if len(text) > 2 * MAX_NUMBER_DIGITS:
        raise BoundedJsonError(f"a number is {len(text)} characters long")
    return float(text)
