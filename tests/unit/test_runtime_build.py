"""Compiling .bpf.c profiles with clang, and the cache that makes it happen once."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from bpfbox.compiler import clang
from bpfbox.runtime import build

SOURCE = """\
typedef unsigned char __u8;
typedef unsigned short __u16;
typedef unsigned int __u32;
typedef unsigned long long __u64;
typedef int __s32;
typedef long long __s64;
typedef __u16 __be16;
typedef __u32 __be32;
typedef __u32 __wsum;
#include <bpf/bpf_helpers.h>
char LICENSE[] SEC("license") = "GPL";
SEC("uprobe") int probe(void *ctx) { return %d; }
"""


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / "bpfbox"


@pytest.fixture
def compiles(monkeypatch) -> list[Path]:
    """Records every compile bpfbox-run does (and still does it)."""
    seen: list[Path] = []
    real = build.compile_object

    def counting(source, target, clang_program=None):
        seen.append(source)
        real(source, target, clang_program)

    monkeypatch.setattr(build, "compile_object", counting)
    return seen


def write(path: Path, value: int = 0) -> Path:
    path.write_text(SOURCE % value)
    return path


def test_compiles_once_then_reuses(tmp_path, cache, compiles):
    source = write(tmp_path / "demo.bpf.c")
    first = build.object_for(str(source))
    assert Path(first).parent == cache
    assert Path(first).name.startswith("demo-") and first.endswith(".bpf.o")
    assert Path(first).read_bytes().startswith(b"\x7fELF")
    second = build.object_for(str(source))
    assert second == first
    assert len(compiles) == 1
    assert not list(cache.glob(".partial-*"))


def test_changed_source_gets_a_new_object(tmp_path, cache, compiles):
    source = write(tmp_path / "demo.bpf.c")
    first = build.object_for(str(source))
    write(source, 1)
    assert build.object_for(str(source)) != first
    assert len(compiles) == 2


def test_key_depends_on_clang_not_on_the_kernel(monkeypatch):
    """CO-RE objects are relocated at load time: a kernel upgrade must not cost a compile."""
    key = build.cache_key(b"x", "clang 14")
    assert build.cache_key(b"x", "clang 15") != key
    assert build.cache_key(b"y", "clang 14") != key
    monkeypatch.setattr(os, "uname", lambda: os.uname_result(("Linux", "h", "9.9.9", "#1", "x")))
    assert build.cache_key(b"x", "clang 14") == key


def test_prebuilt_object_is_used_as_is(tmp_path, cache, compiles):
    obj = build.object_for(str(write(tmp_path / "demo.bpf.c")))
    copy = tmp_path / "prebuilt.o"
    shutil.copy(obj, copy)
    assert build.object_for(str(copy)) == str(copy)
    assert len(compiles) == 1


def test_unwritable_cache_falls_back_to_tmp(tmp_path, monkeypatch):
    blocked = tmp_path / "file-not-dir"
    blocked.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocked))
    monkeypatch.setattr(build.tempfile, "gettempdir", lambda: str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    assert build.cache_dir() == tmp_path / "tmp" / f"bpfbox-{os.getuid()}"


def test_compile_error_shows_clangs_first_lines(tmp_path, cache):
    source = tmp_path / "broken.bpf.c"
    source.write_text("int f(void) { return undefined_name; }\n" * 40)
    with pytest.raises(build.BuildError) as err:
        build.object_for(str(source))
    message = str(err.value)
    assert message.startswith(f"clang could not compile {source}:")
    assert "undefined_name" in message
    assert "more lines)" in message.splitlines()[-1]
    assert len(message.splitlines()) == clang.ERROR_LINES + 2
    assert err.value.exit_code == 1
    assert not list(cache.glob("*.o"))


def test_clang_missing(tmp_path, cache, monkeypatch):
    monkeypatch.setattr(clang.shutil, "which", lambda name: None)
    with pytest.raises(build.ClangMissing) as err:
        build.object_for(str(write(tmp_path / "demo.bpf.c")))
    assert err.value.exit_code == 2
    assert "install clang" in err.value.help


@pytest.mark.parametrize("name", ["absent.bpf.c", "notes.txt"])
def test_bad_profile_files(tmp_path, name):
    path = tmp_path / name
    if name.endswith(".txt"):
        path.write_text("hello")
    with pytest.raises(build.ProfileFileError) as err:
        build.object_for(str(path))
    assert err.value.exit_code == 2
