#!/usr/bin/env python3
"""bpfbox-run's start, from its launch to its "enforcing" line, of checkouts side by side.

    bench_start.py [--rounds N] [--policy NAME] CHECKOUT...      (VM, as root)

Each round starts bpfbox-run of each CHECKOUT in turn (its own `tools/pythonpath`, so that
`bpfbox` is that checkout's) on the same prebuilt object (a policy of tests/e2e/prepare.py,
by default `bench`), through confined.Enforcing as `make bench` does, and stops it at its
"enforcing" line; then prints each checkout's median and range. Alternating rounds in one
boot is what makes the figures comparable: under the VM's software emulation, times differ
from one boot to the next by more than most changes.

    python3 tests/vm/run_in_vm.py --kernel 6.1 --results build/bench-start -- \\
        python3 tests/e2e/bench_start.py /path/to/old-checkout .

A benchmark, not a test: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

import confined


def start_seconds(checkout: Path, policy: str) -> float:
    """Seconds from the launch of `checkout`'s bpfbox-run on `policy` to its "enforcing" line."""
    env = dict(os.environ, PYTHONPATH=str(checkout.resolve() / "tools" / "pythonpath"))
    with confined.Enforcing(policy, env=env) as session:
        return session.startup_seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkouts", type=Path, nargs="+")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--policy", default="bench", help="a policy of tests/e2e/policies")
    args = parser.parse_args()
    confined.install_tree()
    try:
        seconds: dict[Path, list[float]] = {c: [] for c in args.checkouts}
        for round_number in range(args.rounds):
            for checkout in args.checkouts:
                seconds[checkout].append(start_seconds(checkout, args.policy))
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
