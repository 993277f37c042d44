"""Golden tests: policies written in the language, next to the output they must produce.

- `diagnostics/NAME.bpfbox` -> `NAME.stderr`: what `bpfboxc --check` prints, and its exit status.
- `ir/NAME.bpfbox` -> `NAME.ir`: `bpfboxc --emit ir`.
- `codegen/NAME.bpfbox` -> `NAME.policy.c`: the policy's part of the generated C (the template
  rendered, the BPF library's `#include`s left in place), one feature per case; the whole
  program must also compile with clang.
- `codegen_templates/bpf/bpfbox_abi.h`: the contract's C header, generated.
- `learn/NAME/*.jsonl` (learning logs) -> `learn/NAME/draft.bpfbox`: `bpfbox-learn draft`;
  the draft must also pass `bpfboxc --check` without any output.
- `learn/suggest/NAME.bpfbox` and `NAME.events.jsonl` (a bpfbox-run JSON event log) ->
  `NAME.diff`: `bpfbox-learn suggest` (learn/README.md describes the cases).

Every golden output has its input and every input its output (no orphans), and every error
code of compiler/diagnostics.py has a diagnostics case.

A policy's first line may be `// bpfboxc: ARGS` to pass extra arguments.  Every case runs with
`--sysroot root` (checked-in fixture binaries, so no output depends on this machine) and
`--btf` the tiny BTF fixture.  Regenerate with `make golden` and review the diff like code.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
from bpfbox.compiler.cli import main
from bpfbox.compiler.codegen import policy_part
from bpfbox.compiler.diagnostics import CODES
from bpfbox.compiler.pipeline import Compilation, run
from bpfbox.compiler.resolve import ElfResolver
from bpfbox.compiler.source import read_policy
from bpfbox.contract import header
from bpfbox.contract.abi import CLANG_FLAGS
from bpfbox.runtime.learn.cli import learn
from click.testing import CliRunner

HERE = Path(__file__).parent
FIXTURES = HERE.parent / "fixtures"
ARGS_PREFIX = "// bpfboxc:"
CODEGEN_SUFFIX = ".policy.c"
HEADER = HERE.parents[1] / "codegen_templates" / "bpf" / header.FILE_NAME


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


@pytest.mark.parametrize("policy", _cases("codegen"), ids=lambda p: p.stem)
def test_codegen(policy: Path, update_golden: bool, tmp_path: Path) -> None:
    result = _run(policy, "--emit", "c")
    _no_traceback(result)
    assert result.exit_code == 0, result.stderr
    resolver = ElfResolver(btf_path=FIXTURES / "btf" / "tiny.btf", sysroot=HERE / "root")
    previous = Path.cwd()
    os.chdir(policy.parent)
    try:
        compilation = run(Compilation(read_policy(Path(policy.name)), resolver))
    finally:
        os.chdir(previous)
    assert compilation.c_source == result.stdout, "the CLI and the pipeline disagree"
    _compare(policy_part(compilation.program), policy.with_suffix(CODEGEN_SUFFIX), update_golden)
    program = tmp_path / "out.bpf.c"
    program.write_text(result.stdout)
    clang = shutil.which("clang")
    assert clang, "clang is needed to check the C goldens: run `make setup`"
    compiled = subprocess.run(
        [clang, *CLANG_FLAGS, "-Werror", "-c", str(program), "-o", str(tmp_path / "out.bpf.o")],
        capture_output=True,
        text=True,
    )
    assert compiled.returncode == 0, compiled.stderr


def test_contract_header(update_golden: bool) -> None:
    _compare(header.render(), HEADER, update_golden)


#: Each folder's output suffix; inputs are `.bpfbox` (sub-folders hold included fragments).
OUTPUTS = {"diagnostics": ".stderr", "ir": ".ir", "codegen": CODEGEN_SUFFIX}


@pytest.mark.parametrize("folder", sorted(OUTPUTS))
def test_no_orphan_golden_files(folder: str) -> None:
    suffix = OUTPUTS[folder]
    files = {p.name for p in (HERE / folder).iterdir() if p.is_file()}
    inputs = {name.removesuffix(".bpfbox") for name in files if name.endswith(".bpfbox")}
    outputs = {name.removesuffix(suffix) for name in files if name.endswith(suffix)}
    strays = sorted(n for n in files if not n.endswith((".bpfbox", suffix)))
    assert not strays, f"{folder}/: files that are neither input nor {suffix} output: {strays}"
    assert not inputs - outputs, f"{folder}/: inputs without output (run `make golden`)"
    assert not outputs - inputs, f"{folder}/: outputs without input: {sorted(outputs - inputs)}"


#: Codes whose input is too large to check in as a golden: the test that shows each, which
#: generates its input.
GENERATED_INPUT_CODES = {
    "E0008": ("unit/test_hostile_inputs.py", "test_oversized_policy_is_a_located_error"),
}


def test_every_error_code_has_a_diagnostics_golden() -> None:
    shown = set()
    for golden in (HERE / "diagnostics").glob("*.stderr"):
        shown |= set(re.findall(r"^(?:error|warning)\[(\w+)\]", golden.read_text(), re.M))
    for code, (module, test) in GENERATED_INPUT_CODES.items():
        source = (HERE.parent / module).read_text()
        assert f"def {test}(" in source and f"error[{code}]" in source, (code, module, test)
        shown.add(code)
    assert sorted(set(CODES) - shown) == []


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
