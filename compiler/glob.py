"""Path globs: syntax checking, and compilation of a set of globs into one byte-level DFA.

The generated program matches a path against every rule's glob in a single left-to-right
scan: the DFA's tables are emitted as constants, and each final state says which globs
matched (a bit set).  Building the automaton here, at compile time, keeps the in-kernel
matcher a tiny loop the verifier accepts easily, whatever the policy.

Glob syntax: `*` any run of characters within one path component, `**` any run including
`/` (`/**/` also matches a single `/`), `?` one character other than `/`, `[abc]`, `[a-z]`,
`[!abc]` one character of (or not of) a set (never `/`), `{a,b}` alternatives (may nest),
`\\c` the character c itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

#: Longest path the kernel side resolves (bytes, without the NUL).
PATH_MAX = 4095
#: The largest table the kernel takes in one piece: a BPF array map's value (the program's
#: constant tables are each such a map, a `.rodata.NAME` section) is at most
#: KMALLOC_MAX_SIZE, 4 MiB on x86-64 (Linux 6.1 to 6.12).
MAX_TABLE_BYTES = 1 << 22
#: The stored rows of the transition table (Packed) may span this many such maps (one branch
#: each in the scan step).
MAX_SHARDS = 16
#: More DFA states than this is refused: the per-state tables (the packed transitions and the
#: deny guard, 8 bytes a state; the accepting row, 4) must each fit one map.
MAX_STATES = MAX_TABLE_BYTES // 8
#: A state's own transition is `class << EXCEPTION_SHIFT | target` in one 32-bit word:
#: targets (state numbers, below MAX_STATES) take the bits below it, byte classes the 8 above.
EXCEPTION_SHIFT = 24
assert MAX_STATES <= 1 << EXCEPTION_SHIFT
#: More steps than this building the DFA, plus WORK_PER_GLOB for each glob, is refused too:
#: it keeps the compiler's time bounded (a step is about 0.1 µs here: some 0.2 s, plus 0.3 ms
#: a glob) on any policy, where the state limit alone lets thousands of wide globs take
#: minutes.  Each DFA state costs STEPS_PER_STATE, one step a byte class (its row), and for
#: each of its NFA states STEPS_PER_NFA_STATE and one step each class an edge covers; fitted
#: to policies of literal paths, of `**` globs and of wide alphabets.  A policy of 10,000
#: distinct literal paths and globs of a few components takes 12 million steps, 40% of its
#: bound.
MAX_WORK = 2_000_000
WORK_PER_GLOB = 3_000
STEPS_PER_STATE = 50
STEPS_PER_NFA_STATE = 5


def entry_bytes(states: int) -> int:
    """The width of one transition (a state number) in a DFA of `states` states."""
    return 2 if states <= 1 << 16 else 4


def rows_per_shard(states: int, classes: int) -> int:
    """How many stored rows of transitions one map holds in a DFA of `states` states and
    `classes` byte classes (the stored rows are split over maps of MAX_TABLE_BYTES)."""
    return MAX_TABLE_BYTES // (classes * entry_bytes(states))


def max_stored_rows(states: int, classes: int) -> int:
    """The most distinct rows a DFA of `states` states and `classes` byte classes may store:
    MAX_SHARDS maps of them."""
    return rows_per_shard(states, classes) * MAX_SHARDS


_ALL = (1 << 256) - 1
_SLASH = 1 << ord("/")
_NOT_SLASH = _ALL & ~_SLASH


class GlobError(ValueError):
    """A malformed glob; `offset` is the character offset of the problem within the glob."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.offset = offset


# The glob AST: a sequence of these.
@dataclass(frozen=True)
class _Bytes:
    value: bytes


@dataclass(frozen=True)
class _Set:
    """One byte from a set (a bit mask over 0..255)."""

    mask: int


@dataclass(frozen=True)
class _Repeat:
    """Zero or more bytes from a set."""

    mask: int


@dataclass(frozen=True)
class _Alternatives:
    options: tuple[tuple[_Node, ...], ...]


_Node = _Bytes | _Set | _Repeat | _Alternatives


