"""bpfbox-run's command line: usage errors, help, and how failures are reported."""

from __future__ import annotations

import subprocess
import sys

import pytest
from bpfbox.runtime import cli, kernel, loader, manage


def run(capsys, *argv: str) -> tuple[int, str, str]:
    status = cli.run_cli(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_help_teaches_with_examples(capsys):
    status, out, _ = run(capsys, "--help")
    assert status == 0
    assert "Examples:" in out
    assert "sudo bpfbox-run mylogin.bpf.c -- /sbin/mylogin alice" in out
    assert "--log-format [text|json]" in out


def test_no_profile_is_a_usage_error(capsys):
    status, _, err = run(capsys)
    assert status == 2
    assert err.splitlines() == [
        "bpfbox-run: error: no PROFILE given",
        "help: see `bpfbox-run --help` for usage and examples",
    ]


def test_unknown_option(capsys):
    status, _, err = run(capsys, "--frobnicate", "x.bpf.c")
    assert status == 2
    assert err.startswith("bpfbox-run: error: No such option")
    assert "--frobnicate" in err


def test_check_kernel_takes_nothing_else(capsys):
    status, _, err = run(capsys, "--check-kernel", "x.bpf.c")
    assert status == 2
    assert "--check-kernel takes no profiles and no command" in err


def test_missing_profile_file(capsys, monkeypatch):
    monkeypatch.setattr(kernel, "require_privileges", lambda: None)
    status, _, err = run(capsys, "/nonexistent/x.bpf.c", "--", "true")
    assert status == 2
    lines = err.splitlines()
    assert (
        lines[0] == "bpfbox-run: error: cannot read PROFILE `/nonexistent/x.bpf.c`: "
        "no such file or directory"
    )
    assert lines[1].startswith("help: pass the .bpf.c that bpfboxc wrote")


def test_not_privileged(capsys, monkeypatch):
    monkeypatch.setattr(kernel, "_effective_caps", lambda: 0)
    status, _, err = run(capsys, "x.bpf.c")
    assert status == 2
    assert err.startswith("bpfbox-run: error: not privileged: uid ")
    assert "lacks CAP_BPF, CAP_PERFMON, CAP_SYS_ADMIN" in err
    assert "help: run bpfbox-run as root" in err


def test_unexpected_exceptions_never_show_a_traceback(capsys, monkeypatch):
    def explode(*args, **kwargs):
        raise ZeroDivisionError("boom")

    monkeypatch.setattr(loader, "load", explode)
    status, _, err = run(capsys, "x.bpf.c")
    assert status == 70
    assert err.splitlines() == [
        "bpfbox-run: error: internal error: ZeroDivisionError: boom",
        "help: this is a bug in bpfbox-run; please report it with the command line used",
    ]


def test_unwritable_log_file(capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(loader, "load", pytest.fail)
    status, _, err = run(capsys, "--log", str(tmp_path / "no" / "dir"), "x.bpf.c")
    assert status == 2
    assert "cannot open log file" in err and "help: pass a writable path to --log" in err


def test_command_after_double_dash_is_not_parsed():
    assert cli._split_command(["a.bpf.c", "--", "ls", "--color", "--"]) == (
        ["a.bpf.c"],
        ["ls", "--color", "--"],
    )


def test_console_entry_point_runs():
    result = subprocess.run(
        [sys.executable, "-m", "bpfbox.runtime.cli", "--bogus"], capture_output=True, text=True
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("bpfbox-run: error: ")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--detach", "x.bpf.o", "--", "true"], "--detach takes no command and no --log"),
        (["--detach", "--log", "f", "x.bpf.o"], "--detach takes no command and no --log"),
        (["--service", "/etc/bpfbox.d", "x.bpf.o"], "--service DIR takes no profiles"),
        (["--service", "/etc/bpfbox.d", "--detach"], "--service DIR takes no profiles"),
    ],
)
def test_lifetime_modes_refuse_what_they_cannot_honour(capsys, argv, message):
    status, _, err = run(capsys, *argv)
    assert status == 2
    assert err.splitlines()[0].startswith(f"bpfbox-run: error: {message}")


def test_help_states_the_lifetime_rules(capsys):
    status, out, _ = run(capsys, "--help")
    assert status == 0
    for rule in (
        "-- COMMAND     the profiles stay loaded until COMMAND and every process they confine",
        "(no command)   the profiles stay loaded until bpfbox-run gets SIGINT or SIGTERM.",
        "--detach       the profiles stay loaded until `bpfbox unload`",
        "A killed bpfbox-run unloads nothing",
    ):
        assert rule in out


def test_bpfbox_unload_needs_names_or_all(capsys):
    assert manage.run_cli(["unload"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "bpfbox: error: name the profiles to unload, or pass --all (not both)",
        "help: see `bpfbox --help` for usage and examples",
    ]
