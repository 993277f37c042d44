#!/usr/bin/env python3
"""Run one command inside a QEMU VM that boots a kernel with the BPF LSM enabled.

The development machine's own kernel refuses LSM and fentry programs, so enforcement is
tested in a VM: virtme-ng (`vng`) boots the newest Debian kernel in /boot with the host's
filesystem shared read-only, runs COMMAND as root in the current directory, and this script
passes COMMAND's exit status back.  vng's own exit status is not trusted for that: the guest
writes the status into a host directory shared read-write, so a crashed or hung guest is
told apart from a failing command.

    python tests/vm/run_in_vm.py -- python3 -m pytest -q -p no:cacheprovider -m vm tests/e2e
    python tests/vm/run_in_vm.py --no-bpf-lsm -- bpfbox-run --check-kernel
    python tests/vm/run_in_vm.py -- bash -c 'cat /sys/kernel/security/lsm; bpftool prog show'
    python tests/vm/run_in_vm.py --lsm-extra apparmor -- cat /sys/kernel/security/lsm
    python tests/vm/run_in_vm.py --kernel 6.12 --results build/vm-results/x -- python3 -m pytest ...

--kernel names a kernel of the matrix in tests/vm/kernels.py (6.1, 6.12, or a release of one)
or an image file.  --results DIR is a host directory the guest may write, at the same path,
named to the command as $BPFBOX_VM_RESULTS.  The e2e suite logs each test's start and outcome
there as it goes (DIR/progress) and the VM's measured slowness (DIR/slowness): the timeout is
stretched by that factor, and if the VM is killed or crashes the tests that failed and the one
that was running are still printed.  The guest kernel's warnings and worse go to DIR/console
(a temporary file without --results); the end of it is printed when the guest crashes.

Exit status: COMMAND's; 124 if --timeout expired; 125 if the VM could not run it.
"""

from __future__ import annotations

import argparse
import glob
import os
import re
import selectors
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# The sibling script, also when this file is loaded by path (the unit tests do).
sys.path.insert(0, str(Path(__file__).resolve().parent))
import kernels  # noqa: E402

LSMS = ("lockdown", "capability", "landlock")
EXIT_TIMEOUT = 124
EXIT_HARNESS = 125
STATUS_FILE = "status"
#: Written by the e2e suite into --results (tests/e2e/conftest.py, tests/e2e/timing.py).
PROGRESS_FILE = "progress"
SLOWNESS_FILE = "slowness"
#: Written by the guest's watchdog (tests/e2e/stall.py) when a test stops making progress.
STALL_FILE = "stall"
#: The suite's exit status when that watchdog ended it.
EXIT_STALL = 9
#: The guest kernel's warnings and worse (oopses, panics, the OOM killer), from a console of
#: our own: vng sends its serial console to /dev/null unless it is verbose, and a crashed
#: guest otherwise leaves no word of why.
CONSOLE_FILE = "console"
#: KERN_WARNING and more urgent: the boot's chatter would bury what matters.
CONSOLE_LOGLEVEL = 5
CONSOLE_TAIL_LINES = 80
TCG_ONE_THREAD = "-accel tcg,thread=single"
#: Lines of the kernel log that say why a guest died or misbehaved, for the matrix summary.
KERNEL_TROUBLE = re.compile(
    r"Kernel panic|BUG:|Oops|WARNING:|general protection|invoked oom-killer|Out of memory"
    r"|rcu_.*stall|soft lockup|hung_task|blocked for more than"
)


class HarnessError(Exception):
    """The VM could not be started or did not report the command's status."""


