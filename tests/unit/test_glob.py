"""The glob compiler against an independent oracle: the same globs translated to `re`."""

from __future__ import annotations

import re
from typing import cast

import pytest
from bpfbox.compiler import glob
from hypothesis import given, settings
from hypothesis import strategies as st


def _regex(pattern: str) -> str:
    """Translate a glob to a Python regex by the documented rules (no DFA involved)."""
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**/", i) and i > 0 and pattern[i - 1] == "/":
            out.append("(?:.*/)?")  # `/**/` also matches a single `/`
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif c == "*":
            out.append("[^/]*")
            i += 1
        elif c == "?":
            out.append("[^/]")
            i += 1
        elif c == "[":
            end = pattern.index("]", i + 2)
            body = pattern[i + 1 : end]
            negate = body[:1] in ("!", "^")
            body = body[1:] if negate else body
            out.append(
                f"(?!/)[{'^' if negate else ''}{re.escape(body).replace(chr(92) + '-', '-')}]"
            )
            i = end + 1
        elif c == "{":
            depth, j = 0, i
            while True:
                depth += pattern[j] == "{"
                depth -= pattern[j] == "}"
                if depth == 0:
                    break
                j += 1
            options = _split_top(pattern[i + 1 : j])
            out.append("(?:" + "|".join(_regex(o) for o in options) + ")")
            i = j + 1
        else:
            out.append(re.escape(c))
            i += 1
    return "".join(out)


def _split_top(body: str) -> list[str]:
    parts, depth, start = [], 0, 0
    for index, c in enumerate(body):
        depth += c == "{"
        depth -= c == "}"
        if c == "," and depth == 0:
            parts.append(body[start:index])
            start = index + 1
    parts.append(body[start:])
    return parts


CASES = [
    ("/etc/passwd", "/etc/passwd", True),
    ("/etc/passwd", "/etc/passwdx", False),
    ("/etc/*.conf", "/etc/a.conf", True),
    ("/etc/*.conf", "/etc/x/a.conf", False),
    ("/usr/lib/**", "/usr/lib/x/y/z", True),
    ("/usr/lib/**", "/usr/lib", False),
    ("/a/**/b", "/a/b", True),
    ("/a/**/b", "/a/x/y/b", True),
    ("/a/**/b", "/a/xb", False),
    ("/**/**/a", "/a", True),
    ("/**/**/a", "/x/y/a", True),
    ("/x/{a,b*}/[!c]?", "/x/bq/dz", True),
    ("/x/{a,b*}/[!c]?", "/x/bq/cz", False),
    ("/dev/{tty,pts/[0-9]*}", "/dev/pts/12", True),
    ("/dev/{tty,pts/[0-9]*}", "/dev/ptmx", False),
    ("/f\\*", "/f*", True),
    ("/f\\*", "/fx", False),
    ("/[a-c]", "/b", True),
    ("/[a-c]", "//", False),
]


@pytest.mark.parametrize(("pattern", "path", "expected"), CASES)
def test_documented_cases(pattern: str, path: str, expected: bool) -> None:
    assert bool(glob.compile_globs([pattern]).match(path.encode())) is expected


def test_several_globs_report_exactly_the_matching_ones() -> None:
    globs = ["/etc/**", "/etc/passwd", "/etc/*wd", "/usr/**"]
    dfa = glob.compile_globs(globs)
    assert dfa.match(b"/etc/passwd") == {0, 1, 2}
    assert dfa.match(b"/etc/x/passwd") == {0}
    assert dfa.match(b"/usr/bin/cat") == {3}
    assert dfa.match(b"/var") == frozenset()


def test_no_glob_matches_nothing_and_has_a_dead_and_a_start_state() -> None:
    dfa = glob.compile_globs([])
    assert len(dfa.transitions) == 2
    assert dfa.match(b"/anything") == frozenset()


