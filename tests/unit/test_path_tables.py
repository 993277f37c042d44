"""The path rules' tables (codegen.path_tables) decide what one `if` per rule decided.

The generated program once had, per path kind, one `if (fs_has(state, GLOB)) apply(...)` per
rule, in rule order.  It now walks the records of the final state's row
(codegen_templates/bpf/rules.bpf.h).  Both are replayed here in Python over the same DFA, with
the same apply() (verdict.bpf.h's), on random policies (deny, taint, audit, contexts, `ioctl`
rules and the fs rules they absorb), paths, requests and sets of contexts the thread is in:
the decisions, masks and first rules named must be equal.  The table walk visits a row's
records from the last, each overwriting the rule it names (as rules.bpf.h does, since kernels
before 6.8 verify a bpf_loop callback for its first iteration only).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import pytest
from bpfbox.compiler import codegen, language
from bpfbox.compiler.ir import Program
from bpfbox.contract import abi

from .helpers import compile_text
from .test_glob import GLOB_COMPONENTS, PATH_COMPONENTS

FS_FLAGS = list(abi.FS_FLAGS)
IOCTL_COMMANDS = list(abi.IOCTL_FLAGS)[:6] + list(abi.IOCTL_DANGEROUS)[:2]
#: The contexts of /sbin/mylogin in the golden root.
FUNCTIONS = ("check_password", "add_user")


@dataclass
class Decision:
    """struct decision: masks and the rule named for each."""

    masks: dict[str, int] = field(default_factory=dict)
    first: dict[str, int] = field(default_factory=dict)

    def note(self, what: str, rule: int, flags: int, last_wins: bool) -> None:
        """verdict.bpf.h's note_rule()."""
        self.masks[what] = self.masks.get(what, 0) | flags
        if last_wins or what not in self.first:
            self.first[what] = rule


def apply(
    d: Decision,
    req: int,
    rule: int,
    decision: int,
    audit: int,
    flags: int,
    held: bool,
    last_wins: bool,
) -> None:
    """verdict.bpf.h's apply()."""
    if not flags & req:
        return
    if not held:
        if decision == abi.Decision.ALLOW:
            d.note("inactive", rule, flags, last_wins)
        return
    if audit:
        d.note("audit", rule, flags, last_wins)
    what = {abi.Decision.ALLOW: "allow", abi.Decision.DENY: "deny", abi.Decision.TAINT: "taint"}
    if decision in what:
        d.note(what[decision], rule, flags, last_wins)


def one_if_per_rule(program: Program, kind_name: str, path: bytes, req: int, inside: set[int]):
    kind = language.RULE_KINDS[kind_name]
    matched = program.fs_globs.dfa.match(path)
    d = Decision()
    rules = program.rules_of(kind.name) + program.absorbed(kind.name)
    for rule in sorted(rules, key=lambda r: r.id):
        if program.fs_globs.index(rule.path) in matched:
            held = all(any(i in inside for i in clause) for clause in rule.contexts)
            granted = codegen._granted(rule, kind)
            apply(d, req, rule.id, rule.decision, rule.audit, granted, held, last_wins=False)
    return d


def from_tables(program: Program, kind_name: str, path: bytes, req: int, inside: set[int]):
    tables = codegen.path_tables(program)
    dfa = program.fs_globs.dfa
    _, row_of = dfa.accept_rows
    state = 1
    for byte in path:
        state = dfa.transitions[state][dfa.classes[byte]]
        if state == 0:
            break
    kind = [k.name for k in tables.kinds].index(kind_name)
    slot = row_of[state] * len(tables.kinds) + kind
    first, count = tables.slices[2 * slot], tables.slices[2 * slot + 1]
    inside_mask = sum(1 << i for i in inside)
    d = Decision()
    for member in reversed(tables.members[first : first + count]):
        flags, rule, decision, audit, clauses, clause, _ = codegen._PATH_RULE.unpack(
            tables.records[member]
        )
        held = all(tables.clauses[clause + i] & inside_mask for i in range(clauses))
        apply(d, req, rule, decision, audit, flags, held, last_wins=True)
    return d


def random_policy(rng: random.Random) -> str:
    lines = ['#![profile "/sbin/mylogin"]']
    for _ in range(rng.randint(1, 25)):
        glob = "/" + "/".join(rng.choices(GLOB_COMPONENTS, k=rng.randint(1, 3)))
        directives = []
        if rng.random() < 0.4:
            directives.append(rng.choice(["#[deny]", "#[taint]", "#[allow]"]))
        if rng.random() < 0.2:
            directives.append("#[audit]")
        if rng.random() < 0.3:
            directives.append(f'#[func "{rng.choice(FUNCTIONS)}"]')
        if rng.random() < 0.2:
            rule = f'ioctl("{glob}", {"|".join(rng.sample(IOCTL_COMMANDS, 2))})'
        else:
            rule = f'fs("{glob}", {"|".join(rng.sample(FS_FLAGS, rng.randint(1, 3)))})'
        rule = " ".join(directives + [rule])
        # Some rules in a block with a context of its own: two clauses.
        if rng.random() < 0.15:
            rule = f'#[func "{rng.choice(FUNCTIONS)}"] {{\n{rule}\n}}'
        lines.append(rule)
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("seed", range(40))
def test_tables_decide_as_one_if_per_rule(seed: int) -> None:
    rng = random.Random(seed)
    compilation = compile_text(random_policy(rng))
    program = compilation.program
    assert program is not None, compilation.diagnostics.sorted()
    contexts = [c.index for c in program.contexts]
    paths = [
        ("/" + "/".join(rng.choices(PATH_COMPONENTS, k=rng.randint(1, 4)))).encode()
        for _ in range(60)
    ]
    for path in paths:
        for kind in ("fs", "ioctl"):
            flags = language.RULE_KINDS[kind].flags.bits
            req = sum(rng.sample(list(flags.values()), rng.randint(1, 2)))
            inside = {i for i in contexts if rng.random() < 0.5}
            expected = one_if_per_rule(program, kind, path, req, inside)
            assert from_tables(program, kind, path, req, inside) == expected, (path, kind)


def test_the_random_policies_exercise_every_outcome() -> None:
    """The policies above reach every part of a decision (else they prove little)."""
    seen = set()
    for seed in range(40):
        rng = random.Random(seed)
        program = compile_text(random_policy(rng)).program
        for path in PATH_COMPONENTS:
            for kind in ("fs", "ioctl"):
                for req in language.RULE_KINDS[kind].flags.bits.values():
                    inside = {c.index for c in program.contexts if rng.random() < 0.5}
                    seen |= set(
                        one_if_per_rule(program, kind, f"/{path}".encode(), req, inside).masks
                    )
    assert seen == {"allow", "deny", "taint", "audit", "inactive"}
