#!/usr/bin/env python3
"""`make test-vm`: the whole e2e suite on each kernel of the matrix, a few tests per boot.

The suite is split into groups so that no single VM boot comes near its timeout (a boot runs
for minutes under software emulation); every group runs on every kernel named, even after a
failure, and a summary at the end names each failing test by kernel and group.  Results, as
the tests run, are kept under --results (default build/vm-results/KERNEL/GROUP: `progress`,
`slowness`, pytest's `junit.xml`, a watchdog's `stall` report, the guest kernel's `console`
log), so a VM killed half way still tells what happened; the summary quotes the first kernel
warning, oops, panic or OOM kill of each boot.  A boot that stalls, times out or dies with no
test failed (and, if it died, no word from its kernel) is booted once more for the tests that
had not passed; the summary names the test it cut short.

Kernels boot side by side (--jobs, default 2), each running its groups in turn: a guest
runs in one host thread (run_in_vm.py), so on two CPUs two kernels take about the time of
one (6.1's and 6.12's enforcement groups side by side: 460 s each).  Each boot's output then
goes to GROUP/output, and its end is printed if the boot fails.

    python3 tests/vm/matrix.py 6.1 6.12
    python3 tests/vm/matrix.py --group enforcement 6.12 -- -k setattr

Exit status: 0 if every group passed on every kernel, 1 otherwise, 2 for a usage error.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import shutil
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import kernels  # noqa: E402
import run_in_vm  # noqa: E402

REPO = HERE.parent.parent
E2E = "tests/e2e"
#: Written by tests/e2e/conftest.py into the results directory: the release the guest ran.
KERNEL_FILE = "kernel"
#: A boot's own output, when kernels boot side by side (theirs would interleave).
OUTPUT_FILE = "output"
OUTPUT_TAIL_LINES = 40


@dataclass(frozen=True)
class Group:
    """Tests run in one boot."""

    name: str
    marker: str
    paths: tuple[str, ...]
    #: Seconds on an idle machine; run_in_vm stretches it by the slowness the guest measures.
    timeout: float
    bpf_lsm: bool = True


#: test_enforcement.py, the mediation files (escapes through unhooked paths) and everything
#: else with the BPF LSM (new files land there by themselves) each take some ten minutes on an
#: idle machine; the no-bpf tests need a boot of their own.
MEDIATION = tuple(
    f"{E2E}/{name}.py"
    for name in (
        "test_mediation",
        "test_self_protection",
        "test_known_gaps",
        "test_ipc",
        "test_ipc_base",
    )
)
GROUPS = (
    Group("enforcement", "vm and not vm_nobpf", (f"{E2E}/test_enforcement.py",), 1500),
    Group("mediation", "vm and not vm_nobpf", MEDIATION, 1500),
    Group(
        "loader-functions",
        "vm and not vm_nobpf",
        (E2E, f"--ignore={E2E}/test_enforcement.py", *(f"--ignore={m}" for m in MEDIATION)),
        1500,
    ),
    Group("no-bpf-lsm", "vm_nobpf", (E2E,), 600, bpf_lsm=False),
)


def run_group(kernel: str, group: Group, out: Path, pytest_args: list[str], quiet: bool) -> int:
    """Boot `kernel` for `group`; its output goes to ours, or with `quiet` (kernels booting side
    by side) to OUT/output only, whose end is printed if the boot fails."""
    shutil.rmtree(out, ignore_errors=True)  # nothing of an earlier run may pass for this one
    out.mkdir(parents=True)
    _say(
        f"kernel {kernel}, group {group.name}"
        + (f": started (output: {out / OUTPUT_FILE})" if quiet else "")
    )
    pytest = [sys.executable, "-m", "pytest", "-q", "-rfE", "-p", "no:cacheprovider"]
    pytest += [f"--junitxml={out / 'junit.xml'}", "-m", group.marker, *group.paths, *pytest_args]
    options = ["--kernel", kernel, "--results", str(out), "--timeout", str(group.timeout)]
    if not group.bpf_lsm:
        options.append("--no-bpf-lsm")
    command = [sys.executable, str(HERE / "run_in_vm.py"), *options, "--", *pytest]
    if not quiet:
        return subprocess.run(command, cwd=REPO).returncode
    with open(out / OUTPUT_FILE, "wb") as output:
        status = subprocess.run(
            command, cwd=REPO, stdout=output, stderr=subprocess.STDOUT
        ).returncode
    lines = (out / OUTPUT_FILE).read_text(errors="replace").splitlines()
    ending = "" if status == 0 else "".join(f"\n  | {line}" for line in lines[-OUTPUT_TAIL_LINES:])
    _say(f"kernel {kernel}, group {group.name}: exit status {status}{ending}")
    return status


_PRINT = threading.Lock()


def _say(message: str) -> None:
    """One message of the matrix, whole, whichever kernel's thread says it."""
    with _PRINT:
        print(f"matrix: {message}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    split = argv.index("--") if "--" in argv else len(argv)
    parser = argparse.ArgumentParser(
        prog="matrix.py",
        description="Run the e2e suite in the VM on each kernel.",
        usage="%(prog)s [--results DIR] [--group NAME]... KERNEL... [-- PYTEST_ARGS...]",
    )
    parser.add_argument("kernels", nargs="+", metavar="KERNEL", help=", ".join(kernels.KERNELS))
    parser.add_argument("--results", type=Path, default=REPO / "build" / "vm-results")
    parser.add_argument(
        "--jobs",
        type=int,
        default=min(2, os.cpu_count() or 1),
        help="kernels booted side by side, each running its groups in turn (default: 2 on a "
        "machine of two CPUs or more; a guest runs in one host thread)",
    )
    parser.add_argument(
        "--group",
        action="append",
        choices=[g.name for g in GROUPS],
        help="only these groups (default: all)",
    )
    args = parser.parse_args(argv[:split])
    pytest_args = argv[split + 1 :]
    groups = [g for g in GROUPS if args.group is None or g.name in args.group]
    for kernel in args.kernels:
        try:
            kernels.image(kernel)
        except kernels.KernelError as err:
            parser.error(str(err))
    quiet = args.jobs > 1 and len(args.kernels) > 1

    def run_kernel(kernel: str) -> list[Outcome]:
        return [run_with_one_retry(kernel, g, args.results, pytest_args, quiet) for g in groups]

    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        per_kernel = list(pool.map(run_kernel, args.kernels))
    return summarise([outcome for outcomes in per_kernel for outcome in outcomes], args.results)


@dataclass
class Outcome:
    kernel: str
    group: Group
    status: int
    #: Passed in a first boot that stalled, timed out or died with no failure, and the test
    #: then running (run again, with the rest, in a second boot).
    passed_before: list[str] = field(default_factory=list)
    interrupted: str | None = None
    #: What ended the first boot: "stalled", "timed out", "died".
    how: str = ""


def _cut_short(status: int, out: Path) -> str | None:
    """How a boot ended that is worth a second one: stalled (the guest's watchdog), timed
    out, or died with no word from its kernel (QEMU or the guest gone, most likely the
    emulator).  None for a boot that ran to its end, or whose kernel logged an oops, a panic,
    a warning or the OOM killer: that is a finding, and a second boot would hide it."""
    if status == run_in_vm.EXIT_STALL:
        return "stalled"
    if status == run_in_vm.EXIT_TIMEOUT:
        return "timed out"
    if status == run_in_vm.EXIT_HARNESS and run_in_vm.kernel_trouble(out) is None:
        return "died"
    return None


def run_with_one_retry(
    kernel: str, group: Group, results: Path, pytest_args: list[str], quiet: bool = False
) -> Outcome:
    """Run `group`; if the boot was cut short with no test failed (see _cut_short), boot once
    more for the tests that had not passed.  The first boot's results stay in GROUP-cut, and
    the summary names the test it cut short."""
    out = results / kernel / group.name
    status = run_group(kernel, group, out, pytest_args, quiet)
    passed, failures, running = run_in_vm.progress(out)
    how = _cut_short(status, out)
    if how is None or failures:
        return Outcome(kernel, group, status)
    kept = out.with_name(f"{group.name}-cut")
    shutil.rmtree(kept, ignore_errors=True)
    out.rename(kept)
    _say(
        f"kernel {kernel}, group {group.name}: the boot {how} in {running or 'its start'}; "
        "once more without the tests that passed"
    )
    deselect = [f"--deselect={nodeid}" for nodeid in passed]
    status = run_group(kernel, group, out, [*pytest_args, *deselect], quiet)
    return Outcome(kernel, group, status, passed, running or "its start", how)


def summarise(outcomes: list[Outcome], results: Path) -> int:
    print("\nmatrix: summary", file=sys.stderr)
    failed = False
    total_passed = total_failed = 0
    for outcome in outcomes:
        kernel, group, status = outcome.kernel, outcome.group, outcome.status
        out = results / kernel / group.name
        passed, failures, running = run_in_vm.progress(out)
        passed = outcome.passed_before + passed
        verdict = {0: "ok", run_in_vm.EXIT_TIMEOUT: "TIMED OUT"}.get(status, f"FAILED ({status})")
        booted = _booted_release(out)
        expected = kernels.image(kernel).name.removeprefix("vmlinuz-")
        if status == 0 and booted != expected:
            verdict = f"WRONG KERNEL ({booted or 'not reported'}, not {expected})"
            status = 1
        failed |= status != 0
        total_passed += len(passed)
        total_failed += len(failures) or (status != 0)
        print(
            f"  {kernel:6} {group.name:17} {verdict:12} {len(passed)} passed, "
            f"{len(failures)} failed",
            file=sys.stderr,
        )
        for line in failures:
            print(f"      {line}", file=sys.stderr)
        if outcome.interrupted:
            print(
                f"      a first boot {outcome.how} in {outcome.interrupted}, run again (its "
                f"report: {results / kernel / (group.name + '-cut')})",
                file=sys.stderr,
            )
        if status != 0 and running:
            print(f"      still running when the VM stopped: {running}", file=sys.stderr)
        trouble = run_in_vm.kernel_trouble(out)
        if trouble:
            print(
                f"      guest kernel: {trouble} (log: {out / run_in_vm.CONSOLE_FILE})",
                file=sys.stderr,
            )
    print(f"matrix: results in {results}", file=sys.stderr)
    # Last, in the plain form CI reads: a boot that failed without naming a test counts one.
    print(f"matrix: {total_passed} passed, {total_failed} failed", file=sys.stderr)
    return 1 if failed else 0


def _booted_release(out: Path) -> str | None:
    """The release the guest reported (tests/e2e/conftest.py), if it got that far."""
    try:
        return (out / KERNEL_FILE).read_text().strip()
    except OSError:
        return None


if __name__ == "__main__":
    sys.exit(main())
