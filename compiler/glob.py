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

import functools
import re
from dataclasses import dataclass, field
from typing import cast

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
_TARGET_BITS = (1 << EXCEPTION_SHIFT) - 1
#: More steps than this building the DFA, plus WORK_PER_GLOB for each glob, is refused too:
#: it keeps the compiler's time bounded (a step is about 0.1 µs here: some 0.2 s, plus 0.3 ms
#: a glob) on any policy, where the state limit alone lets thousands of wide globs take
#: minutes.  Each DFA state costs STEPS_PER_STATE, one step a byte class (its row), and for
#: each of its NFA states STEPS_PER_NFA_STATE and one step each class an edge covers; fitted
#: to policies of literal paths, of `**` globs and of wide alphabets.  A state made by a
#: short cut (_GlobSubsets) costs a step a class, plus one an NFA state if copied.  A policy
#: of 10,000 distinct literal paths and globs of a few components takes 4 million steps, 13%
#: of its bound.
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
#: The mask of each byte, made once: a literal path's edges share them (each is a number of up
#: to 256 bits, made and freed again at every byte otherwise).
_BYTE_MASKS = tuple(1 << byte for byte in range(256))


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


@functools.lru_cache(maxsize=1 << 14)
def parse(glob: str) -> tuple[_Node, ...]:
    """Parse a glob into its node sequence, raising GlobError on malformed syntax.  (The
    check pass parses each glob, and compile_globs again: the nodes are immutable.)"""
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
    #: The bytes of literal edges and the masks of the others, kept as edges are added: the
    #: byte classes need the distinct masks alone, and most edges repeat one.
    literal_bytes: set[int] = field(default_factory=set)
    wide_masks: set[int] = field(default_factory=set)

    def state(self) -> int:
        self.edges.append([])
        self.epsilon.append([])
        return len(self.edges) - 1

    def masks(self) -> set[int]:
        """The distinct byte masks of the edges."""
        return self.wide_masks | {_BYTE_MASKS[byte] for byte in self.literal_bytes}


def _build(nfa: _Nfa, nodes: tuple[_Node, ...], start: int) -> int:
    """Add `nodes` after state `start`; return the state reached at their end.  Every edge
    leads to a state numbered after its own, but a loop's edge back to itself."""
    current = start
    for node in nodes:
        if isinstance(node, _Bytes):
            # A chain of states, one byte apart, added at once: literal paths are most of
            # the NFA of a large policy.
            first = len(nfa.edges)
            masks = list(map(_BYTE_MASKS.__getitem__, node.value))
            nfa.edges[current].append((masks[0], first))
            nfa.edges.extend(
                [
                    [edge]
                    for edge in zip(masks[1:], range(first + 1, first + len(masks)), strict=True)
                ]
            )
            nfa.edges.append([])
            nfa.epsilon.extend([[] for _ in node.value])
            nfa.literal_bytes.update(node.value)
            current = len(nfa.edges) - 1
        elif isinstance(node, _Set):
            nxt = nfa.state()
            nfa.edges[current].append((node.mask, nxt))
            nfa.wide_masks.add(node.mask)
            current = nxt
        elif isinstance(node, _Repeat):
            loop = nfa.state()
            nfa.epsilon[current].append(loop)
            nfa.edges[loop].append((node.mask, loop))
            nfa.wide_masks.add(node.mask)
            current = loop
        else:
            ends = []
            for option in node.options:
                branch = nfa.state()
                nfa.epsilon[current].append(branch)
                ends.append(_build(nfa, option, branch))
            current = nfa.state()  # after the options': every edge leads on (_GlobSubsets)
            for end in ends:
                nfa.epsilon[end].append(current)
    return current


#: How a state is packed (Packed): the state whose row it reads (0: the dead row; itself: its
#: own), and its own transition (class << EXCEPTION_SHIFT | target; 0: none).
_Packing = tuple[int, int]


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
            return exception & _TARGET_BITS
        return None

    def next(self, state: int, cls: int) -> int:
        """The transition as the kernel finds it (tests hold it to Dfa.transitions)."""
        own = self.own(state, cls)
        return self.rows[self.row_of[state]][cls] if own is None else own


