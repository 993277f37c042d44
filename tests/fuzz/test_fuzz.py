"""Fuzz bpfboxc with generated and mutated policies (see policies.py and oracle.py).

`make test-host` runs a small fixed budget with a fixed seed, so that every run (and CI)
feeds the same inputs; `make fuzz` runs FUZZ_INPUTS of them in batches (and FUZZ_SEED picks
another reproducible sequence).  A failure prints the input that broke the oracle, shrunk.
"""

from __future__ import annotations

import os
import time

import pytest
from hypothesis import HealthCheck, given, seed, settings

from .oracle import Oracle
from .policies import policies

INPUTS = int(os.environ.get("FUZZ_INPUTS", "120"))
SEED = int(os.environ.get("FUZZ_SEED", "0"))
#: Inputs per hypothesis run: each batch starts afresh (hypothesis' memory of what it tried
#: grows with every input) and shows as one test, so long runs report progress.
BATCH = 2000


@pytest.fixture(scope="module")
def oracle(tmp_path_factory) -> Oracle:
    return Oracle(tmp_path_factory.mktemp("fuzz"))


@pytest.fixture(scope="module", autouse=True)
def rate(oracle: Oracle):
    """Report how many inputs ran, how fast, and how bpfboxc answered them."""
    start = time.monotonic()
    yield
    seconds = time.monotonic() - start
    count = sum(oracle.statuses.values())
    print(
        f"\nfuzz: {count} inputs in {seconds:.0f} s ({count / max(seconds, 1e-9):.1f}/s); "
        f"exit statuses {dict(sorted(oracle.statuses.items()))}; "
        f"{len(oracle.checked_outputs)} distinct programs checked with clang"
    )


def fuzz_settings(examples: int) -> settings:
    """Reproducible (the seed fixes every input), no deadline: the oracle times bpfboxc."""
    return settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )


@pytest.mark.parametrize("batch", range(max(1, -(-INPUTS // BATCH))))
def test_bpfboxc_survives_any_policy(oracle: Oracle, batch: int) -> None:
    @seed(SEED * 1_000_000 + batch)
    @fuzz_settings(min(BATCH, INPUTS - batch * BATCH))
    @given(text=policies())
    def survives(text: str) -> None:
        oracle.check(text)

    survives()
