"""The DFA scan of the BPF program, compiled for the host, against compiler/glob.py.

The scan (codegen_templates/bpf/dfa.bpf.h) and the tables (codegen's DFA part, as bpfboxc
emits them) are the program's own C; only bpf_loop and the verifier's masks are replaced by
plain C (tests/unit/c/dfa_host.c).  Globs and paths are drawn from the alphabets of the glob
oracle test, so the kernel's matcher is held to the same inputs as the Python one.
"""

from __future__ import annotations

import ctypes
import itertools
import random
import shutil
import subprocess
from pathlib import Path

import pytest
from bpfbox.compiler import codegen, glob
from bpfbox.compiler.ir import GlobTable
from hypothesis import given, settings
from hypothesis import strategies as st

from .helpers import TESTS
from .test_glob import GLOB_COMPONENTS, PATH_COMPONENT, PATH_COMPONENTS

REPO = TESTS.parent
SHIM = Path(__file__).parent / "c" / "dfa_host.c"


def _draw_globs(count: int, seed: int) -> list[str]:
    """`count` distinct well-formed globs from the oracle's components."""
    rng = random.Random(seed)
    globs: list[str] = []
    while len(globs) < count:
        pattern = "/" + "/".join(rng.choices(GLOB_COMPONENTS, k=rng.randint(1, 4)))
        if pattern not in globs and glob.path_problem(pattern) is None:
            try:
                glob.parse(pattern)
            except glob.GlobError:
                continue
            globs.append(pattern)
    return globs


class HostScan:
    """The scan compiled with the tables of `globs`, loaded into this process."""

    def __init__(self, globs: list[str], folder: Path) -> None:
        compiler = shutil.which("cc") or shutil.which("clang")
        assert compiler, "a C compiler is needed: run `make setup`"
        self.dfa = glob.compile_globs(globs)
        table = GlobTable("fs", "file path", tuple(globs), self.dfa)
        (folder / "table.c").write_text(codegen.dfa_part(table))
        library = folder / "scan.so"
        command = [compiler, "-O2", "-Wall", "-Wextra", "-Werror", "-shared", "-fPIC"]
        command += [
            "-I",
            str(REPO / "codegen_templates"),
            '-DDFA_TABLE="table.c"',
            "-I",
            str(folder),
        ]
        result = subprocess.run(
            [*command, str(SHIM), "-o", str(library)], capture_output=True, text=True
        )
        assert result.returncode == 0, result.stderr
        self.lib = ctypes.CDLL(str(library))
        self.lib.scan.argtypes = [ctypes.c_char_p]
        self.lib.scan.restype = ctypes.c_uint32
        self.lib.accepts.argtypes = [ctypes.c_uint32, ctypes.c_uint32]
        self.count = len(globs)

    def match(self, path: bytes) -> frozenset[int]:
        state = self.lib.scan(path)
        return frozenset(i for i in range(self.count) if self.lib.accepts(state, i))


# 70 globs: more than one 64-bit word of accept bits.
GLOBS = _draw_globs(70, seed=7)


@pytest.fixture(scope="module")
def scan(tmp_path_factory: pytest.TempPathFactory) -> HostScan:
    return HostScan(GLOBS, tmp_path_factory.mktemp("dfa"))


def test_every_short_path_scans_as_glob_py_matches(scan: HostScan) -> None:
    paths = [
        ("/" + "/".join(combo)).encode()
        for length in (1, 2, 3)
        for combo in itertools.product(PATH_COMPONENTS, repeat=length)
    ]
    mismatches = [p for p in paths if scan.match(p) != scan.dfa.match(p)]
    assert not mismatches
    assert any(scan.dfa.match(p) for p in paths), "the inputs must match some globs"


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.lists(PATH_COMPONENT, min_size=1, max_size=5).map(lambda p: "/" + "/".join(p)))
def test_oracle_paths_scan_as_glob_py_matches(scan: HostScan, path: str) -> None:
    assert scan.match(path.encode()) == scan.dfa.match(path.encode())


@pytest.mark.parametrize("width", [2, 4])
def test_stored_rows_split_over_many_maps_scan_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, width: int
) -> None:
    """Past glob.MAX_TABLE_BYTES the stored rows are split into shards, one map each: with a
    small shard, this table needs several, and the scan must still follow every transition,
    with 2-byte state numbers and with the 4-byte ones of DFAs over 65,536 states."""
    monkeypatch.setattr(glob, "rows_per_shard", lambda states, classes: 100)
    monkeypatch.setattr(glob, "entry_bytes", lambda states: width)
    sharded = HostScan(GLOBS, tmp_path)
    assert (
        codegen.dfa_part(GlobTable("fs", "file path", tuple(GLOBS), sharded.dfa)).count(
            'SEC(".rodata.fsn'
        )
        >= 3
    )
    paths = [
        ("/" + "/".join(combo)).encode()
        for length in (1, 2, 3)
        for combo in itertools.product(PATH_COMPONENTS, repeat=length)
    ]
    assert [sharded.match(p) for p in paths] == [sharded.dfa.match(p) for p in paths]