def _pack(transitions: list[tuple[int, ...]], classes: int, known: dict[int, _Packing]) -> Packed:
    """Each state as a stored row and its own transition: as `known` says for the states
    _GlobSubsets' short cuts made, else as _shared_row finds; rows stored once."""
    dead = (0,) * classes
    stored: dict[tuple[int, ...], int] = {dead: 0}
    row_of: list[int] = []
    exception: list[int] = []
    for state, row in enumerate(transitions):
        reads, own = known.get(state) or _shared_row(state, row, transitions)
        index = 0 if reads == 0 else stored.get(transitions[reads])  # most: the dead row
        if index is None:
            index = stored[transitions[reads]] = len(stored)
        row_of.append(index)
        exception.append(own)
    return Packed(tuple(stored), tuple(row_of), tuple(exception))


def _shared_row(state: int, row: tuple[int, ...], transitions: list[tuple[int, ...]]) -> _Packing:
    """The state whose row `state` reads (0: the dead row) and its own transition (0: none):
    the dead row for a state with at most one live transition; else the row of the state
    most of its transitions go to, if the two differ in at most one class; else its own."""
    live = len(row) - row.count(0)
    if live == 0:
        return 0, 0
    if live == 1:
        target = max(row)
        return 0, row.index(target) << EXCEPTION_SHIFT | target
    common = max(set(row), key=row.count)
    if common in (0, state):
        return state, 0
    reference = transitions[common]
    if row == reference:
        return common, 0
    differing = [c for c, (a, b) in enumerate(zip(row, reference, strict=True)) if a != b]
    if len(differing) == 1:
        return common, differing[0] << EXCEPTION_SHIFT | row[differing[0]]
    return state, 0


def _renumberable(transitions: list[tuple[int, ...]]) -> list[_Packing | None]:
    """_shared_row of each state, where it holds however the states are renumbered (for the
    copies of a tail, _GlobSubsets._copy), else None: where most of a row's transitions tie
    between two targets, the one max() takes depends on the numbers."""
    found: list[_Packing | None] = []
    for state, row in enumerate(transitions):
        counts = sorted(row.count(target) for target in set(row))
        tie = len(counts) > 1 and counts[-1] == counts[-2]
        found.append(None if tie else _shared_row(state, row, transitions))
    return found


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

    @functools.cached_property
    def accept_rows(self) -> tuple[list[frozenset[int]], list[int]]:
        """The distinct accept sets (row 0: the empty set, then in order of first state) and
        each state's row: the program decides by row, and many states share one."""
        rows: dict[frozenset[int], int] = {frozenset(): 0}
        of_state = [rows.setdefault(accepted, len(rows)) for accepted in self.accepts]
        return list(rows), of_state

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
        if dfa.packed.row_of[state] == 0:  # the dead row and its own transition, if any
            predecessors[dfa.packed.exception[state] & _TARGET_BITS].append(state)
            continue
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
    nfa, owners = _nfa(globs)
    classes = _byte_classes(nfa)
    covered = _covered(nfa, classes)
    class_count = max(classes) + 1
    budget = _Budget(MAX_WORK + WORK_PER_GLOB * len(globs))
    subsets = _GlobSubsets(nfa, owners, covered, class_count, budget)
    subsets.state(_closure(nfa.epsilon, (0,)), alone=False)
    subsets.run()
    transitions = cast(list[tuple[int, ...]], subsets.rows)  # run() filled every row
    empty: frozenset[int] = frozenset()
    accepting = frozenset(nfa.accepts)
    accepts = tuple(
        (
            frozenset(nfa.accepts[s] for s in states & accepting)
            if not accepting.isdisjoint(states)
            else empty
        )
        for states in subsets.sets
    )
    packed = _pack(transitions, class_count, subsets.packing)
    most = max_stored_rows(len(transitions), class_count)
    if len(packed.rows) > most:
        raise TooComplexError(
            f"the path globs need more than {most} distinct automaton rows "
            f"(with {class_count} byte classes)"
        )
    return Dfa(tuple(classes), tuple(transitions), accepts, packed)


def _nfa(globs: list[str]) -> tuple[_Nfa, _Owners]:
    """The NFA of all `globs`: state 0 the start, an epsilon edge from it to each glob's."""
    nfa = _Nfa()
    start = nfa.state()
    owners = _Owners()
    for index, glob in enumerate(globs):
        branch = nfa.state()
        nfa.epsilon[start].append(branch)
        nodes = parse(glob)
        nfa.accepts[_build(nfa, nodes, branch)] = index
        owners.add(branch, len(nfa.edges), nodes)
    return nfa, owners