def main(argv: list[str] | None = None) -> int:
    """Parse the command line, boot the VM, return COMMAND's exit status."""
    args = _parse(sys.argv[1:] if argv is None else argv)
    try:
        kernel = _kernel_image(args.kernel) if args.kernel else newest_kernel()
        vng = shutil.which("vng")
        if vng is None:
            raise HarnessError("vng not found on PATH; install virtme-ng: pip install virtme-ng")
        return run(vng, kernel, args)
    except HarnessError as err:
        print(f"run_in_vm: error: {err}", file=sys.stderr)
        return EXIT_HARNESS


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="run_in_vm.py",
        description="Run COMMAND as root inside a VM booted with the BPF LSM.",
        usage="%(prog)s [--no-bpf-lsm] [--lsm-extra LSM] [--timeout S] [--kernel K] "
        "[--results DIR] -- COMMAND...",
    )
    parser.add_argument(
        "--no-bpf-lsm", action="store_true", help="boot with `bpf` left out of the lsm= list"
    )
    parser.add_argument(
        "--lsm-extra",
        action="append",
        default=[],
        metavar="LSM",
        help="also enable LSM (e.g. apparmor, for `make bench`'s comparison); repeatable",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=1800,
        help="seconds on an idle machine, stretched by the slowness the guest reports "
        "in --results (default 1800)",
    )
    parser.add_argument(
        "--kernel",
        help="6.1, 6.12 (tests/vm/kernels.py), a release of one, or an image file "
        "(default: newest /boot/vmlinuz-*-amd64)",
    )
    parser.add_argument(
        "--results",
        type=Path,
        help="host directory the guest may write ($BPFBOX_VM_RESULTS there)",
    )
    parser.add_argument("--memory", default="2G")
    parser.add_argument("--cpus", default="2")
    if "--" not in argv:
        parser.error("put the command after `--`")
    split = argv.index("--")
    args = parser.parse_args(argv[:split])
    args.command = argv[split + 1 :]
    if not args.command:
        parser.error("no command after `--`")
    return args


def newest_kernel() -> str:
    """The Debian kernel image in /boot with the highest version."""
    images = glob.glob("/boot/vmlinuz-*-amd64")
    if not images:
        raise HarnessError(
            "no /boot/vmlinuz-*-amd64 kernel; install one: apt-get install linux-image-amd64"
        )
    unreadable = [image for image in images if not os.access(image, os.R_OK)]
    if unreadable == images:
        raise HarnessError(f"cannot read {images[0]}; run as root")
    return max((i for i in images if i not in unreadable), key=kernels.version_key)


def _kernel_image(name: str) -> str:
    if os.sep in name or os.path.isfile(name):
        if not os.access(name, os.R_OK):
            raise HarnessError(f"cannot read kernel image {name}")
        return name
    try:
        return str(kernels.image(name))
    except kernels.KernelError as err:
        raise HarnessError(str(err)) from None


def boot_command(
    vng: str, kernel: str, args: argparse.Namespace, shared: Path, console: Path
) -> list[str]:
    """The vng invocation; the guest runs the script written into `shared`, and its
    kernel log goes to `console`."""
    # bpf last: the other LSMs decide first, as in Debian's own CONFIG_LSM order.
    lsms = ",".join((*LSMS, *args.lsm_extra, *(() if args.no_bpf_lsm else ("bpf",))))
    results = ["--rwdir", str(args.results)] if args.results else []
    # A virtio console (hvc0) on a bus of its own: the serial driver serves one console
    # port only, and vng's ttyS0 has it.  The loglevel comes after vng's "quiet", and the
    # last one given wins.
    kernel_log = (
        "-device virtio-serial-pci,id=bpfbox-klog "
        f"-chardev file,id=bpfbox-klog,path={console} "
        "-device virtconsole,bus=bpfbox-klog.0,chardev=bpfbox-klog"
    )
    return [
        vng,
        "--run",
        kernel,
        "--disable-kvm",
        # One word: vng's option parser would take a separate "-device ..." for an option.
        f"--qemu-opts={kernel_log}",
        # Both vCPUs in one host thread.  Multi-threaded TCG does not make a code change one
        # vCPU makes visible to the other the way hardware does: attaching a BPF program
        # patches the hook's call site with text_poke_bp(), and a vCPU running the stale
        # translation met a leftover int3 ("Oops: int3" in bpf_lsm_file_permission, then
        # "Kernel panic - not syncing: Fatal exception in interrupt", seen on 6.12).  A
        # guest kept about one host CPU busy anyway.
        f"--qemu-opts={TCG_ONE_THREAD}",
        "--append",
        f"lsm={lsms}",
        "--append",
        f"console=hvc0 loglevel={CONSOLE_LOGLEVEL}",
        "--memory",
        args.memory,
        "--cpus",
        args.cpus,
        "--rwdir",
        str(shared),
        *results,
        "--",
        f"sh {shlex.quote(str(shared / 'run.sh'))}",
    ]


