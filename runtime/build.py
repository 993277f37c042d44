"""Turn a generated `.bpf.c` into a loadable `.bpf.o`, compiling at most once.

bpfbox-run accepts either the C that bpfboxc emits or an object built from it.  C sources
are compiled with clang using the flags the compiler's output is written for, and the
object is cached under a key of (source hash, kernel release, clang version): restarting a
confined service must not pay for a compile, while a new clang or kernel gets a fresh build.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from bpfbox.compiler import files
from bpfbox.contract import abi

#: The flags bpfboxc's output is written for (self-contained CO-RE C, no vmlinux.h).
CLANG_FLAGS = abi.CLANG_FLAGS
#: How many lines of clang's complaint an error shows.
ERROR_LINES = 15

_ELF_MAGIC = b"\x7fELF"


class BuildError(Exception):
    """A profile could not be turned into a BPF object."""

    exit_code = 1
    help = "regenerate the file with bpfboxc; if it persists, report it with the lines above"

    def __init__(self, message: str, help: str | None = None) -> None:
        super().__init__(message)
        if help is not None:
            self.help = help


class ClangMissing(BuildError):
    """No clang to compile with: an environment problem."""

    exit_code = 2
    help = "install clang (Debian/Ubuntu: apt-get install clang), or pass a prebuilt .bpf.o"


class ProfileFileError(BuildError):
    """The file given on the command line is missing or of an unknown kind."""

    exit_code = 2
    help = "pass the .bpf.c that bpfboxc wrote (bpfboxc POLICY -o NAME.bpf.c) or its .bpf.o"


def object_for(path: str) -> str:
    """The path of a loadable object for `path`: itself if prebuilt, else a cached build."""
    try:
        with os.fdopen(files.open_regular(path, "PROFILE"), "rb") as f:
            head = f.read(len(_ELF_MAGIC))
    except OSError as err:
        raise ProfileFileError(str(err)) from None
    if head == _ELF_MAGIC:
        return path
    if not path.endswith(".c"):
        raise ProfileFileError(f"{path} is neither C source (.c) nor a BPF object (ELF)")
    return compile_cached(Path(path))


def compile_cached(source: Path) -> str:
    """Compile `source` unless an object for the same source, kernel and clang is cached."""
    clang = _clang()
    try:
        text = files.read_regular(source, "PROFILE", files.MAX_SOURCE_BYTES)
    except OSError as err:
        raise ProfileFileError(str(err)) from None
    target = cache_dir() / f"{_stem(source)}-{cache_key(text, clang_version(clang))}.bpf.o"
    if not target.exists():
        _compile(clang, source, target)
    return str(target)


def compile_object(source: Path, target: Path) -> None:
    """Compile `source` (bpfboxc's C) into the BPF object `target`, all or nothing."""
    _compile(_clang(), source, target)


def cache_key(source: bytes, clang_id: str) -> str:
    """Hash of everything the object depends on: source, kernel release, clang, flags."""
    digest = hashlib.sha256()
    for part in (os.uname().release, clang_id, " ".join(CLANG_FLAGS)):
        digest.update(part.encode() + b"\0")
    digest.update(source)
    return digest.hexdigest()[:24]


def cache_dir() -> Path:
    """$XDG_CACHE_HOME/bpfbox or ~/.cache/bpfbox, or a private tmp dir if neither is writable.

    The fallback matters on read-only roots (such as the test VM), where a cache that
    cannot be written must not stop confinement from starting.
    """
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    for candidate in (Path(base) / "bpfbox", Path(tempfile.gettempdir()) / f"bpfbox-{os.getuid()}"):
        if _usable(candidate):
            return candidate
    return Path(tempfile.mkdtemp(prefix="bpfbox-"))


def _usable(directory: Path) -> bool:
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        # Another user's directory under /tmp must not be trusted to hold our objects.
        st = directory.stat()
        if st.st_uid != os.getuid():
            return False
        with tempfile.NamedTemporaryFile(dir=directory):
            return True
    except OSError:
        return False


def _stem(source: Path) -> str:
    name = source.name
    for suffix in (".bpf.c", ".c"):
        if name.endswith(suffix):
            return name[: -len(suffix)] or "profile"
    return name


def _clang() -> str:
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


def _compile(clang: str, source: Path, target: Path) -> None:
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


def _compile_failure(source: Path, stderr: str) -> str:
    lines = stderr.strip().splitlines()
    shown = "\n".join("  " + line for line in lines[:ERROR_LINES])
    more = f"\n  ... ({len(lines) - ERROR_LINES} more lines)" if len(lines) > ERROR_LINES else ""
    return f"clang could not compile {source}:\n{shown}{more}"
