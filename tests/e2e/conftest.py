"""Shared pieces of the end-to-end tests, which run as root inside the test VM.

`make test-vm` boots the VM twice: once with the BPF LSM active for tests marked `vm`, and
once without it (`--no-bpf-lsm`) for tests marked `vm_nobpf` (which carry `vm` too, so the
host suite, `-m "not vm"`, leaves both alone).  In the guest the host's root is read-only
and /tmp is an overlay, so scratch files go to a tmpfs mounted here.

Every timeout a test waits with is `timing.scaled(...)`: stretched by how slow the VM is now.
With BPFBOX_VM_RESULTS set (run_in_vm.py --results DIR), each test's start and outcome is
appended to DIR/progress as it happens, so the host can say which tests failed and which one
was running even if the VM is killed before pytest's summary.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from bpfbox.contract.abi import CLANG_FLAGS
from confined import install_tree, remove_tree
from stall import Watchdog
from timing import measure, scaled, worst

HERE = Path(__file__).parent
FIXTURES = HERE / "fixtures"
#: The command that runs bpfbox-run from this checkout, whatever PATH says.
BPFBOX_RUN = [sys.executable, "-m", "bpfbox.runtime.cli"]
#: The file in BPFBOX_VM_RESULTS that tests/vm/run_in_vm.py summarises: one line per event,
#: `START nodeid` then `PASSED|FAILED|ERROR|SKIPPED nodeid seconds`.
PROGRESS_FILE = "progress"
#: The file in BPFBOX_VM_RESULTS naming the release the guest booted.
KERNEL_FILE = "kernel"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "vm_nobpf: end-to-end test for a kernel booted without bpf in lsm= (VM)"
    )


#: In the VM: reports a test that stops making progress (tests/e2e/stall.py).
_watchdog: Watchdog | None = None


def pytest_sessionstart(session: pytest.Session) -> None:
    """In the VM: measure the slowness now, watch for stalls, and tell the host which kernel
    this boot ran."""
    global _watchdog
    if os.environ.get("BPFBOX_IN_VM") != "1":
        return
    measure()
    results = os.environ.get("BPFBOX_VM_RESULTS")
    _watchdog = Watchdog(Path(results) if results else None)
    if results:
        # For tests/vm/matrix.py: proof of which kernel this boot really ran.
        (Path(results) / KERNEL_FILE).write_text(os.uname().release + "\n")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if os.environ.get("BPFBOX_IN_VM") == "1":
        terminalreporter.write_line(
            f"kernel {os.uname().release}; VM slowness factor now {measure():.2f} "
            f"(slowest seen {worst():.2f}; timeouts scale by it)"
        )


def _progress(line: str) -> None:
    results = os.environ.get("BPFBOX_VM_RESULTS")
    if not results:
        return
    with open(Path(results) / PROGRESS_FILE, "a") as log:
        log.write(line + "\n")
        log.flush()
        # On the host's disk now: the VM may be killed at any moment after this.
        os.fsync(log.fileno())


def pytest_runtest_logstart(nodeid: str, location: tuple) -> None:
    _progress(f"START {nodeid}")
    if _watchdog:
        _watchdog.started(nodeid)


def pytest_runtest_logfinish(nodeid: str, location: tuple) -> None:
    if _watchdog:
        _watchdog.finished()


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call" or report.outcome != "passed":
        outcome = report.outcome.upper()
        if report.when != "call" and report.failed:
            outcome = "ERROR"  # a fixture failed, not the test's own assertion
        _progress(f"{outcome} {report.nodeid} {report.duration:.1f}")


@pytest.fixture(autouse=True)
def _inside_vm(request: pytest.FixtureRequest) -> None:
    """VM tests load LSM programs and need root in a throwaway kernel: refuse elsewhere."""
    if request.node.get_closest_marker("vm") and os.environ.get("BPFBOX_IN_VM") != "1":
        pytest.fail("end-to-end tests run inside the VM: use `make test-vm`")


@pytest.fixture(scope="session")
def scratch() -> Iterator[Path]:
    """A tmpfs of our own: the guest's root is read-only and /tmp an overlay."""
    mountpoint = Path(tempfile.mkdtemp(prefix="bpfbox-e2e-"))
    subprocess.run(["mount", "-t", "tmpfs", "bpfbox-e2e", str(mountpoint)], check=True)
    mountpoint.chmod(0o755)
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], check=False)


