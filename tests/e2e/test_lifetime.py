"""Profiles that live in the kernel, not in a process (issue 8), against a real BPF LSM.

Each test is an escape a confined program had before profiles were pinned, or a promise of
the lifetime rules (bpfbox-run --help): the profile is still enforced afterwards, and once
it is unloaded nothing of bpfbox is left in the kernel.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from confined import BIN, BPFBOX_RUN, DATA, MOUNT, fresh_data, policy

pytestmark = [pytest.mark.vm, pytest.mark.usefixtures("installed_tree")]

BPFBOX = [sys.executable, "-m", "bpfbox.runtime.manage"]
PROBE = str(BIN / "probe")
#: A profile is named after the program it confines: lifetime.bpfbox confines the probe,
#: lifetime_other.bpfbox its copy probe-other (names are C identifiers: probe_other).
NAME, OTHER = "probe", "probe_other"
SECRET = str(DATA / "secret")
PUBLIC = str(DATA / "public")


@pytest.fixture(autouse=True)
def clean_kernel():
    """Fresh data; afterwards no profile stays pinned, whatever the test did."""
    fresh_data({"secret": "secret\n", "public": "public\n"})
    yield
    subprocess.run([*BPFBOX, "unload", "--all"], capture_output=True, check=False)


class Background:
    """A bpfbox process in the background whose stderr lines are collected as they come."""

    def __init__(self, *argv: str, command: list[str] = BPFBOX_RUN) -> None:
        self.process = subprocess.Popen(
            [*command, *argv],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.process.stderr:
            with self._changed:
                self.lines.append(line)
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def wait_line(self, text: str, count: int = 1, timeout: float = 300) -> None:
        """Wait until `count` lines containing `text` arrived; fail if the process ends first."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while sum(text in line for line in self.lines) < count:
                left = deadline - time.monotonic()
                if left <= 0 or (self.process.poll() is not None and not self._reader.is_alive()):
                    pytest.fail(f"no {count}x {text!r} from {self.process.args}:\n{self.stderr}")
                self._changed.wait(min(left, 1))

    @property
    def stderr(self) -> str:
        return "".join(self.lines)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        status = self.process.wait(timeout=120)
        self._reader.join(timeout=10)
        return status


def probe(*ops: str, program: str = PROBE) -> list[str]:
    return subprocess.run(
        [program, *ops], stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120
    ).stdout.splitlines()


def bpfbox(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([*BPFBOX, *argv], capture_output=True, text=True, timeout=300)


def listed() -> dict[str, dict]:
    result = bpfbox("list", "--json")
    assert result.returncode == 0, result.stderr
    return {row["name"]: row for row in map(json.loads, result.stdout.splitlines())}


def bpfbox_programs(timeout: float = 30) -> list[str]:
    """bpfbox programs still loaded, waiting for the kernel's lazy free of unpinned ones."""
    deadline = time.monotonic() + timeout
    while True:
        out = subprocess.run(["bpftool", "-j", "prog", "show"], capture_output=True, text=True)
        names = [p.get("name", "") for p in json.loads(out.stdout or "[]")]
        left = [name for name in names if name.startswith("bpfbox_")]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.2)


def wait_for(condition, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.1)


def run_detach(compiled: Path, *options: str) -> subprocess.CompletedProcess[str]:
    """`bpfbox-run --detach [OPTIONS] COMPILED`, its output captured."""
    return subprocess.run(
        [*BPFBOX_RUN, "--detach", *options, str(compiled)],
        capture_output=True,
        text=True,
        timeout=300,
    )


def detach(policy_name: str = "lifetime", *options: str) -> None:
    result = run_detach(policy(policy_name), *options)
    assert result.returncode == 0, result.stderr


