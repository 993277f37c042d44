"""Golden tests of bpfbox-learn on recorded logs (tests/golden/learn, see its README.md).

- `learn/NAME/*.jsonl` (learning logs, in name order) -> `learn/NAME/draft.bpfbox`: what
  `bpfbox-learn draft` writes.  Each draft must also pass `bpfboxc --check` with no output.
- `learn/suggest/NAME.events.jsonl` (a bpfbox-run JSON event log) and `NAME.bpfbox` ->
  `NAME.diff`: what `bpfbox-learn suggest` prints.

Every case runs with `--sysroot root`.  Regenerate with `make golden`.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from bpfbox.compiler.cli import main as bpfboxc
from bpfbox.runtime.learn.cli import learn
from click.testing import CliRunner

HERE = Path(__file__).parent
LEARN = HERE / "learn"
ROOT = HERE / "root"
DRAFT_CASES = sorted(p for p in LEARN.iterdir() if p.is_dir() and p.name != "suggest")
SUGGEST_CASES = sorted((LEARN / "suggest").glob("*.bpfbox"))


def _in(folder: Path, command, args: list[str], **kwargs):
    """Run a click command in-process from `folder`, so that names in the output stay short."""
    previous = Path.cwd()
    os.chdir(folder)
    try:
        return CliRunner().invoke(command, args, **kwargs)
    finally:
        os.chdir(previous)


def _compare(actual: str, golden: Path, update: bool) -> None:
    if update:
        golden.write_text(actual)
        return
    assert golden.exists(), f"no golden file {golden.name}: run `make golden`"
    assert actual == golden.read_text()


@pytest.mark.parametrize("case", DRAFT_CASES, ids=lambda p: p.name)
def test_draft(case: Path, update_golden: bool) -> None:
    logs = sorted(p.name for p in case.glob("*.jsonl"))
    result = _in(case, learn, ["draft", *logs, "--sysroot", str(ROOT)])
    assert result.exit_code == 0, result.output + result.stderr
    _compare(result.stdout, case / "draft.bpfbox", update_golden)
    checked = _in(case, bpfboxc, ["--check", "--sysroot", str(ROOT), "draft.bpfbox"])
    assert checked.exit_code == 0, checked.stderr
    assert checked.stderr == "", "the draft must compile without warnings"


@pytest.mark.parametrize("policy", SUGGEST_CASES, ids=lambda p: p.stem)
def test_suggest(policy: Path, update_golden: bool) -> None:
    events = policy.with_suffix(".events.jsonl").name
    args = ["suggest", "--log", events, "--sysroot", str(ROOT), policy.name]
    result = _in(policy.parent, learn, args)
    assert result.exit_code == 0, result.output + result.stderr
    _compare(result.stdout, policy.with_suffix(".diff"), update_golden)