def parse(glob: str) -> tuple[_Node, ...]:
    """Parse a glob into its node sequence, raising GlobError on malformed syntax."""
    nodes, end = _parse_sequence(glob, 0, in_braces=False)
    if end != len(glob):  # pragma: no cover - _parse_sequence consumes all outside braces
        raise GlobError("unexpected character", end)
    return nodes


#: A run of characters that stand for themselves, outside and inside `{...}`: one node for
#: the whole run (a literal path is one node, not one per byte).
_LITERAL_RUN = re.compile(r"[^*?\[{}\\]+")
_LITERAL_RUN_IN_BRACES = re.compile(r"[^*?\[{}\\,]+")


def _parse_sequence(glob: str, i: int, in_braces: bool) -> tuple[tuple[_Node, ...], int]:
    nodes: list[_Node] = []
    literal_run = _LITERAL_RUN_IN_BRACES if in_braces else _LITERAL_RUN
    while i < len(glob):
        run = literal_run.match(glob, i)
        if run:
            nodes.append(_Bytes(run.group().encode()))
            i = run.end()
            continue
        c = glob[i]
        if in_braces and c in ",}":
            break
        if c == "*":
            if glob.startswith("**", i):
                i = _parse_double_star(glob, i, nodes)
                continue
            nodes.append(_Repeat(_NOT_SLASH))
            i += 1
        elif c == "?":
            nodes.append(_Set(_NOT_SLASH))
            i += 1
        elif c == "[":
            mask, i = _parse_class(glob, i)
            nodes.append(_Set(mask))
        elif c == "{":
            alternatives, i = _parse_braces(glob, i)
            nodes.append(alternatives)
        elif c == "}":
            raise GlobError("unmatched `}`", i)
        elif c == "\\":
            if i + 1 == len(glob):
                raise GlobError("`\\` at the end of the glob escapes nothing", i)
            nodes.append(_Bytes(glob[i + 1].encode()))
            i += 2
        else:
            nodes.append(_Bytes(c.encode()))
            i += 1
    return tuple(nodes), i


def _parse_double_star(glob: str, i: int, nodes: list[_Node]) -> int:
    """`**` matches across components; `/**/` also matches a lone `/`."""
    after = i + 2
    if glob.startswith("*", after):
        raise GlobError("`***` is ambiguous; use `*` or `**`", i)
    preceded_by_slash = i > 0 and glob[i - 1] == "/"
    if preceded_by_slash and glob.startswith("/", after):
        nodes.append(_Alternatives(((), (_Repeat(_ALL), _Bytes(b"/")))))
        return after + 1
    nodes.append(_Repeat(_ALL))
    return after


def _parse_class(glob: str, start: int) -> tuple[int, int]:
    i = start + 1
    negate = i < len(glob) and glob[i] in "!^"
    if negate:
        i += 1
    mask = 0
    first = True
    while i < len(glob) and (glob[i] != "]" or first):
        low = glob[i]
        if low == "\\" and i + 1 < len(glob):
            i += 1
            low = glob[i]
        high = low
        if glob.startswith("-", i + 1) and i + 2 < len(glob) and glob[i + 2] != "]":
            high = glob[i + 2]
            i += 2
        if ord(low) > 127 or ord(high) > 127:
            raise GlobError("only ASCII characters may stand in `[...]`", i)
        if ord(high) < ord(low):
            raise GlobError(f"the range `{low}-{high}` is backwards", i - 2)
        for code in range(ord(low), ord(high) + 1):
            mask |= 1 << code
        i += 1
        first = False
    if i >= len(glob):
        raise GlobError("unclosed `[`", start)
    if negate:
        mask = _ALL & ~mask
    mask &= _NOT_SLASH & ~1
    if not mask:
        raise GlobError("this character set matches nothing", start)
    return mask, i + 1


def _parse_braces(glob: str, start: int) -> tuple[_Alternatives, int]:
    options = []
    i = start + 1
    while True:
        option, i = _parse_sequence(glob, i, in_braces=True)
        options.append(option)
        if i >= len(glob):
            raise GlobError("unclosed `{`", start)
        if glob[i] == "}":
            return _Alternatives(tuple(options)), i + 1
        i += 1  # the comma


