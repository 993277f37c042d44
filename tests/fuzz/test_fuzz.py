"""Fuzz bpfboxc with generated and mutated policies (see policies.py and oracle.py).

`make test-host` runs a small fixed budget, derandomized so that every run (and CI) feeds
the same inputs; `make fuzz` runs FUZZ_INPUTS of them (and FUZZ_SEED picks another
reproducible sequence).  A failure prints the input that broke the oracle, shrunk.
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


@seed(SEED)
@settings(
    max_examples=INPUTS,
    derandomize=SEED == 0,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
@given(text=policies())
def test_bpfboxc_survives_any_policy(oracle: Oracle, text: str) -> None:
    oracle.check(text)
