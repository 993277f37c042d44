"""Helpers of the policy tests: the prepared /mnt/e2e tree, bpfbox-run sessions, probes.

tests/e2e/prepare.py built the programs and compiled tests/e2e/policies on the host;
`install_tree` puts them where the policies say (/mnt/e2e, on a tmpfs of its own), and
`Enforcing` runs `bpfbox-run` on compiled policies in the background while a test runs
programs under them.
"""

from __future__ import annotations

import json
import os
import pty
import re
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from timing import scaled

REPO = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("BPFBOX_E2E_BUILD", REPO / "build" / "e2e"))
MOUNT = Path("/mnt")
E2E = MOUNT / "e2e"
BIN = E2E / "bin"
DATA = E2E / "data"
LOGS = MOUNT / "logs"
BPFBOX_RUN = [sys.executable, "-m", "bpfbox.runtime.cli"]


def install_tree() -> None:
    """Mount a tmpfs on /mnt and copy the prepared tree into it."""
    prepared = BUILD / "root" / "mnt" / "e2e"
    if not prepared.is_dir():
        raise RuntimeError(f"{prepared} is missing: run `python tests/e2e/prepare.py` first")
    subprocess.run(["mount", "-t", "tmpfs", "bpfbox-e2e", str(MOUNT)], check=True)
    shutil.copytree(prepared, E2E, symlinks=True)
    LOGS.mkdir()


def remove_tree() -> None:
    subprocess.run(["umount", "-l", str(MOUNT)], check=False)


def fresh_data(files: dict[str, str] | None = None, dirs: tuple[str, ...] = ()) -> None:
    """Recreate /mnt/e2e/data with `files` (name: content) and `dirs`."""
    shutil.rmtree(DATA, ignore_errors=True)
    DATA.mkdir()
    for name in dirs:
        (DATA / name).mkdir(parents=True)
    for name, content in (files or {}).items():
        path = DATA / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)


def policy(name: str) -> Path:
    """The compiled object of tests/e2e/policies/NAME.bpfbox."""
    path = BUILD / "policies" / f"{name}.bpf.o"
    if not path.exists():
        raise RuntimeError(f"{path} is missing: run `python tests/e2e/prepare.py` first")
    return path


