#!/usr/bin/env python3
"""bpfbox-run's start, from its launch to its "enforcing" line, of checkouts side by side.

    bench_start.py [--rounds N] [--object OBJ] CHECKOUT...      (VM, as root)

Each round starts bpfbox-run of each CHECKOUT in turn (its own `tools/pythonpath`, so that
`bpfbox` is that checkout's) on the same prebuilt object (by default the `bench` policy of
tests/e2e/prepare.py), waits for the line, and stops it; then prints each checkout's median
and range. Alternating rounds in one boot is what makes the figures comparable: under the
VM's software emulation, times differ from one boot to the next by more than most changes.

    python3 tests/vm/run_in_vm.py --kernel 6.1 --results build/bench-start -- \\
        python3 tests/e2e/bench_start.py /path/to/old-checkout .

A benchmark, not a test: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import confined
from timing import scaled


def start_seconds(checkout: Path, policy: Path) -> float:
    """Seconds from bpfbox-run's launch to its "enforcing" line; raises if it never comes."""
    env = dict(os.environ, PYTHONPATH=str(checkout.resolve() / "tools" / "pythonpath"))
    command = [*confined.BPFBOX_RUN, str(policy), "--log", str(confined.LOGS / "start.jsonl")]
    started = time.monotonic()
    process = subprocess.Popen(
        command, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert process.stderr is not None
    said = []
    for line in process.stderr:
        said.append(line)
        if line.startswith("bpfbox-run: enforcing "):
            took = time.monotonic() - started
            process.send_signal(signal.SIGINT)
            process.wait(timeout=scaled(120))
            return took
    process.wait()
    raise RuntimeError(f"bpfbox-run of {checkout} did not start enforcing:\n{''.join(said)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkouts", type=Path, nargs="+")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--object", type=Path, default=None, help="default: the bench policy")
    args = parser.parse_args()
    policy = args.object or confined.policy("bench")
    confined.install_tree()
    try:
        seconds: dict[Path, list[float]] = {c: [] for c in args.checkouts}
        for round_number in range(args.rounds):
            for checkout in args.checkouts:
                seconds[checkout].append(start_seconds(checkout, policy))
                print(f"round {round_number + 1} {checkout}: {seconds[checkout][-1]:.2f} s")
    finally:
        confined.remove_tree()
    for checkout, each in seconds.items():
        print(
            f"{checkout}: median {statistics.median(each):.2f} s "
            f"({min(each):.2f}-{max(each):.2f}) of {len(each)} starts"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
