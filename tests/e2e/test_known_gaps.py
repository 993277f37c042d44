"""Known gaps: what a confined process can still do that no rule governs, and what it is
refused that the kernel alone would allow.

Each test asserts TODAY's behaviour (of an LSM hook bpfbox does not use, found by walking
Linux 6.1's hook list against docs/language.md's promises, or of a case bpfbox fails closed
on) and names the gap it shows; every one is written down in docs/language.md, "Limits and
known gaps".  When a gap is closed, its test fails: turn it into an enforcement test then.
The policy is tests/e2e/policies/mediation.bpfbox (`base` and a few files under
/mnt/e2e/data, no rule for `unruled`).
"""

from __future__ import annotations

import os
import shutil
import subprocess

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


def test_known_gap_an_overlay_in_an_overlays_lower_layers(session):
    """An overlay among another overlay's lower layers looks names up with its own mounter's
    credentials, neither the task's nor the outer overlay's: its CAP_SYS_ADMIN check for
    reading trusted.overlay.* is taken for the task's and refused, and the walk through it
    fails (fail closed: the kernel's answer, for everyone else, stays ENOENT)."""
    layers = DATA.parent / "nested"
    shutil.rmtree(layers, ignore_errors=True)
    (layers / "lower" / "dir").mkdir(parents=True)
    (layers / "lower" / "dir" / "removed").write_text("removed in the inner overlay's upper layer")
    for name in ("upper/dir", "work", "inner", "outer-upper", "outer-work"):
        (layers / name).mkdir(parents=True)
    os.setxattr(layers / "upper" / "dir", "trusted.overlay.opaque", b"y")
    inner, outer = layers / "inner", DATA / "tree" / "nested"
    outer.mkdir(parents=True)
    mounts = [
        (inner, f"lowerdir={layers}/lower,upperdir={layers}/upper,workdir={layers}/work"),
        (outer, f"lowerdir={inner},upperdir={layers}/outer-upper,workdir={layers}/outer-work"),
    ]
    for point, options in mounts:
        subprocess.run(["mount", "-t", "overlay", "overlay", "-o", options, point], check=True)
    try:
        assert probe(f"stat:{outer / 'dir' / 'removed'}") == ["EPERM"]
        assert not os.path.exists(outer / "dir" / "removed")
        assert not os.path.exists(inner / "dir" / "removed")
    finally:
        for point, _ in reversed(mounts):
            subprocess.run(["umount", point], check=True)
        outer.rmdir()
        shutil.rmtree(layers)
