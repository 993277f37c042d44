"""Policies with many fs rules, for the scale benchmark (bench_scale.py), the kernel test
that loads one (test_scale.py) and `make bench` (bench.py, also as AppArmor rules); and
`branching()`, a policy whose automaton's stored rows fill more than one map.

Rule i names its own directory ROOT/dNNNNN (ROOT: /srv, or the tests' data folder): even i
a literal file, odd i a glob (`ROOT/dNNNNN/**/*.conf`), every tenth a deny rule
(`ROOT/dNNNNN/secret*`), and with `contexts` every seventh is limited to a `#[func]`
context.  Rule i is on line FIRST_LINE + i.  The rules are distinct, so the glob DFA grows
with their number as a real policy's would.
"""

from __future__ import annotations

import string

#: The profile of generated policies: the tests' probe (reads and writes paths it is given).
PROBE = "/mnt/e2e/bin/probe"
#: A profile with probed functions (tests/e2e/programs/funcs.c), for `contexts`.
FUNCS = "/mnt/e2e/bin/funcs-pie"


#: The line of the first generated rule.
FIRST_LINE = 4


def directory(i: int, root: str = "/srv") -> str:
    return f"{root}/d{i:05}"


def literal(i: int, root: str = "/srv") -> str:
    return f"{directory(i, root)}/file{i}.txt"


def glob(i: int, root: str = "/srv") -> str:
    return f"{directory(i, root)}/**/*.conf"


def denied(i: int, root: str = "/srv") -> str:
    return f"{directory(i, root)}/secret*"


def kind(i: int) -> str:
    """What rule i is: "deny", "literal" (read|getattr) or "glob" (read|write)."""
    return "deny" if i % 10 == 9 else "literal" if i % 2 == 0 else "glob"


def policy(rules: int, contexts: bool = False, root: str = "/srv") -> str:
    """A policy of `rules` generated fs rules (deny rules included)."""
    profile = FUNCS if contexts else PROBE
    lines = [
        f"// {rules} generated fs rules (tests/e2e/many_rules.py)",
        f'#![profile "{profile}"]',
        '#![include "base"]',
    ]
    assert len(lines) == FIRST_LINE - 1
    return "\n".join(lines + rule_lines(rules, contexts, root)) + "\n"


def rule_lines(rules: int, contexts: bool = False, root: str = "/srv") -> list[str]:
    """The `rules` generated fs rules, one line each."""
    lines = []
    for i in range(rules):
        rule = {
            "deny": f'#[deny] fs("{denied(i, root)}", read)',
            "literal": f'fs("{literal(i, root)}", read|getattr)',
            "glob": f'fs("{glob(i, root)}", read|write)',
        }[kind(i)]
        if contexts and i % 7 == 3:
            rule = f'#[func "gate"] {rule}'
        lines.append(rule)
    return lines


def apparmor_rules(rules: int, root: str = "/srv") -> list[str]:
    """The same rules in an AppArmor profile's syntax, for `make bench`'s comparison.  The globs
    are spelt alike (in both, `**` spans directories); AppArmor does not mediate stat(), so
    getattr has no counterpart."""
    return [
        {
            "deny": f"deny {denied(i, root)} r,",
            "literal": f"{literal(i, root)} r,",
            "glob": f"{glob(i, root)} rw,",
        }[kind(i)]
        for i in range(rules)
    ]


#: The characters of branching()'s directory names: 80 distinct bytes, each a byte class of
#: its own, so that a stored row is wide (a class, 4 bytes) and a map holds fewer of them.
NAME_ALPHABET = string.ascii_letters + string.digits + "!#%&()+-.:;<=>@^_~"
#: branching()'s rules in the kernel test: their rows need two maps (glob.rows_per_shard).
BRANCHING_RULES = 16000


def branch_name(i: int) -> str:
    """Rule i's directory in branching(): three characters of NAME_ALPHABET."""
    name = ""
    for _ in range(3):
        i, digit = divmod(i, len(NAME_ALPHABET))
        name += NAME_ALPHABET[digit]
    return name


def branching(rules: int, root: str = "/srv") -> str:
    """A policy whose rule i grants reading `ROOT/b/NAME/a` and `ROOT/b/NAME/b`: after `NAME/`
    the automaton has two ways on, a row of its own for each rule."""
    lines = [
        f"// {rules} generated fs rules, each with two ways on (tests/e2e/many_rules.py)",
        f'#![profile "{PROBE}"]',
        '#![include "base"]',
    ]
    lines += [f'fs("{root}/b/{branch_name(i)}/{{a,b}}", read)' for i in range(rules)]
    return "\n".join(lines) + "\n"
