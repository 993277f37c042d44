"""Turn a generated `.bpf.c` into a loadable `.bpf.o`, compiling at most once.

bpfbox-run accepts either the C that bpfboxc emits or an object built from it.  C sources
are compiled by the compiler's clang step (compiler/clang.py), and the object is cached
under a key of (source hash, clang version, flags): restarting a confined service must not
pay for a compile, while a new clang gets a fresh build.  The kernel is not part of the key:
the object is CO-RE (relocated to the running kernel by libbpf at load time) and the hook
variants are chosen at load time too, so a kernel upgrade keeps every cached object.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from bpfbox.compiler import files
from bpfbox.compiler.clang import (
    BuildError,
    ClangMissing,
    clang_path,
    clang_version,
    compile_object,
)
from bpfbox.contract.abi import CLANG_FLAGS

__all__ = ["BuildError", "ClangMissing", "ProfileFileError", "object_for", "compile_cached"]

_ELF_MAGIC = b"\x7fELF"


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
    """Compile `source` unless an object for the same source and clang is cached."""
    clang = clang_path()
    try:
        text = files.read_regular(source, "PROFILE", files.MAX_SOURCE_BYTES)
    except OSError as err:
        raise ProfileFileError(str(err)) from None
    target = cache_dir() / f"{_stem(source)}-{cache_key(text, clang_version(clang))}.bpf.o"
    if not target.exists():
        compile_object(source, target, clang)
    return str(target)


def cache_key(source: bytes, clang_id: str) -> str:
    """Hash of everything the object depends on: source, clang, flags."""
    digest = hashlib.sha256()
    for part in (clang_id, " ".join(CLANG_FLAGS)):
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
