"""`make demo` shows what the README promises: every step the example policy allows
succeeds, and `peek` (reading /etc/shadow outside check_password()) is denied.

Runs examples/demo.py's enforcing part, as the VM half of `make demo` does, on what
tests/e2e/prepare.py built (`demo.py --prepare`).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.vm

DEMO = Path(__file__).resolve().parents[2] / "examples" / "demo.py"
#: What each step prints, in order: the program's lines and bpfbox's.
EXPECTED = {
    "check root": ["read /etc/passwd: ok", "read /etc/shadow: ok"],
    "peek": [
        r"bpfbox: denied mylogin\[\d+\] read /etc/shadow "
        r"\(mylogin.bpfbox:11 allows it only inside check_password\)",
        "read /etc/shadow: EPERM",
    ],
    "add bpfbox-demo": ["append /etc/passwd: ok", "append /etc/shadow: ok"],
}


def _steps(output: str) -> dict[str, list[str]]:
    """The demo's output cut at its `== mylogin STEP  (...)` headings."""
    steps: dict[str, list[str]] = {}
    lines: list[str] = []
    for line in output.splitlines():
        heading = re.match(r"== mylogin (.+?)  \(", line)
        if heading:
            lines = steps.setdefault(heading.group(1), [])
        elif line.strip():
            lines.append(line)
    return steps


def test_demo_output_matches_the_readme():
    result = subprocess.run(
        [sys.executable, str(DEMO), "--inside"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout
    steps = _steps(result.stdout)
    assert list(steps) == list(EXPECTED), result.stdout
    for step, patterns in EXPECTED.items():
        lines = steps[step]
        assert len(lines) == len(patterns), f"{step}:\n" + "\n".join(lines)
        for pattern in patterns:
            assert any(re.fullmatch(pattern, line) for line in lines), f"{step}: {pattern}"
