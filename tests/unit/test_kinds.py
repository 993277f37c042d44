"""The rule-kind registry: the docs, the IR and the library agree with it, and a new kind is
one registry entry plus one C header."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from bpfbox.compiler import ir
from bpfbox.contract import abi, kinds
from bpfbox.contract.kinds import FlagSet, Hook, Object, Param, Parameter, RuleKind
from bpfbox.runtime import events, metadata

from .helpers import TESTS, compile_text
from .test_contract import embedded_metadata

REPO = TESTS.parent
LIBRARY = REPO / "codegen_templates" / "bpf"
LANGUAGE_DOC = REPO / "docs" / "language.md"


def _rule_table() -> dict[str, str]:
    """The rows of docs/language.md's rule table, by rule kind."""
    text = LANGUAGE_DOC.read_text()
    table = text[text.index("| rule | objects | flags |") :].split("\n\n", 1)[0]
    rows = {}
    for row in table.splitlines()[2:]:
        kind = re.match(r"\| `(\w+)\(", row)
        assert kind, f"docs/language.md: a rule-table row without a rule: {row}"
        rows[kind.group(1)] = row
    return rows


def _signatures(kind: RuleKind) -> list[str]:
    """Every way to write the kind: `ptrace(TARGET)` and `ptrace(TARGET, ACCESS)`."""
    names = [p.name for p in kind.parameters]
    return [f"{kind.name}({', '.join(names[:n])})" for n in range(kind.required, len(names) + 1)]


def test_the_docs_rule_table_is_the_registry() -> None:
    rows = _rule_table()
    assert list(rows) == list(kinds.REGISTRY)
    for name, kind in kinds.REGISTRY.items():
        row = rows[name]
        written = re.findall(r"`(\w+\([^`]*\))`", row.split("|")[1])
        assert written == _signatures(kind), row
        for parameter in (p for p in kind.parameters if p.flags is not None):
            documented = set(re.findall(r"`(\w+)`", row.split("|")[3]))
            names = list(parameter.flags.bits)
            wanted = [names[0], names[-1]] if "..." in row else names
            missing = [n for n in wanted if n not in documented]
            assert not missing, f"docs/language.md, `{name}` row lacks {missing}"


def test_every_hook_of_a_kind_is_a_program_of_its_header() -> None:
    for kind in kinds.REGISTRY.values():
        for hook in kind.hooks:
            header = hook.header or kind.header
            program = f'SEC("lsm/{hook.name}")'
            assert program in (LIBRARY / header).read_text(), f"{kind.name}: not in {header}"


def test_every_lsm_program_of_the_library_is_a_kinds_hook_or_a_lifecycle_hook() -> None:
    owned = {h.name for k in kinds.REGISTRY.values() for h in k.hooks}
    owned |= set(kinds.LIFECYCLE_HOOKS) | set(kinds.SELF_PROTECTION_HOOKS)
    found = set()
    for header in LIBRARY.glob("*.bpf.h"):
        found |= set(re.findall(r'SEC\("lsm/(\w+)"\)', header.read_text()))
    assert found == owned


def test_ir_hooks_follow_the_registry() -> None:
    expected = [(h.name, k.name) for k in kinds.REGISTRY.values() for h in k.hooks]
    assert [(h.name, h.kind) for h in ir.hooks()] == expected


FSINFO_HEADER = """\
/* A test-only rule kind: fsinfo(OPS), decided by task_getsid and file_receive. */
SEC("lsm/task_getsid")
int BPF_PROG(bpfbox_task_getsid, struct task_struct *p)
{
    struct task_state *t = confined_current();
    struct decision d = {};
    struct object o = { .kind = RULE_FSINFO };

    if (!t)
        return 0;
    decide_fsinfo(t, &d, FSINFO_GETSID);
    return verdict(t, &d, RULE_FSINFO, FSINFO_GETSID, &o);
}

SEC("lsm/file_receive")
int BPF_PROG(bpfbox_file_receive, struct file *file)
{
    struct task_state *t = confined_current();
    struct decision d = {};
    struct object o = { .kind = RULE_FSINFO };

    if (!t)
        return 0;
    decide_fsinfo(t, &d, FSINFO_RECEIVE);
    return verdict(t, &d, RULE_FSINFO, FSINFO_RECEIVE, &o);
}
"""