#: The oracle's alphabets (tests/unit/test_dfa_host.py draws from them too).
GLOB_COMPONENTS = ("a", "b", "ab", "*", "?", "**", "[ab]", "[!a]", "{a,b}", "{ab,*}", "x")
PATH_COMPONENTS = ("a", "b", "ab", "ba", "x", "abx", "bb", "")
COMPONENT = st.sampled_from(GLOB_COMPONENTS)
PATH_COMPONENT = st.sampled_from(PATH_COMPONENTS)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(
    st.lists(COMPONENT, min_size=1, max_size=4).map(lambda parts: "/" + "/".join(parts)),
    st.lists(PATH_COMPONENT, min_size=1, max_size=5).map(lambda parts: "/" + "/".join(parts)),
)
def test_dfa_agrees_with_the_regex_oracle(pattern: str, path: str) -> None:
    try:
        glob.parse(pattern)
    except glob.GlobError:
        return
    expected = re.fullmatch(_regex(pattern), path, re.DOTALL) is not None
    assert bool(glob.compile_globs([pattern]).match(path.encode())) is expected


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("/a[", "unclosed `[`"),
        ("/a{b", "unclosed `{`"),
        ("/a}", "unmatched `}`"),
        ("/a\\", "escapes nothing"),
        ("/[z-a]", "backwards"),
        ("/***", "ambiguous"),
        ("/[/]", "matches nothing"),
    ],
)
def test_malformed_globs_are_refused_with_a_reason(pattern: str, message: str) -> None:
    with pytest.raises(glob.GlobError, match=re.escape(message)):
        glob.parse(pattern)


@pytest.mark.parametrize("pattern", ["/a/../b", "/a/./b", "/a//b", "/a/", "/a\0"])
def test_globs_that_can_never_match_a_kernel_path_are_reported(pattern: str) -> None:
    assert glob.path_problem(pattern) is not None


@settings(max_examples=100, deadline=None, derandomize=True)
@given(
    st.lists(
        st.lists(COMPONENT, min_size=1, max_size=4).map(lambda parts: "/" + "/".join(parts)),
        min_size=1,
        max_size=12,
        unique=True,
    )
)
def test_packed_transitions_are_the_transitions(patterns: list[str]) -> None:
    """What the kernel reads (a stored row and one transition of a state's own) is every
    transition of the DFA, and each state refers to a stored row."""
    try:
        dfa = glob.compile_globs(patterns)
    except glob.GlobError:
        return
    packed = dfa.packed
    assert packed.rows[0] == (0,) * dfa.class_count
    assert len(set(packed.rows)) == len(packed.rows)
    for state, row in enumerate(dfa.transitions):
        assert [packed.next(state, c) for c in range(1, dfa.class_count)] == list(row[1:])


def _constructions(patterns: list[str]) -> tuple[glob._Subsets, glob._GlobSubsets]:
    """The plain subset construction of the patterns' NFA, and compile_globs' own."""
    nfa, owners = glob._nfa(patterns)
    classes = glob._byte_classes(nfa)
    covered, count = glob._covered(nfa, classes), max(classes) + 1
    plain = glob._Subsets(nfa.edges, nfa.epsilon, covered, count, glob._Budget(10**9))
    short = glob._GlobSubsets(nfa, owners, covered, count, glob._Budget(10**9))
    for construction, alone in ((plain, True), (short, False)):
        construction.state(glob._closure(nfa.epsilon, (0,)), alone=alone)
        construction.run()
    return plain, short


def _by_sets(construction: glob._Subsets) -> dict[frozenset[int], tuple[frozenset[int], ...]]:
    """Each DFA state's NFA states, and those of the states its row leads to."""
    sets = construction.sets
    return {sets[s]: tuple(sets[t] for t in row or ()) for s, row in enumerate(construction.rows)}


#: Globs whose tails recur after different prefixes, and literal paths beside them.
TAILS = ("", "/*", "/**", "/**/*.c", "/x", "/{a,b}?", "/a/[ab]*")
SHARED_TAILS = st.lists(
    st.tuples(st.sampled_from(("a", "b", "ab", "ba", "x")), st.sampled_from(TAILS)).map(
        lambda parts: "/" + parts[0] + parts[1]
    ),
    min_size=1,
    max_size=12,
    unique=True,
)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(SHARED_TAILS)
def test_the_short_cuts_find_what_the_subset_construction_finds(patterns: list[str]) -> None:
    """Literal paths' chains and copied tails (glob._GlobSubsets) are the same states, with
    the same transitions, as the plain subset construction finds one state at a time."""
    plain, short = _constructions(patterns)
    assert _by_sets(short) == _by_sets(plain)
    assert len(short.sets) == len(plain.sets)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(SHARED_TAILS)
def test_the_short_cuts_pack_their_states_as_the_rows_would_be_packed(
    patterns: list[str],
) -> None:
    """The packing the short cuts record as they make states (a literal path's, a copied
    tail's) is the packing _pack works out from the rows alone."""
    _, short = _constructions(patterns)
    rows = cast(list[tuple[int, ...]], short.rows)
    count = len(rows[0])
    assert glob._pack(rows, count, short.packing) == glob._pack(rows, count, {})


