"""A watchdog for the VM suite: what the guest was doing when a test stopped making progress.

Every wait in the tests has a timeout, yet a test can still hang: `subprocess.run` kills a
child whose timeout expired and then waits for it without a limit, and a process the kernel
cannot wake (state D) never dies.  Without the watchdog the host's timeout kills the whole VM
and all that is left is the name of the test.  With it, a test running longer than
STALL_SECONDS (scaled by the VM's slowness) gets the guest's state written to DIR/stall
(DIR is BPFBOX_VM_RESULTS) and to stderr: every process with its state and kernel wait
channel, the kernel stacks of the blocked ones and of bpfbox's own, the Python stacks of the
test run, and the kernel log's tail.  The suite then ends with STALL_STATUS, so the host goes
on with the next group instead of waiting out its timeout.
"""

from __future__ import annotations

import faulthandler
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from timing import scaled, worst

#: Idle-machine seconds a single test (setup, call and teardown) may take: the slowest takes
#: about 200 s on the 2-CPU development machine.
STALL_SECONDS = 600
#: The file in the results directory the report goes to.
STALL_FILE = "stall"  # tests/vm/run_in_vm.py prints it
#: The suite's exit status after a stall (pytest's own statuses stop at 5; run_in_vm.EXIT_STALL).
STALL_STATUS = 9
#: Processes whose kernel stacks are worth reading even when they are not blocked.
INTERESTING = ("python", "probe", "bpfbox", "funcs", "target", "bpftool")


class Watchdog:
    def __init__(self, results: Path | None) -> None:
        self.results = results
        self._test: str | None = None
        self._since = 0.0
        self._lock = threading.Lock()
        threading.Thread(target=self._watch, name="stall-watchdog", daemon=True).start()

    def started(self, nodeid: str) -> None:
        with self._lock:
            self._test, self._since = nodeid, time.monotonic()

    def finished(self) -> None:
        with self._lock:
            self._test = None

    def _watch(self) -> None:
        while True:
            time.sleep(5)
            with self._lock:
                test, since = self._test, self._since
            try:
                limit = scaled(STALL_SECONDS)
            except OSError:  # the results directory going away must not end the watch
                limit = STALL_SECONDS * worst()
            if test is not None and time.monotonic() - since > limit:
                try:
                    self._report(test, time.monotonic() - since)
                finally:
                    os._exit(STALL_STATUS)

    def _report(self, test: str, seconds: float) -> None:
        text = f"stall: {test} has run for {seconds:.0f} s; the guest's state follows\n"
        text += guest_state()
        sys.stderr.write(text)
        sys.stderr.flush()
        faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
        if self.results:
            # On the host's disk before the suite ends.
            with open(self.results / STALL_FILE, "w") as out:
                out.write(text)
                out.flush()
                faulthandler.dump_traceback(file=out, all_threads=True)
                os.fsync(out.fileno())


def guest_state() -> str:
    """Processes, the kernel stacks of the blocked and of ours, and the kernel log's tail."""
    lines = ["pid state wchan command"]
    stacks = []
    for proc in sorted(Path("/proc").glob("[0-9]*"), key=lambda p: int(p.name)):
        try:
            stat = (proc / "stat").read_text()
            state = stat.rsplit(")", 1)[1].split()[0]
            wchan = (proc / "wchan").read_text() or "-"
            command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if not command:
            continue  # kernel threads
        lines.append(f"{proc.name} {state} {wchan} {command[:200]}")
        if state == "D" or any(name in command for name in INTERESTING):
            try:
                stacks.append(f"--- kernel stack of {proc.name} ({state}) {command[:80]}")
                stacks.append((proc / "stack").read_text())
            except OSError as error:
                stacks.append(f"(unreadable: {error})")
    try:
        dmesg = subprocess.run(["dmesg"], capture_output=True, text=True, timeout=30).stdout
        kernel_log = "\n".join(dmesg.splitlines()[-60:])
    except (OSError, subprocess.TimeoutExpired) as error:
        kernel_log = f"(dmesg failed: {error})"
    return "\n".join([*lines, *stacks, "--- dmesg (tail)", kernel_log, "--- python stacks", ""])
