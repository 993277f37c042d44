"""How slow the test VM is right now, and test timeouts scaled by it.

Under software emulation the guest runs some 50 times slower than the host, and several times
slower again when another VM or a fuzzer shares the host's two CPUs.  A fixed timeout that
holds on an idle machine then fails on a busy one for no fault of the code under test.  So
every wait the e2e tests bound with a timeout asks `scaled(seconds)`: the seconds it needs on
an idle machine times the slowness measured now, a fixed pure-Python loop timed against what
it takes in the VM on an idle machine (REFERENCE_SECONDS).  The measurement is repeated when
it is older than REMEASURE_SECONDS, so a neighbour starting mid-run is noticed.

With BPFBOX_VM_RESULTS set (run_in_vm.py --results DIR), each measurement is also written to
DIR/slowness, from which run_in_vm.py stretches the VM's own timeout.
"""

from __future__ import annotations

import os
import statistics
import threading
import time
from pathlib import Path

#: Iterations of the reference loop: about 2 ms on the host, 35 ms in the VM.
LOOP_ITERATIONS = 100_000
#: The median of three loops in the test VM on the 2-CPU development machine with no other
#: VM running (measured 0.036-0.040 s on 6.1 and 6.12, 2026-11-29).
REFERENCE_SECONDS = 0.035
REMEASURE_SECONDS = 60.0
#: The file, in the results directory, that run_in_vm.py reads the factor from.
SLOWNESS_FILE = "slowness"

_last: tuple[float, float] | None = None  # (time measured, factor)
_worst = 1.0
#: The tests and the stall watchdog (tests/e2e/stall.py) both ask from their own threads: one
#: measurement and one write of SLOWNESS_FILE at a time.
_measuring = threading.Lock()


def _loop_seconds() -> float:
    start = time.perf_counter()
    total = 0
    for i in range(LOOP_ITERATIONS):
        total += i
    return time.perf_counter() - start


def measure() -> float:
    """Measure the slowness factor now: >= 1, 1 meaning as fast as the idle reference."""
    with _measuring:
        return _measure()


def _measure() -> float:
    global _last, _worst
    seconds = statistics.median(_loop_seconds() for _ in range(3))
    factor = max(1.0, seconds / REFERENCE_SECONDS)
    _last = (time.monotonic(), factor)
    _worst = max(_worst, factor)
    results = os.environ.get("BPFBOX_VM_RESULTS")
    if results:
        # Write-then-rename: the host reads it while the guest runs.
        path = Path(results) / SLOWNESS_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(f"{factor:.2f} {seconds:.3f}\n")
        tmp.rename(path)
    return factor


def slowness() -> float:
    """The slowness factor, measured again if the last measurement is stale."""
    last = _last
    if last is None or time.monotonic() - last[0] > REMEASURE_SECONDS:
        return measure()
    return last[1]


def worst() -> float:
    """The highest factor measured in this process."""
    return _worst


def scaled(seconds: float) -> float:
    """`seconds`, enough on an idle machine, stretched by the current slowness."""
    return seconds * slowness()