def path_problem(glob: str) -> tuple[str, int] | None:
    """Why a syntactically valid glob can never match a kernel path, with the offset, or None.

    The kernel hands the program canonical absolute paths: no empty, `.` or `..` components,
    no trailing `/`.  A glob that needs one of those never matches, which in a security policy
    is a silent hole, so it is refused.
    """
    if "\0" in glob:
        return "a path cannot contain a NUL character", glob.index("\0")
    if len(glob.encode()) > PATH_MAX:
        return f"the path is longer than {PATH_MAX} bytes", 0
    if glob != "/" and glob.endswith("/"):
        return (
            "a trailing `/` never matches: the kernel names directories without it",
            len(glob) - 1,
        )
    if "//" in glob:
        return "an empty path component (`//`) never matches", glob.index("//")
    for index, component in _components(glob):
        if component in (".", ".."):
            return f"a `{component}` component never matches: paths are resolved first", index
    return None


def _components(glob: str) -> list[tuple[int, str]]:
    result = []
    offset = 0
    for component in glob.split("/"):
        result.append((offset, component))
        offset += len(component) + 1
    return result


# Thompson NFA over bytes, then subset construction.


@dataclass
class _Nfa:
    edges: list[list[tuple[int, int]]] = field(default_factory=list)  # (byte mask, target)
    epsilon: list[list[int]] = field(default_factory=list)
    accepts: dict[int, int] = field(default_factory=dict)  # state -> glob index

    def state(self) -> int:
        self.edges.append([])
        self.epsilon.append([])
        return len(self.edges) - 1


def _build(nfa: _Nfa, nodes: tuple[_Node, ...], start: int) -> int:
    """Add `nodes` after state `start`; return the state reached at their end."""
    current = start
    for node in nodes:
        if isinstance(node, _Bytes):
            # A chain of states, one byte apart, added at once: literal paths are most of
            # the NFA of a large policy.
            first = len(nfa.edges)
            nfa.edges[current].append((1 << node.value[0], first))
            nfa.edges.extend([[(1 << byte, first + i)] for i, byte in enumerate(node.value[1:], 1)])
            nfa.edges.append([])
            nfa.epsilon.extend([[] for _ in node.value])
            current = len(nfa.edges) - 1
        elif isinstance(node, _Set):
            nxt = nfa.state()
            nfa.edges[current].append((node.mask, nxt))
            current = nxt
        elif isinstance(node, _Repeat):
            loop = nfa.state()
            nfa.epsilon[current].append(loop)
            nfa.edges[loop].append((node.mask, loop))
            current = loop
        else:
            end = nfa.state()
            for option in node.options:
                branch = nfa.state()
                nfa.epsilon[current].append(branch)
                nfa.epsilon[_build(nfa, option, branch)].append(end)
            current = end
    return current


@dataclass(frozen=True)
class Packed:
    """A DFA's transitions as the kernel reads them: each state is a stored row of
    transitions plus at most one transition of its own, and only distinct rows are stored.

    Most states of a policy's DFA differ from another state's row in one byte class: a state
    on a literal path leads on by one byte from the dead row; the states of a `**` tail lead
    back to its loop but for the byte that moves on (`/**/*.conf` after `.`: `c`).  At 10,000
    rules this stores 6,000 rows for 115,000 states.

    `rows[r]`: a stored row, `rows[0]` the dead one.  `row_of[s]`: the row state s reads;
    `exception[s]`: its own transition, `class << EXCEPTION_SHIFT | target`, 0 for none (class
    0 is NUL's, which ends a path and is never looked up).
    """

    rows: tuple[tuple[int, ...], ...]
    row_of: tuple[int, ...]
    exception: tuple[int, ...]

    def own(self, state: int, cls: int) -> int | None:
        """The state's own transition on class `cls`; None where it reads its stored row."""
        exception = self.exception[state]
        if exception and exception >> EXCEPTION_SHIFT == cls:
            return exception & ((1 << EXCEPTION_SHIFT) - 1)
        return None

    def next(self, state: int, cls: int) -> int:
        """The transition as the kernel finds it (tests hold it to Dfa.transitions)."""
        own = self.own(state, cls)
        return self.rows[self.row_of[state]][cls] if own is None else own


