"""The clang step: bpfboxc's C into a BPF object, with the flags the C is written for.

Both `bpfboxc -o NAME.bpf.o` and bpfbox-run (for a `.bpf.c` profile, through its cache,
runtime/build.py) compile here, so the toolchain has one clang invocation and one way of
reporting its failure.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from bpfbox.contract.abi import CLANG_FLAGS
from bpfbox.contract.errors import BpfboxError

#: How many lines of clang's complaint an error shows.
ERROR_LINES = 15


class BuildError(BpfboxError):
    """A profile could not be turned into a BPF object."""

    exit_code = 1
    help = "regenerate the file with bpfboxc; if it persists, report it with the lines above"


class ClangMissing(BuildError):
    """No clang to compile with: an environment problem."""

    exit_code = 2
    help = "install clang (Debian/Ubuntu: apt-get install clang), or pass a prebuilt .bpf.o"


def compile_object(source: Path, target: Path, clang: str | None = None) -> None:
    """Compile `source` (bpfboxc's C) into the BPF object `target`, all or nothing."""
    clang = clang or clang_path()
    # Compile next to the target and rename: a concurrent start never sees half an object.
    fd, partial = tempfile.mkstemp(dir=target.parent, prefix=".partial-", suffix=".o")
    os.close(fd)
    try:
        result = subprocess.run(
            [clang, *CLANG_FLAGS, "-c", str(source), "-o", partial],
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise BuildError(_compile_failure(source, result.stderr))
        os.replace(partial, target)
    finally:
        if os.path.exists(partial):
            os.unlink(partial)


def clang_path() -> str:
    clang = shutil.which("clang")
    if clang is None:
        raise ClangMissing("clang not found on PATH; it is needed to compile .bpf.c profiles")
    return clang


@functools.cache
def clang_version(clang: str) -> str:
    """The first line of `clang --version`, which names the exact release."""
    try:
        out = subprocess.run(
            [clang, "--version"], capture_output=True, text=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError) as err:
        raise ClangMissing(f"{clang} does not run: {err}") from None
    return out.splitlines()[0] if out else clang


def _compile_failure(source: Path, stderr: str) -> str:
    lines = stderr.strip().splitlines()
    shown = "\n".join("  " + line for line in lines[:ERROR_LINES])
    more = f"\n  ... ({len(lines) - ERROR_LINES} more lines)" if len(lines) > ERROR_LINES else ""
    return f"clang could not compile {source}:\n{shown}{more}"
