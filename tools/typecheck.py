"""Type-check compiler/, contract/ and runtime/ with mypy as the package `bpfbox` (`make lint`).

Usage: python3 tools/typecheck.py [mypy options]; the settings are pyproject.toml's [tool.mypy].

mypy names a module after its path, and no folder of this checkout is called `bpfbox`: the
folders become `bpfbox.compiler` and so on through pyproject.toml's package-dir when installed,
or through tools/pythonpath/bpfbox/__init__.py setting `__path__`, which mypy does not follow.
Checked as `compiler.cli`, the code's own `from bpfbox.contract import abi` would not resolve.
So this hands mypy every file under its installed module name; mypy resolves the project's
imports to those files, and needs no symlink named `bpfbox` in or outside the checkout.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from mypy import build
from mypy.errors import CompileError
from mypy.fscache import FileSystemCache
from mypy.main import process_options
from mypy.modulefinder import BuildSource

REPO = Path(__file__).resolve().parents[1]
PACKAGE = "bpfbox"
CHECKED = ("compiler", "contract", "runtime")
# mypy exits with 1 when it reports errors and with 2 when it could not check at all.
EXIT_ERRORS, EXIT_BLOCKED = 1, 2


def _sources() -> list[BuildSource]:
    """Every module of the checked folders (relative to the checkout) and its `bpfbox.` name."""
    sources = [BuildSource("tools/pythonpath/bpfbox/__init__.py", PACKAGE)]
    for top in CHECKED:
        for folder, subfolders, files in os.walk(top):
            subfolders[:] = sorted(d for d in subfolders if d != "__pycache__")
            modules = sorted(name for name in files if name.endswith(".py"))
            if not modules:
                continue  # data, like compiler/includes/ (fragments shipped with bpfbox)
            package = ".".join((PACKAGE, *Path(folder).parts))
            if "__init__.py" not in modules:
                # A namespace package (contract/): mypy reads a folder as an empty module.
                sources.append(BuildSource(folder, package))
            for name in modules:
                stem = name.removesuffix(".py")
                module = package if stem == "__init__" else f"{package}.{stem}"
                sources.append(BuildSource(os.path.join(folder, name), module))
    return sources


def main(argv: list[str]) -> int:
    os.chdir(REPO)  # pyproject.toml's settings and the paths above are the checkout's
    fscache = FileSystemCache()
    _, options = process_options(argv, require_targets=False, fscache=fscache)
    sources = _sources()
    messages: list[str] = []

    def report(_file: str | None, new: list[str], _serious: bool) -> None:
        messages.extend(new)
        for line in new:
            print(line, flush=True)

    try:
        build.build(sources, options, flush_errors=report, fscache=fscache)
    except CompileError as error:
        # Syntax errors and the like: already reported through `report` unless mypy says not.
        for line in error.messages:
            if line not in messages:
                print(line)
        return EXIT_BLOCKED
    errors = sum(": error:" in line for line in messages)
    if errors:
        print(f"Found {errors} errors in {len(sources)} checked modules")
        return EXIT_ERRORS
    print(f"Success: no issues found in {len(sources)} modules")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
