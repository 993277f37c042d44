"""Known gaps: what a confined process can still do that no rule governs.

Each test asserts TODAY's behaviour of one LSM hook bpfbox does not use (found by walking
Linux 6.1's hook list against docs/language.md's promises) and names the gap it shows; every
one is written down in docs/language.md, "Limits and known gaps".  When a gap is closed, its
test fails: turn it into an enforcement test then.  The policy is tests/e2e/policies/
mediation.bpfbox (`base` and a few files under /mnt/e2e/data, no rule for `unruled`).
"""

from __future__ import annotations

import pytest
from confined import DATA, Enforcing, fresh_data, probe

pytestmark = [pytest.mark.vm, pytest.mark.usefixtures("installed_tree")]

UNRULED = DATA / "unruled"


@pytest.fixture(scope="module")
def session():
    fresh_data({"unruled": "no rule names this file"})
    with Enforcing("mediation") as running:
        yield running


def test_known_gap_access_tests_any_file(session):
    """inode_permission: access(2) tells whether any file exists and may be read."""
    assert probe(f"stat:{UNRULED}", f"access:{UNRULED}") == ["EPERM", "ok"]
    assert probe(f"access:{DATA / 'missing'}") == ["ENOENT"]
