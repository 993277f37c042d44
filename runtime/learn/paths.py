"""Collapsing recorded paths into the globs a person would write.

Two things become globs, directory by directory from the root:

- **Per-run names.**  Two or more sibling names that differ only where a per-run part stands
  collapse into one glob: a `mkstemp`-style random suffix, six letters and digits among which
  a capital and a small letter or digit (`app.Xa3b9Z`, `app.q8W2mn` -> `app.*`, `sortAb12Cd`,
  `sortXy98Zw` -> `sort*`), else the runs of digits (`cpu0`, `cpu1` -> `cpu[0-9]*`).  A lone
  name collapses when its digits are the pid of a process that accessed it
  (`app-412.log` -> `app-[0-9]*.log`).  The subtrees of collapsed directories merge
  (`/tmp/app.*/data`).
- **Many siblings.**  When at least `MANY_SIBLINGS` entries of one directory, none of them a
  directory with recorded entries below it, were accessed with the same flags, they become
  `DIR/*`.

A single run cannot show that a random name changes from run to run: learn from several
runs.  Literal text is escaped (`\\*`), so a recorded `*` in a file name stays literal.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

#: Entries of one directory accessed with the same flags, from which on they become `DIR/*`.
MANY_SIBLINGS = 8
#: Characters with a meaning in globs (docs/language.md "Paths and globs").
_GLOB_SPECIAL = re.compile(r"([\\*?\[\]{},])")
_RANDOM_SUFFIX = re.compile(r"(?P<prefix>.+)(?P<random>[A-Za-z0-9]{6})")
_DIGITS = re.compile(r"[0-9]+")
_DIGIT_GLOB = "[0-9]*"


def literal(path: str) -> str:
    """The glob that matches exactly `path`."""
    return _GLOB_SPECIAL.sub(r"\\\1", path)


@dataclass(frozen=True)
class Seen:
    """What is known of one recorded path: the flags it was accessed with (a bit set) and the
    pids that accessed it."""

    mask: int
    pids: frozenset[int]


@dataclass
class _Node:
    """A path component: the recorded paths that end here and the components below it."""

    ends: list[str] = field(default_factory=list)  # original paths that end at this node
    masks: set[int] = field(default_factory=set)
    pids: set[int] = field(default_factory=set)
    children: dict[str, _Node] = field(default_factory=dict)

    def merge(self, other: _Node) -> None:
        self.ends += other.ends
        self.masks |= other.masks
        self.pids |= other.pids
        for name, child in other.children.items():
            if name in self.children:
                self.children[name].merge(child)
            else:
                self.children[name] = child


def collapse(paths: dict[str, Seen]) -> dict[str, str]:
    """Map every recorded absolute path to the glob that stands for it in the draft."""
    root = _Node()
    for path, seen in paths.items():
        node = root
        for name in path.strip("/").split("/") if path != "/" else []:
            node = node.children.setdefault(name, _Node())
        node.ends.append(path)
        node.masks.add(seen.mask)
        node.pids |= seen.pids
    result: dict[str, str] = {}
    _walk(root, "", result, is_root=True)
    return result


def _walk(node: _Node, prefix: str, result: dict[str, str], is_root: bool = False) -> None:
    for original in node.ends:
        result[original] = prefix or "/"
    globbed = _collapse_per_run(node.children)
    if not is_root:
        globbed = _collapse_siblings(globbed)
    for component, child in sorted(globbed.items()):
        _walk(child, f"{prefix}/{component}", result)


def _collapse_per_run(children: dict[str, _Node]) -> dict[str, _Node]:
    """Names -> glob components: alike names, and names holding their maker's pid, collapse."""
    groups: dict[str, list[str]] = {}
    for name in children:
        groups.setdefault(_skeleton(name), []).append(name)
    collapsed: dict[str, _Node] = {}
    for skeleton, names in groups.items():
        variable = skeleton != literal(names[0])
        for name in names:
            if variable and (len(names) > 1 or _holds_pid(name, children[name].pids)):
                component = skeleton
            else:
                component = literal(name)
            if component in collapsed:
                collapsed[component].merge(children[name])
            else:
                collapsed[component] = _copy(children[name])
    return collapsed


def _copy(node: _Node) -> _Node:
    fresh = _Node()
    fresh.merge(node)
    return fresh


def _skeleton(name: str) -> str:
    """The glob component a per-run name collapses to (its literal self when it has none)."""
    match = _RANDOM_SUFFIX.fullmatch(name)
    if match and re.search(r"[A-Z]", match["random"]) and re.search(r"[a-z0-9]", match["random"]):
        return literal(match["prefix"]) + "*"
    parts = _DIGITS.split(name)
    return _DIGIT_GLOB.join(literal(part) for part in parts)


def _holds_pid(name: str, pids: set[int]) -> bool:
    return any(int(digits) in pids for digits in _DIGITS.findall(name))


def _collapse_siblings(children: dict[str, _Node]) -> dict[str, _Node]:
    """Many leaf entries accessed with the same flags -> one `*` entry."""
    by_mask: dict[frozenset[int], list[str]] = {}
    for component, child in children.items():
        if not child.children:
            by_mask.setdefault(frozenset(child.masks), []).append(component)
    many = [
        c for components in by_mask.values() if len(components) >= MANY_SIBLINGS for c in components
    ]
    if not many:
        return children
    result = {c: n for c, n in children.items() if c not in many}
    star = result.setdefault("*", _Node())
    for component in many:
        star.merge(children[component])
    return result
