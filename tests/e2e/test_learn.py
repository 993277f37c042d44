"""bpfbox-learn against the kernel: the edits `suggest` proposes for a run's denials, applied,
make those denials go away when the same workload runs again under the edited policy.

The learning run itself (drafting from a recorded run) is not implemented yet; see
docs/writing-policies.md.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from confined import BPFBOX_RUN, E2E, LOGS, Enforcing, install_tree, remove_tree, run

HERE = Path(__file__).parent
BPFBOX_LEARN = [sys.executable, "-m", "bpfbox.runtime.learn.cli"]
ETC = E2E / "etc"
ENV = {
    **os.environ,
    "MYLOGIN_PASSWD": str(ETC / "passwd"),
    "MYLOGIN_SHADOW": str(ETC / "shadow"),
}


pytestmark = pytest.mark.vm


def workload(env: dict[str, str]) -> list[str]:
    """What the test run does: one of each denial learn_narrow.bpfbox gives."""
    out = run("mylogin", "add", "bob", env=env)
    out += run("mylogin", "peek", env=env)
    out += run("mylogin", "check", "root", env={**env, "MYLOGIN_PASSWD": str(ETC / "passwd2")})
    return out


def test_applied_suggestions_make_the_denials_go_away() -> None:
    install_tree()
    try:
        record_apply_and_rerun()
    finally:
        remove_tree()


def record_apply_and_rerun() -> None:
    """Record the denials, accept every edit, run again under the edited policy."""
    ETC.mkdir(exist_ok=True)
    for name, text in (("passwd", "root:x:0:0\n"), ("passwd2", "root:x:0:0\n")):
        (ETC / name).write_text(text)
    (ETC / "shadow").write_text("root:*:1\n")
    with Enforcing("learn_narrow", options=("--complain",)) as session:
        workload(ENV)
        objects = {str(ETC / "passwd"), str(ETC / "shadow"), str(ETC / "passwd2")}
        assert session.wait_for_all("complain", "object", objects) >= objects
    policy = LOGS / "learn_narrow.bpfbox"
    shutil.copy(HERE / "policies" / "learn_narrow.bpfbox", policy)
    suggested = subprocess.run(
        [*BPFBOX_LEARN, "suggest", "--apply", "--log", str(session.log), str(policy)],
        input="y\n" * 20,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert suggested.returncode == 0, suggested.stderr
    assert re.search(r"applied ([1-9]\d*) of \1 edits", suggested.stdout), suggested.stdout
    compiled = LOGS / "learn_narrow.bpf.c"
    subprocess.run(
        [sys.executable, "-m", "bpfbox.compiler", str(policy), "-o", str(compiled)], check=True
    )
    log = LOGS / "after.jsonl"
    script = (
        f"{E2E}/bin/mylogin add carol; {E2E}/bin/mylogin peek; "
        f"MYLOGIN_PASSWD={ETC}/passwd2 {E2E}/bin/mylogin check root"
    )
    after = subprocess.run(
        [*BPFBOX_RUN, str(compiled), "--log", str(log), "--log-format", "json", "--"]
        + ["sh", "-c", script],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert "EPERM" not in after.stdout, after.stdout + after.stderr
    assert after.stdout.count(": ok") == 5, after.stdout + after.stderr
    denials = [line for line in log.read_text().splitlines() if '"deny"' in line]
    assert denials == []