def test_a_child_outliving_the_command_stays_confined_then_everything_unloads():
    """The command forks a confined child and exits; the child's later read is denied."""
    out = MOUNT / "child.out"
    script = f"{PROBE} sleep:4000 open:r:{SECRET} open:r:{PUBLIC} > {out} 2>&1 &"
    result = subprocess.run(
        [*BPFBOX_RUN, str(policy("lifetime")), "--", "sh", "-c", script],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    # bpfbox-run returned only once the child had exited: its results are all there.
    assert out.read_text().splitlines() == ["ok", "EPERM", "ok"], result.stderr
    assert f"the command exited; {NAME} " in result.stderr
    assert listed() == {}
    assert bpfbox_programs() == []


def test_signal_64_cannot_kill_enforcement():
    """SIGRTMAX (64) was outside the signal hook's range: now it is denied, and would not
    unload anything anyway."""
    running = Background(str(policy("lifetime")))
    try:
        running.wait_line("enforcing")
        results = probe(f"kill:{running.process.pid}:64", f"open:r:{SECRET}")
        assert results == ["EPERM", "EPERM"], running.stderr
        assert running.process.poll() is None
    finally:
        assert running.stop() == 0, running.stderr
    assert bpfbox_programs() == []


def test_a_full_log_file_system_does_not_stop_enforcement():
    small = MOUNT / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "small", str(small)], check=True)
    try:
        log = small / "events.log"
        log.touch()
        filler = subprocess.run(
            ["dd", "if=/dev/zero", f"of={small / 'filler'}", "bs=4k"], capture_output=True
        )
        assert filler.returncode != 0, "the file system should be full"
        running = Background("--log", str(log), str(policy("lifetime")))
        try:
            running.wait_line("enforcing")
            assert probe(f"open:r:{SECRET}") == ["EPERM"]
            running.wait_line("cannot write events to")
            assert "ENOSPC" in running.stderr
            assert probe(f"open:r:{SECRET}", f"open:r:{SECRET}") == ["EPERM", "EPERM"]
            wait_for(lambda: listed()[NAME]["denials"] >= 3, "the denial counter")
            assert running.process.poll() is None, running.stderr
        finally:
            status = running.stop(signal.SIGINT)
        assert status == 0, running.stderr
        # Reported once, counted always.
        assert running.stderr.count("cannot write events to") == 1, running.stderr
        assert "event(s) could not be written to the log" in running.stderr
    finally:
        subprocess.run(["umount", "-l", str(small)], check=False)
    assert bpfbox_programs() == []


def test_kill_9_of_every_bpfbox_process_leaves_the_profile_enforcing():
    running = Background(str(policy("lifetime")))
    running.wait_line("enforcing")
    follower = Background("events", NAME, command=BPFBOX)
    follower.wait_line(f"following {NAME}")
    assert probe(f"open:r:{SECRET}") == ["EPERM"]
    for process in (running, follower):
        process.stop(signal.SIGKILL)
    assert probe(f"open:r:{SECRET}", f"open:r:{PUBLIC}") == ["EPERM", "ok"]
    assert listed()[NAME]["mode"] == "foreground"
    unloaded = bpfbox("unload", NAME)
    assert unloaded.returncode == 0, unloaded.stderr
    assert bpfbox_programs() == []
    assert probe(f"open:r:{SECRET}") == ["ok"]


