"""The contract between compiler, generated program and runtime: one source, both sides.

- the checked-in C header is the contract's rendering, and its struct sizes hold in C;
- every golden policy, compiled, carries metadata the runtime reads back, and the message for
  every rule names the file and line the rule is written on (a fragment's rules their own).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from bpfbox.contract import abi, header, kinds
from bpfbox.runtime import events, metadata

from .helpers import TESTS, compile_text, golden_arguments

REPO = TESTS.parent
HEADER = REPO / "codegen_templates" / "bpf" / header.FILE_NAME
INCLUDES = REPO / "compiler" / "includes"
GOLDEN_POLICIES = sorted((TESTS / "golden" / "ir").glob("*.bpfbox")) + sorted(
    (TESTS / "golden" / "codegen").glob("*.bpfbox")
)


def embedded_metadata(c_source: str) -> str:
    """The metadata string of a generated C file, decoded from its C literal."""
    match = re.search(
        rf"{abi.METADATA_SYMBOL}\[\] SEC\(.*?\) __attribute__\(\(used\)\) =(.*?);\n",
        c_source,
        re.S,
    )
    assert match, "no metadata string in the generated C"
    literal = "".join(re.findall(r'"((?:[^"\\]|\\.)*)"', match.group(1)))
    return literal.encode().decode("unicode_escape")


def test_header_struct_sizes_hold_in_c(tmp_path: Path) -> None:
    clang = shutil.which("clang")
    assert clang, "clang is needed: run `make setup`"
    source = tmp_path / "sizes.c"
    source.write_text(
        "typedef unsigned int __u32;\ntypedef unsigned long long __u64;\n"
        f'#include "{header.FILE_NAME}"\n'
    )
    result = subprocess.run(
        [clang, "-target", "bpf", "-Werror", "-fsyntax-only", "-I", str(HEADER.parent), source],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr


def test_a_wrong_size_fails_to_compile(tmp_path: Path) -> None:
    """The asserts can fail: a header whose event struct lost a field does not compile."""
    broken = header.render().replace("\t__u64 flags;\n", "", 1)
    (tmp_path / header.FILE_NAME).write_text(broken)
    source = tmp_path / "sizes.c"
    source.write_text(
        "typedef unsigned int __u32;\ntypedef unsigned long long __u64;\n"
        f'#include "{header.FILE_NAME}"\n'
    )
    result = subprocess.run(
        ["clang", "-target", "bpf", "-fsyntax-only", "-I", str(tmp_path), source],
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0 and "struct event must match" in result.stderr


def _source_line(file: str, line: int, policy: Path) -> str:
    if file.startswith("<bpfbox>/"):
        path = INCLUDES / file.removeprefix("<bpfbox>/")
    else:
        path = policy.parent / file
    return path.read_text().splitlines()[line - 1]


@pytest.mark.parametrize("policy", GOLDEN_POLICIES, ids=lambda p: p.stem)
def test_every_rule_message_names_its_own_file_and_line(policy: Path) -> None:
    compilation = compile_text(
        policy.read_text(), name=policy.name, path=policy, **golden_arguments(policy)
    )
    assert compilation.c_source, compilation.diagnostics
    meta = metadata.parse(json.loads(embedded_metadata(compilation.c_source)), "x")
    assert len(meta.rules) == len(compilation.program.rules)
    for rule in meta.rules:
        event = events.Event(
            kind=abi.EventKind.DENY,
            rule_kind=kinds.REGISTRY[rule.kind].number,
            pid=1,
            tgid=1,
            flags=rule.flags,
            rule=rule.id,
            reason=abi.Reason.DENIED_BY_RULE,
            object_num=0,
            target_pid=0,
            comm="x",
            object="/x",
        )
        assert f"({rule.file}:{rule.line} denies it)" in events.message(meta, event)
        written = _source_line(rule.file, rule.line, policy)
        assert written[rule.column - 1 :].startswith(rule.kind + "("), (rule, written)