def _covered(nfa: _Nfa, classes: list[int]) -> dict[int, list[int]]:
    """The byte classes each of the NFA's edge masks covers: a DFA state then visits each
    edge's classes once, not every class for every edge (most edges are one literal byte)."""
    representatives = _representatives(classes)
    return {
        mask: [c for c, byte in enumerate(representatives) if mask >> byte & 1]
        for mask in nfa.masks()
    }


class _Budget:
    """The steps the DFA construction may take (MAX_WORK): spent as it goes, refused past
    the end."""

    def __init__(self, steps: int) -> None:
        self.left = steps

    def spend(self, steps: int) -> None:
        self.left -= steps
        if self.left < 0:
            raise TooComplexError("the path globs are too many or too wide to combine")


class _Subsets:
    """Subset construction over an NFA (`edges[s]`: (byte mask, target) pairs; `epsilon[s]`:
    targets).  Each DFA state stands for a closed set of NFA states, numbered as found (state
    0 is the empty set, the dead state); `rows[s]` is state s's row of transitions, None until
    it is worked out."""

    def __init__(
        self,
        edges: list[list[tuple[int, int]]],
        epsilon: list[list[int]],
        covered: dict[int, list[int]],
        classes: int,
        budget: _Budget,
    ) -> None:
        self.edges = edges
        self.epsilon = epsilon
        self.covered = covered
        self.classes = classes
        self.budget = budget
        empty: frozenset[int] = frozenset()
        self.sets = [empty]
        self.ids = {empty: 0}
        self.dead = (0,) * classes
        self.rows: list[tuple[int, ...] | None] = [self.dead]
        #: alone[s]: state s and the states found from it stand for one glob's NFA states.
        self.alone = [True]
        # The DFA state each move (the NFA states one class leads to, in the order found)
        # goes to: most moves recur, and a tuple is found again without building its closure.
        self.target_of: dict[tuple[int, ...], int] = {}

    def state(self, closed: frozenset[int], alone: bool) -> int:
        """The DFA state of `closed`: a new one, its row to be worked out, if not seen yet."""
        found = self.ids.get(closed)
        if found is None:
            if len(self.sets) >= MAX_STATES:
                raise TooComplexError(
                    f"the path globs need more than {MAX_STATES} automaton states"
                )
            found = self.ids[closed] = len(self.sets)
            self.sets.append(closed)
            self.rows.append(None)
            self.alone.append(alone)
        return found

    def run(self) -> None:
        """Work out the row of every state, those found on the way included."""
        index = 1
        while index < len(self.sets):  # `sets` grows while we walk it
            if self.rows[index] is None:
                self.rows[index] = self._row(self.sets[index], self.alone[index])
            index += 1

    def _row(self, current: frozenset[int], alone: bool) -> tuple[int, ...]:
        moves: dict[int, list[int]] = {}
        steps = STEPS_PER_STATE + self.classes + STEPS_PER_NFA_STATE * len(current)
        covered = self.covered
        # Each edge's classes are read from its mask each time: most NFA states are in one
        # general state's set only (literal paths, past their common prefix).
        for s in current:
            for mask, t in self.edges[s]:
                classes = covered[mask]
                steps += len(classes)
                for c in classes:
                    if c in moves:
                        moves[c].append(t)
                    else:
                        moves[c] = [t]
        self.budget.spend(steps)
        row = [0] * self.classes
        for c in sorted(moves):  # in class order: states are numbered as they are found
            move = tuple(moves[c])
            target = self.target_of.get(move)
            if target is None:
                closed = _closure(self.epsilon, move)
                target = self.ids.get(closed)
                if target is None:
                    target = self.entered(closed, alone)
                self.target_of[move] = target
            row[c] = target
        return tuple(row)

    def entered(self, closed: frozenset[int], alone: bool) -> int:
        """The state of `closed`, not seen before, reached from a state that is `alone`."""
        return self.state(closed, alone)


