"""The kernel test of a policy whose automaton's stored rows span two maps (tests/e2e/
test_scale.py, TestRowsOverTwoMaps) is the test of a DFA walk through several maps: this
checks that the paths it tries do read rows from every map of that automaton, so that a walk
losing a later map's branch fails it.  Kernels before 6.8 verify a bpf_loop callback for its
first iteration only: had the walk's callback started from a state the verifier knows, they
could have dropped every map but one as dead code (codegen_templates/bpf/dfa.bpf.h, match()).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from bpfbox.compiler import glob
from bpfbox.compiler.pipeline import FRONT_END, Compilation, run
from bpfbox.compiler.resolve import ElfResolver
from bpfbox.compiler.source import SourceFile

E2E = Path(__file__).resolve().parent.parent / "e2e"
sys.path.insert(0, str(E2E))
import many_rules  # noqa: E402
import test_scale  # noqa: E402


def test_the_branching_test_reads_rows_from_every_map(tmp_path: Path) -> None:
    profile = tmp_path / many_rules.PROBE.lstrip("/")
    profile.parent.mkdir(parents=True)
    shutil.copy(shutil.which("true") or "/bin/true", profile)
    text = many_rules.branching(many_rules.BRANCHING_RULES, root=test_scale.ROOT)
    source = SourceFile("branching.bpfbox", None, text)
    compilation = run(Compilation(source, ElfResolver(sysroot=tmp_path)), FRONT_END)
    assert compilation.program is not None, compilation.diagnostics.sorted()
    dfa = compilation.program.fs_globs.dfa
    packed = dfa.packed
    per_map = glob.rows_per_shard(len(dfa.transitions), dfa.class_count)
    maps = -(-len(packed.rows) // per_map)
    read_from = set()
    for i in test_scale.branching_checked():
        folder = f"{test_scale.ROOT}/{test_scale.branching_folder(i)}"
        for name in "abc":
            state = 1
            for byte in f"{folder}/{name}".encode():
                cls = dfa.classes[byte]
                if packed.own(state, cls) is None:
                    read_from.add(packed.row_of[state] // per_map)
                state = packed.next(state, cls)
                if not state:
                    break
    assert maps > 1
    assert read_from == set(range(maps))