def guest_script(command: list[str], shared: Path, results: Path | None) -> str:
    """Shell script run in the guest: cwd, PATH and PYTHONPATH as here, status to `shared`."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
        "PYTHONPATH": os.environ.get("PYTHONPATH", ""),
        "PYTHONDONTWRITEBYTECODE": "1",
        "BPFBOX_IN_VM": "1",
    }
    if results:
        env["BPFBOX_VM_RESULTS"] = str(results)
    exports = "".join(f"export {key}={shlex.quote(value)}\n" for key, value in env.items())
    return (
        f"cd {shlex.quote(os.getcwd())} || exit {EXIT_HARNESS}\n"
        f"{exports}"
        f"{shlex.join(command)}\n"
        "status=$?\n"
        f"echo $status > {shlex.quote(str(shared / STATUS_FILE))}\n"
        "exit $status\n"
    )


def run(vng: str, kernel: str, args: argparse.Namespace) -> int:
    """Boot, stream the guest's output, and return the status the guest wrote."""
    shared = Path(tempfile.mkdtemp(prefix="bpfbox-vm-"))
    try:
        if args.results:
            args.results = args.results.resolve()
            args.results.mkdir(parents=True, exist_ok=True)
            # Left by an earlier run, they would mislead the deadline and the summary.
            for stale in (PROGRESS_FILE, SLOWNESS_FILE, STALL_FILE):
                (args.results / stale).unlink(missing_ok=True)
        (shared / "run.sh").write_text(guest_script(args.command, shared, args.results))
        console = (args.results or shared) / CONSOLE_FILE
        print(f"run_in_vm: booting {kernel} (software emulation, ~30 s)", file=sys.stderr)
        # Pipes, not our own stdout/stderr: QEMU reopens /proc/self/fd/2 with O_TRUNC, which
        # would empty a log file the caller redirected us to.  A session of its own, so a
        # timeout can stop vng and QEMU together.
        proc = subprocess.Popen(
            boot_command(vng, kernel, args, shared, console),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        deadline = Deadline(args.timeout, args.results)
        try:
            finished = _stream(proc, deadline)
        except KeyboardInterrupt:
            _kill(proc)
            raise HarnessError("interrupted") from None
        if not finished:
            _kill(proc)
            print(
                f"run_in_vm: error: timed out after {deadline.waited:.0f} s "
                f"({args.timeout:g} s x slowness {deadline.factor:.2f})",
                file=sys.stderr,
            )
            _print_progress(args.results, killed=True)
            _print_console(console)
            return EXIT_TIMEOUT
        try:
            status = _reported_status(shared, proc.wait())
        except HarnessError:
            _print_progress(args.results, killed=True)
            _print_console(console)
            raise
        if status != 0:
            _print_progress(args.results, killed=False)
        return status
    finally:
        shutil.rmtree(shared, ignore_errors=True)


class Deadline:
    """`timeout` seconds from now, times the highest slowness factor reported in `results`
    so far (never shrinking: a machine that was slow for a while used up time)."""

    def __init__(self, timeout: float, results: Path | None) -> None:
        self.start = time.monotonic()
        self.timeout = timeout
        self.results = results
        self.factor = 1.0
        self.waited = 0.0

    def _reported_factor(self) -> float:
        try:
            return float((self.results / SLOWNESS_FILE).read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return 1.0

    def remaining(self) -> float:
        if self.results is not None:
            self.factor = max(self.factor, self._reported_factor())
        self.waited = time.monotonic() - self.start
        return self.timeout * self.factor - self.waited


def _stream(proc: subprocess.Popen, deadline: Deadline) -> bool:
    """Copy the VM's output to ours as it comes; False if `deadline` passed first."""
    targets = {proc.stdout: sys.stdout.buffer, proc.stderr: sys.stderr.buffer}
    with selectors.DefaultSelector() as selector:
        for pipe in targets:
            selector.register(pipe, selectors.EVENT_READ)
        while selector.get_map():
            remaining = deadline.remaining()
            if remaining <= 0:
                return False
            for key, _ in selector.select(timeout=min(remaining, 1.0)):
                data = os.read(key.fd, 65536)
                if not data:
                    selector.unregister(key.fileobj)
                    continue
                out = targets[key.fileobj]
                out.write(data)
                out.flush()
    return True


def _kill(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _reported_status(shared: Path, vng_status: int) -> int:
    try:
        status = int((shared / STATUS_FILE).read_text().strip())
    except (OSError, ValueError):
        raise HarnessError(
            f"the VM ended (vng exit status {vng_status}) without reporting the command's "
            "exit status: the guest failed to boot or crashed; see the output above"
        ) from None
    if status != vng_status:
        print(
            f"run_in_vm: note: vng exited {vng_status}, the command exited {status}",
            file=sys.stderr,
        )
    return status


def progress(results: Path) -> tuple[list[str], list[str], str | None]:
    """From the suite's progress log in `results`: the tests that passed, the tests that
    failed or errored (with their outcome), and the test still running when the log ends."""
    try:
        lines = (results / PROGRESS_FILE).read_text().splitlines()
    except OSError:
        return [], [], None
    passed, failed, running = [], [], None
    for line in lines:
        outcome, _, rest = line.partition(" ")
        nodeid = rest.split(" ")[0]
        if outcome == "START":
            running = nodeid
            continue
        running = None if nodeid == running else running
        if outcome == "PASSED":
            passed.append(nodeid)
        elif outcome in ("FAILED", "ERROR"):
            failed.append(f"{outcome} {nodeid}")
    return passed, failed, running


def _print_progress(results: Path | None, killed: bool) -> None:
    """What the suite logged, for a run whose own summary may be missing or cut short."""
    if results is None:
        return
    passed, failed, running = progress(results)
    print(f"run_in_vm: {len(passed)} passed, {len(failed)} failed or errored", file=sys.stderr)
    for line in failed:
        print(f"run_in_vm:   {line}", file=sys.stderr)
    if killed and running:
        print(f"run_in_vm: running when the VM stopped: {running}", file=sys.stderr)
    stall = results / STALL_FILE
    if stall.exists():
        print(f"run_in_vm: the guest's watchdog reported a stall ({stall}):", file=sys.stderr)
        print(stall.read_text(errors="replace"), file=sys.stderr)


def kernel_trouble(results: Path) -> str | None:
    """The first line of the guest kernel's log in `results` that reports a crash, a
    warning, a stall or the OOM killer, without its timestamp."""
    try:
        text = (results / CONSOLE_FILE).read_text(errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        if KERNEL_TROUBLE.search(line):
            return re.sub(r"^\[\s*[\d.]+\]\s*", "", line).strip()
    return None


def _print_console(console: Path) -> None:
    """The end of the guest kernel's log, for a guest that crashed or was killed."""
    try:
        lines = console.read_text(errors="replace").splitlines()
    except OSError:
        lines = []
    if not lines:
        print(f"run_in_vm: the guest kernel logged no warnings ({console})", file=sys.stderr)
        return
    shown = lines[-CONSOLE_TAIL_LINES:]
    print(
        f"run_in_vm: the guest kernel's last {len(shown)} warnings or worse ({console}):",
        file=sys.stderr,
    )
    for line in shown:
        print(f"  {line}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
