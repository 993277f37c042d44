"""Golden tests: policies written in the language, next to the output they must produce.

- `diagnostics/NAME.bpfbox` -> `NAME.stderr`: what `bpfboxc --check` prints, and its exit status.
- `ir/NAME.bpfbox` -> `NAME.ir`: `bpfboxc --emit ir`.
- `c/NAME.bpfbox` -> `NAME.bpf.c`: the generated C, which must also compile with clang.
- `learn/NAME/*.jsonl` (learning logs) -> `learn/NAME/draft.bpfbox`: `bpfbox-learn draft`;
  the draft must also pass `bpfboxc --check` without any output.
- `learn/suggest/NAME.bpfbox` and `NAME.events.jsonl` (a bpfbox-run JSON event log) ->
  `NAME.diff`: `bpfbox-learn suggest` (learn/README.md describes the cases).

A policy's first line may be `// bpfboxc: ARGS` to pass extra arguments.  Every case runs with
`--sysroot root` (checked-in fixture binaries, so no output depends on this machine) and
`--btf` the tiny BTF fixture.  Regenerate with `make golden` and review the diff like code.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
from bpfbox.compiler.cli import main
from bpfbox.runtime.build import CLANG_FLAGS
from bpfbox.runtime.learn.cli import learn
from click.testing import CliRunner

HERE = Path(__file__).parent
FIXTURES = HERE.parent / "fixtures"
ARGS_PREFIX = "// bpfboxc:"


def _cases(folder: str) -> list[Path]:
    return sorted((HERE / folder).glob("*.bpfbox"))


def _extra_args(policy: Path) -> list[str]:
    first = policy.read_bytes().split(b"\n", 1)[0].decode("utf-8", "replace")
    return shlex.split(first[len(ARGS_PREFIX) :]) if first.startswith(ARGS_PREFIX) else []


def _run(policy: Path, *args: str):
    """Run bpfboxc in-process from the policy's folder, so that file names stay relative."""
    common = ["--sysroot", str(HERE / "root"), "--btf", str(FIXTURES / "btf" / "tiny.btf")]
    return _in(policy.parent, main, [*args, *common, *_extra_args(policy), policy.name])


def _in(folder: Path, command, args: list[str]):
    """Run a click command in-process from `folder`."""
    previous = Path.cwd()
    os.chdir(folder)
    try:
        return CliRunner().invoke(command, args)
    finally:
        os.chdir(previous)


def _compare(actual: str, expected_path: Path, update: bool) -> None:
    if update:
        expected_path.write_text(actual)
        return
    assert expected_path.exists(), f"no golden file {expected_path.name}: run `make golden`"
    assert actual == expected_path.read_text()


def _no_traceback(result) -> None:
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output + result.stderr


@pytest.mark.parametrize("policy", _cases("diagnostics"), ids=lambda p: p.stem)
def test_diagnostics(policy: Path, update_golden: bool) -> None:
    result = _run(policy, "--check")
    _no_traceback(result)
    assert result.exit_code in (0, 1), result.stderr
    _compare(
        f"exit: {result.exit_code}\n{result.stderr}", policy.with_suffix(".stderr"), update_golden
    )


@pytest.mark.parametrize("policy", _cases("ir"), ids=lambda p: p.stem)
def test_ir(policy: Path, update_golden: bool) -> None:
    result = _run(policy, "--emit", "ir")
    _no_traceback(result)
    assert result.exit_code == 0, result.stderr
    _compare(result.stdout, policy.with_suffix(".ir"), update_golden)


@pytest.mark.parametrize("policy", _cases("c"), ids=lambda p: p.stem)
def test_c(policy: Path, update_golden: bool, tmp_path: Path) -> None:
    result = _run(policy, "--emit", "c")
    _no_traceback(result)
    assert result.exit_code == 0, result.stderr
    golden = policy.with_suffix("").with_suffix(".bpf.c")
    _compare(result.stdout, golden, update_golden)
    clang = shutil.which("clang")
    assert clang, "clang is needed to check the C goldens: run `make setup`"
    compiled = subprocess.run(
        [
            clang,
            *CLANG_FLAGS,
            "-Werror",
            "-c",
            str(golden),
            "-o",
            str(tmp_path / "out.bpf.o"),
        ],
        capture_output=True,
        text=True,
    )
    assert compiled.returncode == 0, compiled.stderr


LEARN = HERE / "learn"


@pytest.mark.parametrize(
    "case",
    sorted(p for p in LEARN.iterdir() if p.is_dir() and p.name != "suggest"),
    ids=lambda p: p.name,
)
def test_learn_draft(case: Path, update_golden: bool) -> None:
    logs = sorted(p.name for p in case.glob("*.jsonl"))
    result = _in(case, learn, ["draft", *logs, "--sysroot", str(HERE / "root")])
    _no_traceback(result)
    assert result.exit_code == 0, result.output
    _compare(result.stdout, case / "draft.bpfbox", update_golden)
    checked = _run(case / "draft.bpfbox", "--check")
    assert (checked.exit_code, checked.stderr) == (0, ""), "no error and no warning"


@pytest.mark.parametrize(
    "policy", sorted((LEARN / "suggest").glob("*.bpfbox")), ids=lambda p: p.stem
)
def test_learn_suggest(policy: Path, update_golden: bool) -> None:
    events = policy.with_suffix(".events.jsonl").name
    args = ["suggest", "--log", events, "--sysroot", str(HERE / "root"), policy.name]
    result = _in(policy.parent, learn, args)
    _no_traceback(result)
    assert result.exit_code == 0, result.output
    _compare(result.stdout, policy.with_suffix(".diff"), update_golden)
