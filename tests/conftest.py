"""Shared pytest configuration: this checkout as `bpfbox`, and the `--update-golden` switch."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
IMPORT_ROOT = REPO / "tools" / "pythonpath"

# Before any test module imports bpfbox: this checkout, never another installed copy.  The
# environment carries it to subprocesses (bpfbox-run and bpfboxc started by tests).
if str(IMPORT_ROOT) not in sys.path:
    sys.path.insert(0, str(IMPORT_ROOT))
os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in (str(IMPORT_ROOT), os.environ.get("PYTHONPATH")) if p
)

import bpfbox.compiler  # noqa: E402 - must follow the path set-up above

if not Path(bpfbox.compiler.__file__).resolve().is_relative_to(REPO):
    raise pytest.UsageError(
        f"bpfbox resolves to {bpfbox.compiler.__file__}, outside this checkout ({REPO}); "
        "another copy shadows it: uninstall it or put tools/pythonpath first on PYTHONPATH"
    )


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        help="rewrite golden files from the current output instead of comparing with them",
    )


@pytest.fixture
def update_golden(request: pytest.FixtureRequest) -> bool:
    return request.config.getoption("--update-golden")