class _Owners:
    """Which glob each NFA state belongs to: each glob's states are numbered in one run
    (the shared start state, 0, apart)."""

    def __init__(self) -> None:
        self.glob = [-1]  # glob[s]: the glob NFA state s belongs to
        self.first: list[int] = []  # first[g]: glob g's first NFA state
        self.literal: list[bool] = []  # literal[g]: glob g is a plain path, no wildcard
        #: lead[g]: glob g's leading literal bytes and the nodes after them (None if it
        #: starts with a wildcard): _build makes one NFA state a byte of the first.
        self.lead: list[tuple[bytes, tuple[_Node, ...]] | None] = []

    def add(self, first: int, end: int, nodes: tuple[_Node, ...]) -> None:
        """The next glob's states: `first` to `end` (exclusive), built from `nodes`."""
        self.glob.extend([len(self.first)] * (end - first))
        self.first.append(first)
        self.literal.append(all(isinstance(node, _Bytes) for node in nodes))
        lead = nodes[0] if nodes else None
        self.lead.append((lead.value, tuple(nodes[1:])) if isinstance(lead, _Bytes) else None)

    def end(self, glob: int) -> int:
        return self.first[glob + 1] if glob + 1 < len(self.first) else len(self.glob)

    def rest(self, glob: int, state: int) -> tuple[bytes, tuple[_Node, ...]] | None:
        """What glob g matches from its NFA state `state` on, as a key (the bytes left of its
        leading literal, the nodes after it), if `state` is in that literal; else None.
        Globs with equal keys have the same NFA from there on: _build is deterministic."""
        lead = self.lead[glob]
        read = state - self.first[glob]  # the state after the literal's first `read` bytes
        if lead is None or not 1 <= read <= len(lead[0]):
            return None
        return lead[0][read:], lead[1]


#: An NFA state as seen from itself: its edges (byte mask, how far on the target is), its
#: epsilon edges (how far on) and whether it accepts.
_Link = tuple[tuple[tuple[int, int], ...], tuple[int, ...], bool]
#: A glob's tail (_GlobSubsets.entered): the NFA states it starts in, counted from the first
#: of them, and the links of the NFA states from there to the glob's end.
_TailShape = tuple[tuple[int, ...], tuple[_Link, ...]]


