"""The kernel test of 10,000 rules (tests/e2e/test_scale.py) is also the test of a DFA walk
through several transition maps: this checks that the paths it tries do step out of every
map of that policy's automaton, so that a walk losing a later map's branch fails it.  Kernels
before 6.8 verify a bpf_loop callback for its first iteration only: had the walk's callback
started from the constant start state, they would have dropped every map but the first as
dead code (codegen_templates/bpf/dfa.bpf.h, match()).
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


def test_the_ten_thousand_rule_test_walks_through_every_transition_map(tmp_path: Path) -> None:
    rules = test_scale.TestTenThousandRules.rules
    profile = tmp_path / many_rules.PROBE.lstrip("/")
    profile.parent.mkdir(parents=True)
    shutil.copy(shutil.which("true") or "/bin/true", profile)
    text = many_rules.policy(rules, root=test_scale.ROOT)
    source = SourceFile("many.bpfbox", None, text)
    compilation = run(Compilation(source, ElfResolver(sysroot=tmp_path)), FRONT_END)
    assert compilation.program is not None, compilation.diagnostics.sorted()
    dfa = compilation.program.fs_globs.dfa
    states = len(dfa.transitions)
    per_map = glob.rows_per_shard(states, dfa.class_count)
    maps = -(-states // per_map)
    stepped_from = set()
    for name in test_scale._files(rules):
        state = 1
        for byte in f"{test_scale.ROOT}/{name}".encode()[:-1]:
            state = dfa.transitions[state][dfa.classes[byte]]
            if not state:
                break
            stepped_from.add(state // per_map)
    assert maps > 1
    assert stepped_from == set(range(maps))
