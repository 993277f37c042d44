"""`bpfboxc` as a user runs it: exit statuses, outputs, and no traceback on bad input."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from bpfbox.runtime import build, metadata

from .helpers import GOLDEN_ROOT, TESTS, TINY_BTF

EXAMPLE = TESTS.parent / "examples" / "mylogin.bpfbox"


def bpfboxc(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "bpfbox.compiler", *args]
    return subprocess.run(command, capture_output=True, text=True, cwd=cwd)


def test_compiles_the_example_to_a_file(tmp_path: Path) -> None:
    out = tmp_path / "mylogin.bpf.c"
    result = bpfboxc(str(EXAMPLE), "-o", str(out), "--sysroot", str(GOLDEN_ROOT))
    assert result.returncode == 0, result.stderr
    assert 'SEC("uprobe")' in out.read_text()
    assert list(tmp_path.iterdir()) == [out]


def test_compiles_the_example_to_an_object_bpfbox_run_reads(tmp_path: Path) -> None:
    out = tmp_path / "mylogin.bpf.o"
    result = bpfboxc(str(EXAMPLE), "-o", str(out), "--sysroot", str(GOLDEN_ROOT))
    assert result.returncode == 0, result.stderr
    assert out.read_bytes()[:4] == b"\x7fELF"
    assert list(tmp_path.iterdir()) == [out]
    assert build.object_for(str(out)) == str(out)
    meta = metadata.read(str(out))
    assert meta.name == "mylogin" and meta.profile == "/sbin/mylogin"


def test_object_output_without_clang_is_an_environment_error(tmp_path: Path) -> None:
    out = tmp_path / "mylogin.bpf.o"
    command = [sys.executable, "-m", "bpfbox.compiler", str(EXAMPLE), "-o", str(out)]
    env = {**os.environ, "PATH": str(tmp_path)}
    result = subprocess.run(
        [*command, "--sysroot", str(GOLDEN_ROOT)], capture_output=True, text=True, env=env
    )
    assert result.returncode == 2
    assert result.stderr.startswith("bpfboxc: error: clang not found on PATH")
    assert not out.exists()


def test_emit_ir_shows_both_function_contexts_with_offsets() -> None:
    result = bpfboxc(str(EXAMPLE), "--emit", "ir", "--sysroot", str(GOLDEN_ROOT))
    assert result.returncode == 0, result.stderr
    assert "context 0 func check_password in /sbin/mylogin at offset 0x" in result.stdout
    assert "context 1 func add_user in /sbin/mylogin at offset 0x" in result.stdout


def test_emit_ast_prints_an_outline() -> None:
    result = bpfboxc(str(EXAMPLE), "--emit", "ast", "--sysroot", str(GOLDEN_ROOT))
    assert result.returncode == 0
    assert "Directed #[func 'check_password'] #[allow]" in result.stdout


def test_policy_errors_exit_1_and_write_nothing(tmp_path: Path) -> None:
    policy = tmp_path / "bad.bpfbox"
    policy.write_text('#![profile "/sbin/mylogin"]\nfs("/a", reed)\n')
    out = tmp_path / "bad.bpf.c"
    result = bpfboxc(str(policy), "-o", str(out), "--sysroot", str(GOLDEN_ROOT))
    assert result.returncode == 1
    assert "error[E0102]" in result.stderr and "Traceback" not in result.stderr
    assert not out.exists() and sorted(tmp_path.iterdir()) == [policy]


def test_usage_problems_exit_2() -> None:
    assert bpfboxc("/no/such/policy.bpfbox", "--check").returncode == 2
    missing_output = bpfboxc(str(EXAMPLE))
    assert missing_output.returncode == 2
    assert "-o OUT.bpf.c" in missing_output.stderr


def test_unreadable_btf_is_an_environment_error_exit_2(tmp_path: Path) -> None:
    policy = tmp_path / "k.bpfbox"
    policy.write_text('#![profile "/sbin/mylogin"]\n#[kfunc "vfs_read"] fs("/a", read)\n')
    corrupt = tmp_path / "corrupt.btf"
    corrupt.write_bytes(b"not btf at all")
    result = bpfboxc(str(policy), "--check", "--btf", str(corrupt), "--sysroot", str(GOLDEN_ROOT))
    assert result.returncode == 2
    assert result.stderr.startswith("bpfboxc: error: cannot read BTF")
    assert "Traceback" not in result.stderr


def test_kfunc_resolves_against_the_btf_given(tmp_path: Path) -> None:
    policy = tmp_path / "k.bpfbox"
    policy.write_text('#![profile "/sbin/mylogin"]\n#[kfunc "vfs_read"] fs("/a", read)\n')
    result = bpfboxc(
        str(policy), "--emit", "ir", "--btf", str(TINY_BTF), "--sysroot", str(GOLDEN_ROOT)
    )
    assert result.returncode == 0, result.stderr
    assert "context 0 kfunc kernel function vfs_read" in result.stdout


def test_help_teaches_with_an_example() -> None:
    result = bpfboxc("--help")
    assert result.returncode == 0
    assert "bpfboxc mylogin.bpfbox -o mylogin.bpf.c" in result.stdout
