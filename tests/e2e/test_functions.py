"""Function-level policy in a real kernel: `#[func]` through uprobes, `#[kfunc]` through fentry.

tests/e2e/programs/funcs.c opens a file from chosen places in its call graph; the policies
funcs_pie/funcs_nopie grant each file only inside one function.
"""

from __future__ import annotations

import pytest
from confined import DATA, Enforcing, fresh_data, probe, run

pytestmark = [pytest.mark.vm, pytest.mark.usefixtures("installed_tree")]

FILES = ("gated", "deep", "hidden", "lib", "k")


@pytest.fixture(scope="module", params=["pie", "nopie"])
def build(request):
    """Each test runs against the PIE and the non-PIE build, each under its own policy."""
    fresh_data({name: name for name in FILES})
    with Enforcing(f"funcs_{request.param}") as session:
        yield request.param, session


def funcs(build, mode: str, file: str) -> list[str]:
    variant, _ = build
    return run(f"funcs-{variant}", mode, str(DATA / file))


def results(lines: list[str]) -> list[tuple[str, str]]:
    """`where PATH: result` lines as (where, result) pairs."""
    return [(line.split()[0], line.rsplit(": ", 1)[1]) for line in lines]


def test_outside_the_function_is_denied(build):
    assert results(funcs(build, "outside", "gated")) == [("outside", "EPERM")]


def test_inside_the_function_is_allowed_and_ends_with_the_return(build):
    assert results(funcs(build, "after", "gated")) == [("inside", "ok"), ("after", "EPERM")]


def test_recursion_holds_until_the_outermost_return(build):
    assert results(funcs(build, "recurse", "deep")) == [
        ("deepest", "ok"),
        ("unwinding-1", "ok"),
        ("unwinding-2", "ok"),
        ("unwinding-3", "ok"),
        ("returned", "EPERM"),
    ]


def test_threads_are_independent(build):
    assert sorted(results(funcs(build, "threads", "gated"))) == [
        ("thread-a-inside", "ok"),
        ("thread-a-still-inside", "ok"),
        ("thread-b-outside", "EPERM"),
    ]


def test_a_static_function(build):
    assert results(funcs(build, "static", "hidden")) == [("static", "ok")]
    assert results(funcs(build, "outside", "hidden")) == [("outside", "EPERM")]


def test_a_function_of_a_shared_library(build):
    assert results(funcs(build, "library", "lib")) == [("library", "ok")]
    assert results(funcs(build, "outside", "lib")) == [("outside", "EPERM")]


def test_a_forked_child_is_inside_the_same_call(build):
    assert results(funcs(build, "fork", "gated")) == [("child", "ok")]


def test_a_new_thread_starts_outside(build):
    assert results(funcs(build, "thread-in", "gated")) == [("new-thread", "EPERM")]


def test_exec_starts_outside(build):
    assert results(funcs(build, "exec", "gated")) == [("outside", "EPERM")]


def test_denials_say_which_function_would_allow_it(build):
    _, session = build
    funcs(build, "outside", "gated")
    line = session.wait_for_message(r"denied funcs-\w+\[\d+\] read .*/data/gated")
    assert "allows it only inside gate" in line, session.stderr


def test_kfunc_context():
    fresh_data({"k": "k"})
    with Enforcing("kfunc") as session:
        assert probe(f"stat:{DATA / 'k'}", f"fstat:{DATA / 'k'}") == ["ok", "EPERM"]
        line = session.wait_for_message(r"denied probe\[\d+\] getattr .*/data/k")
        assert "only inside vfs_statx" in line, session.stderr


def test_a_context_ends_with_its_function_whatever_the_nesting(build):
    """100 nested calls: the kernel keeps only 64 return probes per thread."""
    assert results(funcs(build, "deep", "deep")) == [("deepest", "ok"), ("returned", "EPERM")]
