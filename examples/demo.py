#!/usr/bin/env python3
"""`make demo`: bpfbox doing its job, for real, on the paper's example.

Builds examples/mylogin.c, compiles examples/mylogin.bpfbox, installs the program as
/sbin/mylogin and enforces the policy while it runs: reading the password files inside
check_password() works, reading /etc/shadow from main() is denied by the kernel, and adding a
user works only inside add_user().  When this machine's kernel cannot run BPF LSM programs,
the enforcing part runs in the test VM (a Debian kernel under QEMU), and says so.

    python examples/demo.py            # prepare here, enforce here or in the VM
    python examples/demo.py --prepare  # build and compile only (tests/e2e/prepare.py)
    python examples/demo.py --inside   # the enforcing part alone (what the VM runs)
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from bpfbox.contract.abi import CLANG_FLAGS

REPO = Path(__file__).resolve().parent.parent
BUILD = REPO / "build" / "demo"
PROFILE = Path("/sbin/mylogin")
RUN = [sys.executable, "-m", "bpfbox.runtime.cli"]
#: What the demo runs under the policy, and what a reader should expect.
STEPS = (
    (("check", "root"), "check_password() reads /etc/passwd and /etc/shadow: allowed"),
    (("peek",), "main() reads /etc/shadow outside both functions: denied"),
    (("add", "bpfbox-demo"), "add_user() appends to both files: allowed (only in the VM)"),
)


def say(text: str) -> None:
    print(f"\n== {text}", flush=True)


def prepare() -> Path:
    """Build the program and compile the policy (host side; deterministic)."""
    root = BUILD / "root"
    (root / "sbin").mkdir(parents=True, exist_ok=True)
    program = root / "sbin" / "mylogin"
    subprocess.run(
        ["gcc", "-O1", "-o", str(program), str(REPO / "examples" / "mylogin.c")], check=True
    )
    c_file = BUILD / "mylogin.bpf.c"
    say(f"bpfboxc examples/mylogin.bpfbox -o {c_file.relative_to(REPO)}")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "bpfbox.compiler",
            str(REPO / "examples" / "mylogin.bpfbox"),
            "-o",
            str(c_file),
            "--sysroot",
            str(root),
        ],
        check=True,
    )
    ir = subprocess.run(
        [
            sys.executable,
            "-m",
            "bpfbox.compiler",
            "--emit",
            "ir",
            "--sysroot",
            str(root),
            str(REPO / "examples" / "mylogin.bpfbox"),
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    print("".join(line + "\n" for line in ir.splitlines() if line.startswith("context")), end="")
    object_file = c_file.with_suffix(".o")
    subprocess.run(
        [
            "clang",
            *CLANG_FLAGS,
            "-c",
            str(c_file),
            "-o",
            str(object_file),
        ],
        check=True,
    )
    return object_file


def kernel_can_enforce() -> bool:
    checks = subprocess.run([*RUN, "--check-kernel"], capture_output=True, text=True)
    return checks.returncode == 0


def inside(object_file: Path, in_vm: bool) -> int:
    """Install /sbin/mylogin and run the steps under the policy."""
    shutil.copy2(BUILD / "root" / "sbin" / "mylogin", PROFILE)
    failures = 0
    try:
        for args, expectation in STEPS:
            if args[0] == "add" and not in_vm:
                say(f"mylogin {' '.join(args)}: skipped here (it would modify /etc/shadow)")
                continue
            say(f"mylogin {' '.join(args)}  ({expectation})")
            # The program's output comes through a pipe, so that its standard streams are
            # not a VM console device the policy knows nothing about.
            result = subprocess.run(
                [*RUN, str(object_file), "--", str(PROFILE), *args],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                text=True,
            )
            print(result.stdout, end="", flush=True)
            failures += result.returncode not in (0, 1)
    finally:
        PROFILE.unlink(missing_ok=True)
    return 1 if failures else 0


def main() -> int:
    if "--prepare" in sys.argv:
        prepare()
        return 0
    if "--inside" in sys.argv:
        return inside(BUILD / "mylogin.bpf.o", in_vm=os.environ.get("BPFBOX_IN_VM") == "1")
    object_file = prepare()
    if os.geteuid() == 0 and kernel_can_enforce():
        say("this kernel runs BPF LSM programs: enforcing here")
        return inside(object_file, in_vm=False)
    say(
        "this machine's kernel cannot run BPF LSM programs (see `bpfbox-run --check-kernel`): "
        "enforcing inside a VM with a Debian kernel (about a minute to boot)"
    )
    vm = [
        sys.executable,
        str(REPO / "tests" / "vm" / "run_in_vm.py"),
        "--",
        sys.executable,
        str(Path(__file__).resolve()),
        "--inside",
    ]
    return subprocess.run(vm).returncode


if __name__ == "__main__":
    sys.exit(main())
