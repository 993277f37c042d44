#!/usr/bin/env python3
"""`make bench`: what confinement costs, measured in one VM run and printed as figures.

Runs inside the test VM (tests/vm/run_in_vm.py) after tests/e2e/prepare.py.  Absolute times
under software emulation mean little; the ratios measured in one run do.

- open()+close() of one file: with no bpfbox loaded, with bpfbox loaded for a process outside
  the profile, and for a confined process (allowed by a rule: path resolution, the glob DFA,
  the decision);
- one call of a function named by #[func] (entry and return uprobes), against no probe.
"""

from __future__ import annotations

import statistics
import subprocess
import sys

from confined import BIN, DATA, Enforcing, fresh_data, install_tree, remove_tree

OPENS = 20000
CALLS = 200000
ROUNDS = 5


def measure(program: str, *args: str) -> float:
    """Median ns per iteration over ROUNDS runs."""
    samples = []
    for _ in range(ROUNDS):
        out = subprocess.run(
            [str(BIN / program), *args], capture_output=True, text=True, check=True
        )
        samples.append(float(out.stdout))
    return statistics.median(samples)


def main() -> int:
    install_tree()
    try:
        fresh_data({"bench-file": "x"})
        path = str(DATA / "bench-file")
        base_open = measure("bench", "open", path, str(OPENS))
        base_call = measure("bench", "call", str(CALLS))
        with Enforcing("bench"):
            outside_open = measure("bench-outsider", "open", path, str(OPENS))
            confined_open = measure("bench", "open", path, str(OPENS))
            probed_call = measure("bench", "call", str(CALLS))
    finally:
        remove_tree()
    print("bpfbox benchmark (software-emulated VM: compare ratios, not absolute times)")
    rows = (
        ("open+close, no bpfbox loaded", base_open, base_open),
        ("open+close, unconfined process", outside_open, base_open),
        ("open+close, confined process", confined_open, base_open),
        ("function call, not probed", base_call, base_call),
        ("function call, #[func] probed", probed_call, base_call),
    )
    for label, value, reference in rows:
        print(f"{label:36} {value:10.1f} ns   {value / reference:.2f}x")
    print(f"{'one probed call (entry + return)':36} {probed_call - base_call:10.1f} ns extra")
    return 0


if __name__ == "__main__":
    sys.exit(main())