def test_a_new_rule_kind_is_one_registry_entry_and_one_header(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    header = tmp_path / "hooks_fsinfo.bpf.h"
    header.write_text(FSINFO_HEADER)
    ops = FlagSet("fsinfo operation", {"getsid": 1 << 0, "receive": 1 << 1}, "E0102")
    number = max(k.number for k in kinds.REGISTRY.values()) + 1
    fsinfo = RuleKind(
        "fsinfo",
        number,
        (Parameter("OPS", Param.FLAGS, ops),),
        Object.NONE,
        (Hook("task_getsid", ("getsid",)), Hook("file_receive", ("receive",))),
        header=str(header),
        wording="fsinfo {access}",
    )
    monkeypatch.setitem(kinds.REGISTRY, "fsinfo", fsinfo)

    compilation = compile_text('#![profile "/sbin/mylogin"]\n#[deny] fsinfo(receive)\n')
    assert compilation.c_source, compilation.diagnostics
    assert "hook file_receive fsinfo receive: 1" in ir.format_ir(compilation.program)
    clang = shutil.which("clang")
    assert clang, "clang is needed: run `make setup`"
    source = tmp_path / "out.bpf.c"
    source.write_text(compilation.c_source)
    result = subprocess.run(
        [clang, *abi.CLANG_FLAGS, "-Werror", "-c", str(source), "-o", str(tmp_path / "out.o")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert 'SEC("lsm/file_receive")' in compilation.c_source

    meta = metadata.parse(json.loads(embedded_metadata(compilation.c_source)), "x")
    event = events.Event(
        kind=abi.EventKind.DENY,
        rule_kind=number,
        pid=1,
        tgid=1,
        flags=2,
        rule=1,
        reason=abi.Reason.DENIED_BY_RULE,
        object_num=0,
        target_pid=0,
        comm="x",
        object="",
    )
    assert events.message(meta, event) == "denied x[1] fsinfo receive (test.bpfbox:2 denies it)"


def test_fs_ioctl_allows_no_dangerous_command_and_denies_every_one() -> None:
    ioctl = kinds.REGISTRY["ioctl"]
    dangerous = ioctl.flags.mask(list(abi.IOCTL_DANGEROUS))
    every = sum(ioctl.flags.bits.values()) | abi.IOCTL_UNNAMED
    assert ioctl.absorbs is not None and (ioctl.absorbs.kind, ioctl.absorbs.flag) == ("fs", "ioctl")
    assert ioctl.absorbs.allows & dangerous == 0
    assert ioctl.absorbs.allows == every & ~dangerous
    assert ioctl.absorbs.applies == every
    # The header's command numbers and the contract agree, and no two names share a number.
    assert len(set(abi.IOCTL_COMMANDS.values())) == len(abi.IOCTL_COMMANDS)
    assert set(abi.IOCTL_DANGEROUS) <= set(abi.IOCTL_COMMANDS)


def test_prlimit_is_decided_only_by_rules_for_any_target() -> None:
    """Its hook is told two credentials, not which process: rules naming a program or `self`
    cannot decide it, and the IR does not list them."""
    compilation = compile_text(
        '#![profile "/sbin/mylogin"]\nproc(self, read)\nproc("/usr/bin/*", write)\n'
        "proc(any, read)\n"
    )
    text = ir.format_ir(compilation.program)
    assert "hook task_prlimit proc read|write: 3\n" in text
    assert "hook task_setnice proc write: 2\n" in text