class _GlobSubsets(_Subsets):
    """The subset construction of a policy's globs, with short cuts for the states that
    stand for one glob alone: most states of a large policy.

    Once the input read so far leaves one glob in play (a DFA state's NFA states are all that
    glob's), the rest of the automaton from there is that glob's alone.  For a literal path
    it is a chain of states, one a byte, made without the general step's searches.  For a
    glob with wildcards it is the same for every glob whose rest has the same shape
    (`/srv/d1/**/*.conf` and `/srv/d2/**/*.conf` after their digit): worked out once, on its
    second sighting (a tail seldom seen twice is not worth the copy), and copied for the
    others.
    """

    def __init__(
        self,
        nfa: _Nfa,
        owners: _Owners,
        covered: dict[int, list[int]],
        classes: int,
        budget: _Budget,
    ) -> None:
        super().__init__(nfa.edges, nfa.epsilon, covered, classes, budget)
        self.accepts = nfa.accepts
        self.owners = owners
        self.seen: set[_TailShape] = set()
        self.tails: dict[_TailShape, tuple[_Subsets, list[_Packing | None]]] = {}
        #: The _links of a glob's rest (_Owners.rest), worked out once for all the globs
        #: that share it.
        self.rests: dict[tuple[bytes, tuple[_Node, ...]], tuple[_Link, ...] | None] = {}
        #: How the states the short cuts made are packed, known as they are made: _pack
        #: need not work it out again from their rows.
        self.packing: dict[int, _Packing] = {}
        #: around[c]: the dead row before and after class c, for the rows of literal paths'
        #: states (one live class each).
        self.around = [(self.dead[:c], self.dead[c + 1 :]) for c in range(classes)]

    def entered(self, closed: frozenset[int], alone: bool) -> int:
        if alone:  # within a tail worked out state by state
            return self.state(closed, alone)
        low = min(closed)
        glob = self.owners.glob[low]
        if glob < 0 or glob != self.owners.glob[max(closed)]:
            return self.state(closed, alone)
        if self.owners.literal[glob] and len(closed) == 1:
            return self._literal_tail(low)
        links = self._links(glob, low)
        if links is None:
            return self.state(closed, alone=True)
        shape = (tuple(sorted(s - low for s in closed)), links)
        tail = self.tails.get(shape)
        if tail is None:
            if shape not in self.seen:
                self.seen.add(shape)
                return self.state(closed, alone=True)
            tail = self.tails[shape] = self._tail(shape)
        return self._copy(*tail, low)

    def _literal_tail(self, s: int) -> int:
        """The states of a literal path's NFA states from `s` on: one a byte, each leading to
        the next.  (Only the input that spells the path so far reaches one of them, so each
        is new; were one not, its row would be written again unchanged: a state's row depends
        on its NFA states alone.)"""
        first = state = self.state(frozenset((s,)), alone=True)
        around, steps = self.around, 0
        while self.edges[s]:
            ((mask, s),) = self.edges[s]
            target = self.state(frozenset((s,)), alone=True)
            cls = self.covered[mask][0]
            before, after = around[cls]
            self.rows[state] = before + (target,) + after
            self.packing[state] = 0, cls << EXCEPTION_SHIFT | target
            state = target
            steps += self.classes
        self.budget.spend(steps)
        self.rows[state] = self.dead
        self.packing[state] = 0, 0
        return first

    def _links(self, glob: int, low: int) -> tuple[_Link, ...] | None:
        """The glob's NFA states from `low` to its end as _Links: all the states a tail from
        `low` can reach, as the glob's edges lead on (_build).  None if one leads back."""
        end = self.owners.end(glob)
        self.budget.spend(STEPS_PER_NFA_STATE * (end - low))
        rest = self.owners.rest(glob, low)
        if rest is None:
            return self._links_of(low, end)
        if rest not in self.rests:
            self.rests[rest] = self._links_of(low, end)
        return self.rests[rest]

    def _links_of(self, low: int, end: int) -> tuple[_Link, ...] | None:
        """_links, read off NFA states `low` to `end`."""
        links = []
        for s in range(low, end):
            edges, epsilon = self.edges[s], self.epsilon[s]
            if any(t < s for _, t in edges) or any(t < s for t in epsilon):
                return None
            links.append(
                (
                    tuple((mask, t - s) for mask, t in edges),
                    tuple(t - s for t in epsilon),
                    s in self.accepts,
                )
            )
        return tuple(links)

    def _tail(self, shape: _TailShape) -> tuple[_Subsets, list[_Packing | None]]:
        """The automaton of a tail, its NFA states numbered from its first, and how its
        copies' states are packed (_renumberable)."""
        entry, links = shape
        edges = [[(mask, s + on) for mask, on in link[0]] for s, link in enumerate(links)]
        epsilon = [[s + on for on in link[1]] for s, link in enumerate(links)]
        tail = _Subsets(edges, epsilon, self.covered, self.classes, self.budget)
        tail.state(frozenset(entry), alone=True)
        tail.run()
        return tail, _renumberable(cast(list[tuple[int, ...]], tail.rows))

    def _copy(self, tail: _Subsets, packing: list[_Packing | None], low: int) -> int:
        """Copy `tail`'s states in, its NFA states standing for `low` on, and return the state
        of its entry; `packing`: how the tail's states are packed, in its numbers."""
        own = [0] * len(tail.sets)  # the state each of the tail's states becomes
        copied = []
        self.budget.spend(
            self.classes * (len(tail.sets) - 1) + sum(len(states) for states in tail.sets)
        )
        for index in range(1, len(tail.sets)):
            closed = frozenset(map(low.__add__, tail.sets[index]))
            found = self.ids.get(closed)
            if found is None:
                found = self.state(closed, alone=True)
                copied.append(index)
            own[index] = found
        for index in copied:
            row = cast(tuple[int, ...], tail.rows[index])
            self.rows[own[index]] = tuple(map(own.__getitem__, row))
            packed = packing[index]
            if packed is not None:
                reads, word = packed
                target = own[word & _TARGET_BITS]
                self.packing[own[index]] = own[reads], word and word & ~_TARGET_BITS | target
        return own[1]


def _closure(epsilon: list[list[int]], states: tuple[int, ...]) -> frozenset[int]:
    """`states` and every NFA state their epsilon edges reach."""
    if not any(map(epsilon.__getitem__, states)):  # most moves: literal bytes, no epsilon
        return frozenset(states)
    stack = [s for s in states if epsilon[s]]
    seen = set(states)
    while stack:
        for nxt in epsilon[stack.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    return frozenset(seen)


def _byte_classes(nfa: _Nfa) -> list[int]:
    """Partition bytes 1..255 by which edge masks contain them; byte 0 gets its own class."""
    masks = sorted(nfa.masks())
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