def test_a_tie_for_the_most_common_target_is_left_for_the_copy_to_work_out() -> None:
    """Which of two targets max() takes as a row's most common one depends on their
    numbers, which a copy of a tail changes: such a row's packing is not carried over."""
    rows = [(0, 0, 0, 0), (2, 2, 3, 3), (1, 1, 1, 3), (0, 0, 0, 0)]
    assert glob._renumberable(rows) == [(0, 0), None, (2, 0), (0, 0)]


def test_a_recurring_tail_is_worked_out_once_and_copied() -> None:
    patterns = [f"/srv/d{i}/**/*.conf" for i in range(10, 20)] + ["/srv/d20/file.txt"]
    plain, short = _constructions(patterns)
    assert len(short.tails) == 1
    assert len(short.rests) == 1  # and its NFA links read once
    assert _by_sets(short) == _by_sets(plain)
    dfa = glob.compile_globs(patterns)
    assert dfa.match(b"/srv/d13/x/y.conf") == {3}
    assert dfa.match(b"/srv/d20/file.txt") == {10}
    assert dfa.match(b"/srv/d20/x.conf") == frozenset()


def test_a_literal_path_stores_no_row_of_its_own() -> None:
    """A state on a literal path is the dead row and one transition: 10,000 rules of the
    benchmark's mix store some 6,000 rows for 115,000 states, where a row per state would
    make the tables ten times larger."""
    dfa = glob.compile_globs(["/etc/passwd", "/srv/**/*.conf"])
    chain = [_state_after(dfa, b"/etc/pass"[:n]) for n in range(2, 10)]
    assert all(dfa.packed.row_of[state] == 0 for state in chain)
    assert len(dfa.packed.rows) < len(dfa.transitions) // 2


def test_too_many_states_is_an_error_not_a_huge_table() -> None:
    patterns = [f"/{'?' * n}*{chr(97 + n % 26)}*{chr(98 + n % 24)}**z" for n in range(60)]
    with pytest.raises(glob.TooComplexError):
        glob.compile_globs(patterns)


def _state_after(dfa: glob.Dfa, path: bytes) -> int:
    state = 1
    for byte in path:
        state = dfa.transitions[state][dfa.classes[byte]]
    return state


def test_guard_states_name_the_first_glob_at_or_beneath_a_path() -> None:
    """What rename/link consult: (globs matching the path, globs matching it or beneath)."""
    globs = ["/data/tree/secret{,/**}", "/data/**/.ssh", "/data/tree/**"]
    dfa = glob.compile_globs(globs)
    guards = glob.guard_states(dfa, {0: 7, 1: 9})  # glob 2 is an allow rule's: no weight
    assert guards[_state_after(dfa, b"/data/tree/secret")] == (7, 7)
    assert guards[_state_after(dfa, b"/data/tree/secret/file")] == (7, 7)
    assert guards[_state_after(dfa, b"/data/tree")] == (0, 7)
    assert guards[_state_after(dfa, b"/data")] == (0, 7)
    assert guards[_state_after(dfa, b"/data/other")] == (0, 9)
    assert guards[_state_after(dfa, b"/data/x/.ssh")] == (9, 9)
    # A sibling whose name starts like the denied one is not above it.
    assert guards[_state_after(dfa, b"/data/tree/secretive")] == (0, 9)
    assert guards[_state_after(dfa, b"/etc")] == (0, 0)
    assert guards[0] == (0, 0)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(
    st.lists(COMPONENT, min_size=1, max_size=3).map(lambda parts: "/" + "/".join(parts)),
    st.lists(PATH_COMPONENT, min_size=1, max_size=3).map(lambda parts: "/" + "/".join(parts)),
    st.lists(PATH_COMPONENT, min_size=1, max_size=3).map(lambda parts: "/" + "/".join(parts)),
)
def test_guard_states_agree_with_matching_the_extensions(pattern: str, path: str, tail: str):
    """Whenever the glob matches path + tail, the path's state says a glob lies beneath."""
    try:
        dfa = glob.compile_globs([pattern])
    except glob.GlobError:
        return
    itself, beneath = glob.guard_states(dfa, {0: 1})[_state_after(dfa, path.encode())]
    assert itself == (1 if dfa.match(path.encode()) else 0)
    if dfa.match((path + tail).encode()):
        assert beneath == 1