@pytest.fixture(scope="session")
def probe(scratch: Path) -> Path:
    """tests/e2e/probe.c, built for this run."""
    binary = scratch / "probe"
    subprocess.run(
        ["gcc", "-O1", "-Wall", "-pthread", "-o", str(binary), str(HERE / "probe.c")], check=True
    )
    return binary


class E2E:
    """What the tests do over and over: build fixtures, run bpfbox-run, inspect the kernel."""

    #: argv that runs bpfbox-run from this checkout.
    command = BPFBOX_RUN

    def __init__(self, scratch: Path, probe: Path) -> None:
        self.scratch = scratch
        self.probe = probe

    def build(self, name: str, **defines: str | int) -> Path:
        """Compile fixtures/NAME.bpf.c to an object; str `defines` become string literals."""
        key = hashlib.sha256(repr(sorted(defines.items())).encode()).hexdigest()[:12]
        out = self.scratch / f"{name}-{key}.bpf.o"
        # json.dumps quotes strings as C does and leaves numbers bare.
        flags = [f"-D{key}={json.dumps(value)}" for key, value in defines.items()]
        source = FIXTURES / f"{name}.bpf.c"
        subprocess.run(
            ["clang", *CLANG_FLAGS, f"-I{FIXTURES}", *flags, "-c", str(source), "-o", str(out)],
            check=True,
        )
        return out

    def deny_open(self, **defines: str | int) -> Path:
        """The deny-open fixture confining the probe."""
        return self.build("deny_open", PROFILE_PATH=str(self.probe), **defines)

    @staticmethod
    def run(*args: str, timeout: float = 120, **kwargs: Any) -> subprocess.CompletedProcess:
        """Run bpfbox-run to completion with text output captured; `timeout` as on an idle VM."""
        return subprocess.run(
            [*BPFBOX_RUN, *args], capture_output=True, text=True, timeout=scaled(timeout), **kwargs
        )

    @staticmethod
    def start(*args: str, **kwargs: Any) -> subprocess.Popen:
        """Start bpfbox-run in the background, stderr piped."""
        return subprocess.Popen([*BPFBOX_RUN, *args], stderr=subprocess.PIPE, text=True, **kwargs)

    @staticmethod
    def program_names() -> list[str]:
        """Names of every BPF program loaded in the kernel right now."""
        return [p.get("name", "") for p in _bpftool("prog")]

    @staticmethod
    def link_count() -> int:
        """How many BPF links exist right now."""
        return len(_bpftool("link"))

    def wait_unloaded(self, prefix: str = "bpfbox_test", timeout: float = 15) -> list[str]:
        """Wait for programs named `prefix`* to disappear (the kernel frees them lazily)."""
        deadline = time.monotonic() + scaled(timeout)
        while True:
            left = [name for name in self.program_names() if name.startswith(prefix)]
            if not left or time.monotonic() > deadline:
                return left
            time.sleep(0.2)


def _bpftool(kind: str) -> list[dict[str, Any]]:
    out = subprocess.run(
        ["bpftool", "-j", kind, "show"], capture_output=True, text=True, check=True
    ).stdout
    return json.loads(out or "[]")


@pytest.fixture
def e2e(scratch: Path, probe: Path) -> E2E:
    """The helpers, bound to this run's scratch tmpfs and probe binary."""
    return E2E(scratch, probe)


@pytest.fixture(scope="module")
def installed_tree() -> Iterator[None]:
    """The e2e programs under /mnt/e2e for one test module (tests/e2e/confined.py), removed
    after it; a module asks with `pytest.mark.usefixtures("installed_tree")`."""
    install_tree()
    yield
    remove_tree()