def test_reloading_under_a_running_confined_loop_never_allows_a_forbidden_open():
    detach()
    out = MOUNT / "loop.out"
    # Until it is killed, once enough ran after the reloads: a loop of a fixed length ran out
    # before two reloads did on a host slowed 40 times.
    loop = subprocess.Popen(
        [PROBE, "forever", f"open:r:{SECRET}", "sleep:5"],
        stdin=subprocess.DEVNULL,
        stdout=out.open("w"),
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for(lambda: out.stat().st_size > 0, "the loop to start")
        for _ in range(2):
            detach()
        assert (
            loop.poll() is None
        ), "the loop died before the reloads ended: the test proves nothing"
        after = len(out.read_text().splitlines())
        wait_for(lambda: len(out.read_text().splitlines()) > after + 20, "opens after the reload")
    finally:
        loop.kill()
        loop.wait()
    results = out.read_text().splitlines()
    opens = results[0::2]
    assert opens and set(opens[:-1]) == {"EPERM"}, f"{opens.count('ok')} opens were allowed"
    # Still confined by the replacement: and the counters carried over.
    assert listed()[NAME]["denials"] >= len(opens) - 1


def test_replacing_with_an_incompatible_layout_is_refused():
    detach()
    # prepare.py built it: the same profile name, one more context slot in its task state.
    wider = policy("lifetime").parent / "variants" / "lifetime.bpf.o"
    result = run_detach(wider)
    assert result.returncode == 1, result.stderr
    assert f"cannot replace the loaded profile {NAME}: its tasks map" in result.stderr
    assert "help: the per-task state of the two versions is not compatible" in result.stderr
    assert probe(f"open:r:{SECRET}") == ["EPERM"]


def test_replacing_with_other_options_is_refused():
    """--reduce-repeats makes the repeats map longer: a replacement cannot share it."""
    detach()
    result = run_detach(policy("lifetime"), "--reduce-repeats")
    assert result.returncode == 1, result.stderr
    assert f"cannot replace the loaded profile {NAME}: its repeats map" in result.stderr
    assert "help: the loaded profile's maps were made for other options" in result.stderr
    assert probe(f"open:r:{SECRET}") == ["EPERM"]


def test_a_follower_reports_the_pending_repeats_of_a_profile_unloaded_under_it():
    """--detach --reduce-repeats: `bpfbox events` reports what the kernel still counts when
    the profile it follows is unloaded; with the first report, every denial is there."""
    opens = 50
    detach("lifetime", "--reduce-repeats")
    follower = Background("events", NAME, command=BPFBOX)
    follower.wait_line(f"following {NAME}")
    assert probe(*[f"open:r:{SECRET}"] * opens) == ["EPERM"] * opens
    follower.wait_line("denied probe[")
    unloaded = bpfbox("unload", NAME)
    assert unloaded.returncode == 0, unloaded.stderr
    follower.wait_line("a followed profile was unloaded")
    assert follower.stop() == 0, follower.stderr
    denials = [
        line for line in follower.lines if line.startswith("bpfbox: denied") and SECRET in line
    ]
    repeats = [re.search(r"; (\d+) more since the last report", line) for line in denials]
    reported = sum("denied probe[" in line for line in denials)
    assert reported + sum(int(m[1]) for m in repeats if m) == opens, follower.stderr


def test_service_mode_loads_reloads_and_outlives_its_process():
    directory = MOUNT / "bpfbox.d"
    directory.mkdir()
    shutil.copy(policy("lifetime"), directory)
    service = Background("--service", str(directory))
    try:
        service.wait_line(f"service: enforcing {NAME} ")
        assert probe(f"open:r:{SECRET}") == ["EPERM"]
        shutil.copy(policy("lifetime_other"), directory)
        service.process.send_signal(signal.SIGHUP)
        service.wait_line("service: enforcing", count=2)
        assert sorted(listed()) == [NAME, OTHER]
        assert {row["mode"] for row in listed().values()} == {"service"}
        (directory / "lifetime.bpf.o").unlink()
        service.process.send_signal(signal.SIGHUP)
        service.wait_line("service: enforcing", count=3)
        assert sorted(listed()) == [OTHER]
        assert probe(f"open:r:{SECRET}") == ["ok"]
    finally:
        assert service.stop() == 0, service.stderr
    assert "the profiles stay loaded" in service.stderr
    assert probe(f"open:r:{SECRET}", program=str(BIN / "probe-other")) == ["EPERM"]
    assert bpfbox("unload", "--all").returncode == 0
    assert bpfbox_programs() == []