def _pack(transitions: list[tuple[int, ...]], classes: int) -> Packed:
    """Each state as a stored row and its own transition (_shared_row); rows stored once."""
    dead = (0,) * classes
    stored: dict[tuple[int, ...], int] = {dead: 0}
    row_of: list[int] = []
    exception: list[int] = []
    for state, row in enumerate(transitions):
        shared, own = _shared_row(state, row, transitions, dead)
        index = stored.get(shared)
        if index is None:
            index = stored[shared] = len(stored)
        row_of.append(index)
        exception.append(own)
    return Packed(tuple(stored), tuple(row_of), tuple(exception))


def _shared_row(
    state: int, row: tuple[int, ...], transitions: list[tuple[int, ...]], dead: tuple[int, ...]
) -> tuple[tuple[int, ...], int]:
    """The row `state` reads and its own transition (0: none): the dead row for a state with
    at most one live transition; else the row of the state most of its transitions go to,
    if the two differ in at most one class; else its own."""
    live = len(row) - row.count(0)
    if live == 0:
        return dead, 0
    if live == 1:
        target = max(row)
        return dead, row.index(target) << EXCEPTION_SHIFT | target
    common = max(set(row), key=row.count)
    if common in (0, state):
        return row, 0
    reference = transitions[common]
    if row == reference:
        return reference, 0
    differing = [c for c, (a, b) in enumerate(zip(row, reference, strict=True)) if a != b]
    if len(differing) == 1:
        return reference, differing[0] << EXCEPTION_SHIFT | row[differing[0]]
    return row, 0


@dataclass(frozen=True)
class Dfa:
    """A DFA over bytes: state 0 is dead (nothing can match any more), state 1 the start.

    `classes[b]` is the equivalence class of byte b; `transitions[s][c]` the next state;
    `accepts[s]` the set of glob indexes matched when the input ends in state s.
    """

    classes: tuple[int, ...]
    transitions: tuple[tuple[int, ...], ...]
    accepts: tuple[frozenset[int], ...]
    packed: Packed

    @property
    def class_count(self) -> int:
        return max(self.classes) + 1

    def match(self, path: bytes) -> frozenset[int]:
        """The globs a path matches: the reference the in-kernel scan is tested against."""
        state = 1
        for byte in path:
            state = self.transitions[state][self.classes[byte]]
            if state == 0:
                return frozenset()
        return self.accepts[state]


def guard_states(
    dfa: Dfa, weights: dict[int, int], separator: str = "/"
) -> tuple[tuple[int, int], ...]:
    """For each state, the smallest weight (> 0, 0 for none) of the globs in `weights` that
    match the input read so far, and the smallest of those that match it or the input extended
    by `separator` and anything after it.  For paths: the globs that match the path itself,
    and the globs that match it or any path beneath it."""
    count = len(dfa.transitions)
    if not weights:
        return ((0, 0),) * count
    weighted = frozenset(weights)
    own = [0] * count
    for state, accepted in enumerate(dfa.accepts):
        if not weighted.isdisjoint(accepted):
            own[state] = min(weights[g] for g in accepted & weighted)
    # NUL's class leads nowhere (a path's end is not an input byte): every row's entry for it
    # is the dead state, whose weight is 0, as are all the entries a row leaves dead.
    predecessors: list[list[int]] = [[] for _ in range(count)]
    for state, row in enumerate(dfa.transitions):
        # Each target once: most of a row is the dead state, and a wildcard's classes repeat
        # one target.
        for target in set(row):
            predecessors[target].append(state)
    # reachable[s]: the smallest weight accepted in any state reachable from s (s included).
    reachable = list(own)
    work = [s for s in range(count) if reachable[s]]
    while work:
        target = work.pop()
        for state in predecessors[target]:
            if not reachable[state] or reachable[target] < reachable[state]:
                reachable[state] = reachable[target]
                work.append(state)
    beneath = dfa.classes[ord(separator)]
    guards = []
    for mine, row in zip(own, dfa.transitions, strict=True):
        below = reachable[row[beneath]]
        guards.append((mine, min(mine, below) if mine and below else mine or below))
    return tuple(guards)


class TooComplexError(ValueError):
    """The globs together need a larger DFA than the kernel can hold (MAX_STATES states, or
    more rows to store than max_stored_rows), or more work to build than MAX_WORK."""


