"""Shared pytest configuration: this checkout as `bpfbox`, the `--update-golden` switch, and
the golden mylogin policy compiled as bpfbox-run builds it."""

from __future__ import annotations

import os
import subprocess
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


@pytest.fixture(scope="session")
def compiled_mylogin(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """The golden mylogin policy, compiled by bpfboxc and clang as bpfbox-run builds it."""
    from bpfbox.runtime.build import CLANG_FLAGS

    golden = REPO / "tests" / "golden"
    folder = tmp_path_factory.mktemp("mylogin")
    source, out = folder / "mylogin.bpf.c", folder / "mylogin.bpf.o"
    bpfboxc = [sys.executable, "-m", "bpfbox.compiler", str(golden / "ir" / "mylogin.bpfbox")]
    subprocess.run([*bpfboxc, "--sysroot", str(golden / "root"), "-o", str(source)], check=True)
    subprocess.run(["clang", *CLANG_FLAGS, "-c", str(source), "-o", str(out)], check=True)
    return out.read_bytes()
