"""Policies with many fs rules, for the scale benchmark (bench_scale.py) and the kernel test
that loads one (test_scale.py).

Rule i names its own directory /srv/dNNNNN: even i a literal file, odd i a glob
(`/srv/dNNNNN/**/*.conf`), every tenth a deny rule under it, and with `contexts` every
seventh is limited to a `#[func]` context.  The rules are distinct, so the glob DFA grows
with their number as a real policy's would.
"""

from __future__ import annotations

#: The profile of generated policies: the tests' probe (reads and writes paths it is given).
PROBE = "/mnt/e2e/bin/probe"
#: A profile with probed functions (tests/e2e/programs/funcs.c), for `contexts`.
FUNCS = "/mnt/e2e/bin/funcs-pie"


def literal(i: int) -> str:
    return f"/srv/d{i:05}/file{i}.txt"


def glob(i: int) -> str:
    return f"/srv/d{i:05}/**/*.conf"


def denied(i: int) -> str:
    return f"/srv/d{i:05}/secret*"


def policy(rules: int, contexts: bool = False, extra: str = "") -> str:
    """A policy of `rules` generated fs rules (deny rules included), then `extra` lines."""
    profile = FUNCS if contexts else PROBE
    lines = [
        f"// {rules} generated fs rules (tests/e2e/many_rules.py)",
        f'#![profile "{profile}"]',
        '#![include "base"]',
    ]
    for i in range(rules):
        if i % 10 == 9:
            rule = f'#[deny] fs("{denied(i)}", read)'
        elif i % 2 == 0:
            rule = f'fs("{literal(i)}", read|getattr)'
        else:
            rule = f'fs("{glob(i)}", read|write)'
        if contexts and i % 7 == 3:
            rule = f'#[func "gate"] {rule}'
        lines.append(rule)
    return "\n".join(lines) + "\n" + extra