def compile_globs(globs: list[str]) -> Dfa:
    """One DFA matching all `globs` at once; NUL (the string's end) is never an input byte."""
    nfa = _Nfa()
    start = nfa.state()
    for index, glob in enumerate(globs):
        branch = nfa.state()
        nfa.epsilon[start].append(branch)
        nfa.accepts[_build(nfa, parse(glob), branch)] = index
    classes = _byte_classes(nfa)
    representatives = _representatives(classes)
    budget = MAX_WORK + WORK_PER_GLOB * len(globs)
    # Each NFA state's edges as (byte class, target) pairs: a DFA state then visits each
    # edge's classes once, not every class for every edge (most edges are one literal byte).
    covered: dict[int, list[int]] = {}
    for edges in nfa.edges:
        for mask, _ in edges:
            if mask not in covered:
                covered[mask] = [c for c, byte in enumerate(representatives) if mask >> byte & 1]
    class_edges = [[(c, t) for mask, t in edges for c in covered[mask]] for edges in nfa.edges]
    empty: frozenset[int] = frozenset()
    first = _closure(nfa.epsilon, (start,))
    ids = {empty: 0, first: 1}
    order = [empty, first]
    # The DFA state each move (the NFA states one class leads to, in the order found) goes
    # to: most moves recur, and a tuple is found again without building its closure.
    target_of: dict[tuple[int, ...], int] = {}
    transitions: list[tuple[int, ...]] = []
    work = 0
    for current in order:  # `order` grows while we walk it
        work += STEPS_PER_STATE + len(representatives) + STEPS_PER_NFA_STATE * len(current)
        moves: dict[int, list[int]] = {}
        for s in current:
            edges = class_edges[s]
            work += len(edges)
            for c, t in edges:
                if c in moves:
                    moves[c].append(t)
                else:
                    moves[c] = [t]
        if work > budget:
            raise TooComplexError("the path globs are too many or too wide to combine")
        row = [0] * len(representatives)
        for c in sorted(moves):  # in class order: states are numbered as they are found
            move = tuple(moves[c])
            target = target_of.get(move)
            if target is None:
                closed = _closure(nfa.epsilon, move)
                target = ids.get(closed)
                if target is None:
                    if len(order) >= MAX_STATES:
                        raise TooComplexError(
                            f"the path globs need more than {MAX_STATES} automaton states"
                        )
                    target = ids[closed] = len(order)
                    order.append(closed)
                target_of[move] = target
            row[c] = target
        transitions.append(tuple(row))
    accepting = frozenset(nfa.accepts)
    accepts = tuple(
        (
            frozenset(nfa.accepts[s] for s in states & accepting)
            if not accepting.isdisjoint(states)
            else empty
        )
        for states in order
    )
    packed = _pack(transitions, len(representatives))
    most = max_stored_rows(len(transitions), len(representatives))
    if len(packed.rows) > most:
        raise TooComplexError(
            f"the path globs need more than {most} distinct automaton rows "
            f"(with {len(representatives)} byte classes)"
        )
    return Dfa(tuple(classes), tuple(transitions), accepts, packed)


def _closure(epsilon: list[list[int]], states: tuple[int, ...]) -> frozenset[int]:
    """`states` and every NFA state their epsilon edges reach."""
    stack = [s for s in states if epsilon[s]]
    if not stack:  # most moves: states of literal bytes, no epsilon edge
        return frozenset(states)
    seen = set(states)
    while stack:
        for nxt in epsilon[stack.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    return frozenset(seen)


def _byte_classes(nfa: _Nfa) -> list[int]:
    """Partition bytes 1..255 by which edge masks contain them; byte 0 gets its own class."""
    masks = sorted({mask for edges in nfa.edges for mask, _ in edges})
    signatures: dict[tuple[bool, ...], int] = {}
    classes = [0] * 256
    for byte in range(256):
        signature = (byte == 0, *(bool(mask >> byte & 1) for mask in masks))
        classes[byte] = signatures.setdefault(signature, len(signatures))
    return classes


def _representatives(classes: list[int]) -> list[int]:
    firsts: dict[int, int] = {}
    for byte, cls in enumerate(classes):
        firsts.setdefault(cls, byte)
    return [firsts[c] for c in range(len(firsts))]
