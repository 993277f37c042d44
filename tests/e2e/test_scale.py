"""Policies of 1,000 and 10,000 fs rules load and enforce (tests/e2e/many_rules.py, compiled by
prepare.py).  Rules at both ends of the policy are checked, each answer against what the
rule says, and the events name the rule responsible: the tables the program decides from
must hold every rule, in order.  And a policy whose automaton's rows span two maps walks
through both.  Slow (the objects are megabytes of tables), one load each.
"""

from __future__ import annotations

import many_rules
import pytest
from confined import DATA, Enforcing, fresh_data, install_tree, probe, remove_tree

pytestmark = pytest.mark.vm

ROOT = str(DATA)


@pytest.fixture(scope="module", autouse=True)
def tree():
    install_tree()
    yield
    remove_tree()


def _files(rules: int) -> dict[str, str]:
    """For the first and last rules of each sort: the files they name, and one they do not."""
    files = {}
    for i in _checked(rules):
        folder = many_rules.directory(i, ROOT)[len(ROOT) + 1 :]
        for name in (f"file{i}.txt", "x/y/a.conf", "secret.txt", "other.txt"):
            files[f"{folder}/{name}"] = ""
    return files


def _checked(rules: int) -> list[int]:
    """The first two and the last two rules of each sort."""
    by_kind: dict[str, list[int]] = {}
    for i in range(rules):
        by_kind.setdefault(many_rules.kind(i), []).append(i)
    return sorted({i for found in by_kind.values() for i in (*found[:2], *found[-2:])})


class ManyRules:
    rules: int

    @pytest.fixture(scope="class")
    def session(self):
        fresh_data(_files(self.rules))
        with Enforcing(f"many{self.rules}") as running:
            yield running

    def test_each_rule_decides_its_paths(self, session):
        for i in _checked(self.rules):
            folder = many_rules.directory(i, ROOT)
            kind = many_rules.kind(i)
            ops = [
                f"open:r:{folder}/file{i}.txt",
                f"open:w:{folder}/file{i}.txt",
                f"open:r:{folder}/x/y/a.conf",
                f"open:w:{folder}/x/y/a.conf",
                f"open:r:{folder}/secret.txt",
                f"open:r:{folder}/other.txt",
            ]
            expected = {
                "literal": ["ok", "EPERM", "EPERM", "EPERM", "EPERM", "EPERM"],
                "glob": ["EPERM", "EPERM", "ok", "ok", "EPERM", "EPERM"],
                "deny": ["EPERM"] * 6,
            }[kind]
            assert probe(*ops) == expected, f"rule {i} ({kind})"

    def test_events_name_the_rule(self, session):
        last_deny = max(i for i in _checked(self.rules) if many_rules.kind(i) == "deny")
        last_literal = max(i for i in _checked(self.rules) if many_rules.kind(i) == "literal")
        secret = f"{many_rules.directory(last_deny, ROOT)}/secret.txt"
        literal = f"{many_rules.directory(last_literal, ROOT)}/file{last_literal}.txt"
        # Read and write: the rule grants the read, so the event names it (partial grant).
        assert probe(f"open:r:{secret}", f"open:rw:{literal}") == ["EPERM", "EPERM"]
        for path, reason, rule in (
            (secret, "denied_by_rule", last_deny),
            (literal, "partial_grant", last_literal),
        ):
            # test_each_rule_decides_its_paths denied a write alone on the same file before
            # (no_rule): this access's event is the one with this reason.
            events = session.wait_for(
                lambda e, p=path, r=reason: e["object"] == p and e["reason"] == r
            )
            assert events, f"no {reason} event for {path}: {session.events()[-5:]}"
            assert events[0]["event"] == "deny"
            assert events[0]["rule"]["line"] == many_rules.FIRST_LINE + rule


class TestThousandRules(ManyRules):
    rules = 1000


class TestTenThousandRules(ManyRules):
    rules = 10000


def branching_checked() -> list[int]:
    """The rules of many_rules.branching() checked: every thousandth and the last, whose
    rows lie in both maps (tests/unit/test_scale_coverage.py)."""
    rules = many_rules.BRANCHING_RULES
    return [*range(0, rules, 1000), rules - 1]


def branching_folder(i: int) -> str:
    return f"b/{many_rules.branch_name(i)}"


class TestRowsOverTwoMaps:
    @pytest.fixture(scope="class")
    def session(self):
        fresh_data({f"{branching_folder(i)}/{n}": "" for i in branching_checked() for n in "abc"})
        with Enforcing("branching") as running:
            yield running

    def test_each_rule_decides_its_paths(self, session):
        for i in branching_checked():
            folder = f"{ROOT}/{branching_folder(i)}"
            ops = [f"open:r:{folder}/a", f"open:r:{folder}/b", f"open:r:{folder}/c"]
            assert probe(*ops) == ["ok", "ok", "EPERM"], f"rule {i}"