class Enforcing:
    """`bpfbox-run POLICY...` in the background, with its events logged as JSON."""

    def __init__(
        self, *names: str, options: tuple[str, ...] = (), env: dict[str, str] | None = None
    ) -> None:
        self.names = names
        #: The environment bpfbox-run runs in (None: this process's).
        self.env = env
        self.log = LOGS / f"{'+'.join(names)}-{time.monotonic_ns()}.jsonl"
        self.command = [
            *BPFBOX_RUN,
            *(str(policy(n)) for n in names),
            "--log",
            str(self.log),
            "--log-format",
            "json",
            *options,
        ]
        self.stderr_lines: list[str] = []
        self.process: subprocess.Popen | None = None
        self._reader: threading.Thread | None = None
        self._ready = threading.Event()
        self._enforcing = False
        #: Seconds from bpfbox-run's start to its "enforcing" line (`make bench` reports it).
        self.startup_seconds = 0.0

    def __enter__(self) -> Enforcing:
        started = time.monotonic()
        self.process = subprocess.Popen(
            self.command,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()
        # Set by the "enforcing" line, or by the end of stderr (bpfbox-run exited): only the
        # line means it enforces.
        if not self._ready.wait(timeout=scaled(300)) or not self._enforcing:
            self.stop()
            raise RuntimeError("bpfbox-run did not start enforcing:\n" + self.stderr)
        self.startup_seconds = time.monotonic() - started
        return self

    def _read_stderr(self) -> None:
        for line in self.process.stderr:
            self.stderr_lines.append(line)
            if line.startswith("bpfbox-run: enforcing "):
                self._enforcing = True
                self._ready.set()
        self._ready.set()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def stop(self) -> int:
        """SIGINT, as a user's Ctrl-C; returns bpfbox-run's exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        status = self.process.wait(timeout=scaled(120))
        self._reader.join(timeout=scaled(10))
        return status

    @property
    def stderr(self) -> str:
        return "".join(self.stderr_lines)

    def events(self) -> list[dict]:
        """The events logged so far: bpfbox-run may be writing the last line, so only lines
        ended by a newline count."""
        if not self.log.exists():
            return []
        *complete, _partial = self.log.read_text().split("\n")
        return [json.loads(line) for line in complete if line.strip()]

    def wait_for(self, predicate, timeout: float = 20) -> list[dict]:
        """Events matching `predicate`, waiting for the ring buffer to be polled."""
        deadline = time.monotonic() + scaled(timeout)
        while True:
            found = [e for e in self.events() if predicate(e)]
            if found or time.monotonic() > deadline:
                return found
            time.sleep(0.2)

    def wait_for_all(self, kind: str, field: str, expected: set, timeout: float = 30) -> set:
        """Wait until events of `kind` have covered every value in `expected` for `field`
        (events of one access arrive in order, but a test's accesses may be polled in two
        batches); returns the values seen."""
        deadline = time.monotonic() + scaled(timeout)
        while True:
            seen = {_hashable(e[field]) for e in self.events() if e["event"] == kind}
            if seen >= expected or time.monotonic() > deadline:
                return seen
            time.sleep(0.2)

    def wait_for_count(self, predicate, count: int, timeout: float = 60) -> list[dict]:
        """Events matching `predicate` once there are `count` of them (or a `lost` record
        says some never will come), or all there are at the timeout."""
        deadline = time.monotonic() + scaled(timeout)
        while True:
            events = self.events()
            found = [e for e in events if predicate(e)]
            lost = any(e["event"] == "lost" for e in events)
            if len(found) >= count or lost or time.monotonic() > deadline:
                return found
            time.sleep(0.2)

    def wait_for_message(self, pattern: str, timeout: float = 20) -> str:
        """The first event message matching `pattern` (a regex), or ''.

        Messages go to the log as the `message` field (--log), else to stderr."""
        deadline = time.monotonic() + scaled(timeout)
        while True:
            messages = [e["message"] for e in self.events()] + self.stderr_lines
            for line in messages:
                if re.search(pattern, line):
                    return line
            if time.monotonic() > deadline:
                return ""
            time.sleep(0.2)


def _hashable(value):
    return tuple(value) if isinstance(value, list) else value


def run(program: str | Path, *args: str, env: dict | None = None, timeout: float = 60) -> list[str]:
    """Run a program (a name in /mnt/e2e/bin, or a path); its stdout lines."""
    path = program if Path(program).is_absolute() else BIN / program
    result = subprocess.run(
        [str(path), *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=scaled(timeout),
        env=env,
    )
    return result.stdout.splitlines()


def probe(*ops: str, program: str = "probe") -> list[str]:
    """Run the probe with `ops`; one result (`ok` or an errno name) per operation."""
    return run(program, *ops)


def start_target(name: str = "target") -> subprocess.Popen:
    """An unconfined copy of the probe that sleeps, to be signalled, traced or inspected."""
    return start_sleeping(BIN / name)


def start_sleeping(program: Path) -> subprocess.Popen:
    """The probe `program` sleeping, returned once it runs the program (a rule on targets, or
    bpfbox-run's look for processes already running a profile, matches the program, not
    Python's fork of itself before the exec)."""
    process = subprocess.Popen(
        [str(program), "sleep:600000"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL
    )
    deadline = time.monotonic() + scaled(20)
    while _exe(process.pid) != str(program):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"{program} did not start (status {process.wait()})")
        time.sleep(0.02)
    return process


def _exe(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return None


def on_terminal(*ops: str) -> tuple[list[str], bytes]:
    """The probe with a new pseudo-terminal as its controlling terminal and standard input
    (opened after setsid, so that the kernel makes it the controlling one without
    TIOCSCTTY); its results, and what the terminal echoed."""
    controller, terminal = pty.openpty()
    name = os.ttyname(terminal)

    def become_session_leader_on_the_terminal() -> None:
        os.setsid()
        fd = os.open(name, os.O_RDWR)
        os.dup2(fd, 0)

    try:
        result = subprocess.run(
            [str(BIN / "probe"), *ops],
            preexec_fn=become_session_leader_on_the_terminal,
            capture_output=True,
            text=True,
            timeout=scaled(60),
        )
        echoed = b""
        while select.select([controller], [], [], 0.5)[0]:
            try:
                echoed += os.read(controller, 1024)
            except OSError:
                break
        return result.stdout.splitlines(), echoed
    finally:
        os.close(controller)
        os.close(terminal)
