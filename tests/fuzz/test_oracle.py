"""The fuzzer's oracle itself: each of its rules can fail (a fuzzer whose oracle accepts
everything finds nothing)."""

from __future__ import annotations

import itertools

import pytest
from bpfbox.compiler import pipeline

from . import oracle as oracle_module
from .oracle import Oracle, Violation

POLICY = '#![profile "/sbin/mylogin"]\nfs("/etc/passwd", read)\n'


@pytest.fixture
def oracle(tmp_path) -> Oracle:
    return Oracle(tmp_path)


def test_a_policy_that_compiles_passes_and_is_counted(oracle):
    assert oracle.check(POLICY) == 0
    assert oracle.check("fs(") == 1
    assert oracle.statuses == {0: 1, 1: 1}
    assert len(oracle.checked_outputs) == 1


def test_a_crash_is_a_violation(oracle, monkeypatch):
    def crash(*_args):
        raise RuntimeError("planted")

    monkeypatch.setattr(pipeline, "parse_source", crash)
    with pytest.raises(Violation, match="internal error"):
        oracle.check(POLICY)


def test_a_different_second_output_is_a_violation(oracle, monkeypatch):
    counter = itertools.count()
    monkeypatch.setattr(pipeline, "generate", lambda program: f"int x{next(counter)};\n")
    with pytest.raises(Violation, match="second run"):
        oracle.check(POLICY)


def test_output_clang_rejects_is_a_violation(oracle, monkeypatch):
    monkeypatch.setattr(pipeline, "generate", lambda program: "this is not C\n")
    with pytest.raises(Violation, match="clang"):
        oracle.check(POLICY)


def test_a_slow_compile_is_confirmed_in_a_fresh_process(oracle, monkeypatch):
    """Over the limit in-process, then timed alone: the program it prints is not the time."""
    monkeypatch.setattr(oracle_module, "TIME_LIMIT_S", 0.0)
    with pytest.raises(Violation, match="CPU time"):
        oracle.check(POLICY)
