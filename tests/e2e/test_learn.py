"""bpfbox-learn against the kernel.

- Learning runs (`record`) of mylogin, drafted: the draft scopes the shadow accesses to the
  functions that made them (found by the recorder's stack scan: glibc's open64 breaks the
  kernel's frame-pointer walk), the recorded runs go through it without a denial, and `peek`
  (the same read from main()) is denied.
- A learning run of a distribution program (sort, built without frame pointers), drafted:
  the same run goes through, reading another file is denied.
- The edits `suggest` proposes for a run's denials, applied, make those denials go away when
  the same workload runs again under the edited policy.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from confined import BIN, BPFBOX_RUN, DATA, E2E, LOGS, Enforcing, install_tree, remove_tree, run
from timing import scaled

HERE = Path(__file__).parent
BPFBOX_LEARN = [sys.executable, "-m", "bpfbox.runtime.learn.cli"]
ETC = E2E / "etc"
ENV = {
    **os.environ,
    "MYLOGIN_PASSWD": str(ETC / "passwd"),
    "MYLOGIN_SHADOW": str(ETC / "shadow"),
}


pytestmark = pytest.mark.vm


@pytest.fixture
def tree():
    """The prepared /mnt/e2e tree, with the password files mylogin works on."""
    install_tree()
    try:
        ETC.mkdir(exist_ok=True)
        (ETC / "passwd").write_text("root:x:0:0\n")
        (ETC / "shadow").write_text("root:*:1\n")
        yield
    finally:
        remove_tree()


def learn(log: Path, *command: str, append: bool = False) -> subprocess.CompletedProcess:
    """`bpfbox-learn record`: returns once the command's tree has exited and every event
    of the run is in the log."""
    result = subprocess.run(
        [*BPFBOX_LEARN, "record", "-o", str(log), *(["--append"] if append else []), "--"]
        + list(command),
        env=ENV,
        capture_output=True,
        text=True,
        timeout=scaled(1200),
    )
    assert "LOST" not in result.stderr, result.stderr
    return result


def records(log: Path, kind: str) -> list[dict]:
    return [r for r in map(json.loads, log.read_text().splitlines()) if r["record"] == kind]


def draft(logs: list[Path], name: str) -> tuple[str, Path]:
    """The draft of `logs` (its text) and the C bpfboxc makes of it."""
    policy = LOGS / f"{name}.bpfbox"
    drafted = subprocess.run(
        [*BPFBOX_LEARN, "draft", *map(str, logs), "-o", str(policy)],
        capture_output=True,
        text=True,
        timeout=scaled(600),
    )
    assert drafted.returncode == 0, drafted.stderr
    compiled = LOGS / f"{name}.bpf.c"
    subprocess.run(
        [sys.executable, "-m", "bpfbox.compiler", str(policy), "-o", str(compiled)], check=True
    )
    return policy.read_text(), compiled


def under(compiled: Path, script: str) -> tuple[subprocess.CompletedProcess, list[dict]]:
    """Run `sh -c SCRIPT` under the compiled policy; its result and the deny events."""
    log = LOGS / f"{compiled.stem}-{len(list(LOGS.iterdir()))}.jsonl"
    result = subprocess.run(
        [*BPFBOX_RUN, str(compiled), "--log", str(log), "--log-format", "json", "--"]
        + ["sh", "-c", script],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=scaled(1200),
    )
    events = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return result, [e for e in events if e["event"] == "deny"]


def block(policy: str, function: str) -> str:
    """The body of the `#[func "FUNCTION"]` block of a draft."""
    match = re.search(rf'#\[func "{function}"\]\n#\[allow\] \{{\n(.*?)\n\}}', policy, re.S)
    assert match, policy
    return match.group(1)


def test_mylogin_learned_in_two_runs_gets_function_scopes(tree) -> None:
    log = LOGS / "mylogin.log"
    mylogin = str(BIN / "mylogin")
    check = learn(log, mylogin, "check", "root")
    assert check.returncode == 0, check.stderr
    add = learn(log, mylogin, "add", "alice", append=True)
    assert add.returncode == 0, add.stderr
    assert [r["command"] for r in records(log, "run")] == [
        [mylogin, "check", "root"],
        [mylogin, "add", "alice"],
    ]
    assert [r["lost"] for r in records(log, "end")] == [0, 0]
    shadow_reads = [r for r in records(log, "access") if r["object"] == str(ETC / "shadow")]
    assert shadow_reads and all(r["stack"] and r["stack_error"] is None for r in shadow_reads)
    # glibc's open64 keeps the path in rbp across openat, so the kernel's frame-pointer walk
    # stops in libc: the functions come from the recorder's scan of the stack's top.
    assert all(r["scanned"] for r in shadow_reads), shadow_reads
    policy, compiled = draft([log], "mylogin-draft")
    assert re.findall(r"#\[func \"(\w+)\"\]", policy) == ["add_user", "check_password"], policy
    assert f'fs("{ETC}/shadow", read)' in block(policy, "check_password"), policy
    assert f'fs("{ETC}/shadow", append)' in block(policy, "add_user"), policy
    assert "shadow" not in policy.split("#[func")[0], policy
    result, denials = under(
        compiled, f"{mylogin} check root; {mylogin} add carol; {mylogin} peek; echo end"
    )
    assert result.stdout.splitlines() == [
        f"read {ETC}/passwd: ok",
        f"read {ETC}/shadow: ok",
        f"append {ETC}/passwd: ok",
        f"append {ETC}/shadow: ok",
        f"read {ETC}/shadow: EPERM",
        "end",
    ], (
        result.stdout + result.stderr
    )
    assert [(d["object"], d["reason"]) for d in denials] == [
        (str(ETC / "shadow"), "outside_context")
    ], denials


def test_a_distribution_program_learned_runs_and_nothing_else(tree) -> None:
    DATA.mkdir()
    for name, text in (("a.txt", "pear\napple\n"), ("b.txt", "fig\n"), ("c.txt", "kiwi\n")):
        (DATA / name).write_text(text)
    log = LOGS / "sort.log"
    sort = shutil.which("sort")
    learned = learn(log, sort, str(DATA / "a.txt"), str(DATA / "b.txt"))
    assert learned.returncode == 0, learned.stderr
    assert learned.stdout.split() == ["apple", "fig", "pear"]
    policy, compiled = draft([log], "sort-draft")
    assert f'fs("{DATA}/a.txt", read)' in policy, policy
    assert "c.txt" not in policy, policy
    same, denials = under(compiled, f"{sort} {DATA}/a.txt {DATA}/b.txt")
    assert same.returncode == 0 and same.stdout.split() == ["apple", "fig", "pear"], same.stderr
    assert denials == []
    other, denials = under(compiled, f"{sort} {DATA}/c.txt")
    assert other.returncode != 0 and "kiwi" not in other.stdout, other.stdout
    # Its error message may look for message catalogs the run never needed: only the data
    # files matter here.
    assert [(d["object"], d["reason"]) for d in denials if str(DATA) in d["object"]] == [
        (str(DATA / "c.txt"), "no_rule")
    ], denials


def workload(env: dict[str, str]) -> list[str]:
    """What the test run does: one of each denial learn_narrow.bpfbox gives."""
    out = run("mylogin", "add", "bob", env=env)
    out += run("mylogin", "peek", env=env)
    out += run("mylogin", "check", "root", env={**env, "MYLOGIN_PASSWD": str(ETC / "passwd2")})
    return out


def test_applied_suggestions_make_the_denials_go_away(tree) -> None:
    record_apply_and_rerun()


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
    script = (
        f"{E2E}/bin/mylogin add carol; {E2E}/bin/mylogin peek; "
        f"MYLOGIN_PASSWD={ETC}/passwd2 {E2E}/bin/mylogin check root"
    )
    after, denials = under(compiled, script)
    assert "EPERM" not in after.stdout, after.stdout + after.stderr
    assert after.stdout.count(": ok") == 5, after.stdout + after.stderr
    assert denials == []
