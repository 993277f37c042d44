"""Reading and validating the metadata of compiled profiles."""

from __future__ import annotations

import copy
import json
import subprocess
from pathlib import Path

import pytest
from bpfbox.contract import abi
from bpfbox.runtime import metadata

FIXTURES = Path(__file__).parents[1] / "e2e" / "fixtures"
CLANG = ["clang", "-O2", "-g", "-target", "bpf", "-D__TARGET_ARCH_x86", "-I/usr/include"]

VALID = {
    "version": abi.METADATA_VERSION,
    "policy": "mylogin.bpfbox",
    "profile": "/sbin/mylogin",
    "name": "mylogin",
    "task_state_layout": abi.TASK_STATE_LAYOUT,
    "hooks": [{"hook": "inode_setattr",
               "variants": [{"program": "p", "params": ["struct dentry *"]}]}],
    "contexts": [
        {"index": 0, "kind": "func", "symbol": "check_password", "binary": "/sbin/mylogin",
         "offset": 4660, "enter_program": "bpfbox_func_enter_0",
         "leave_program": "bpfbox_func_leave_0"},
        {"index": 1, "kind": "kfunc", "symbol": "vfs_read"},
    ],
    "rules": [
        {"id": 1, "file": "mylogin.bpfbox", "line": 4, "column": 5, "kind": "fs",
         "action": "allow", "audit": False, "flags": 17, "text": 'fs("/etc/shadow", read)',
         "contexts": ["check_password"]},
    ],
}  # fmt: skip


def test_valid_document():
    meta = metadata.parse(VALID, "x.bpf.o")
    assert meta.name == "mylogin"
    assert meta.contexts[0].offset == 4660
    assert meta.contexts[1].binary is None
    assert meta.rule(1).contexts == ("check_password",)
    assert meta.rule(abi.NO_RULE) is None


def broken(edit) -> dict:
    doc = copy.deepcopy(VALID)
    edit(doc)
    return doc


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.update(version=1), "metadata version 1, but this bpfbox-run reads version 4"),
        (lambda d: d.pop("profile"), "metadata field metadata.profile is missing"),
        (lambda d: d.update(profile="sbin/x"), "must be an absolute path"),
        (lambda d: d.update(rules={}), "metadata.rules must be of type list"),
        (lambda d: d["contexts"][0].pop("offset"), "contexts[0].offset is missing (required"),
        (lambda d: d["contexts"][0].update(offset=-1), "contexts[0].offset must not be negative"),
        (lambda d: d["contexts"][0].update(offset=True), "contexts[0].offset must be of type int"),
        (lambda d: d["rules"][0].update(id=0), "rules[0].id must be greater than 0"),
        (lambda d: d["rules"][0].update(kind="disk"), "rules[0].kind is 'disk', not one of"),
        (lambda d: d["rules"][0].update(contexts=[1]), "rules[0].contexts must be a list of"),
        (lambda d: d["rules"][0].pop("file"), "rules[0].file is missing"),
        (lambda d: d["rules"][0].update(flags=-1), "rules[0].flags must not be negative"),
        (lambda d: d["rules"][0].update(audit=1), "rules[0].audit must be of type bool"),
        (lambda d: d.pop("task_state_layout"), "metadata.task_state_layout is missing"),
        (lambda d: d["rules"].append(dict(d["rules"][0])), "rules[1].id repeats rule id 1"),
    ],
)
def test_invalid_documents_name_the_field(edit, message):
    with pytest.raises(metadata.MetadataError) as err:
        metadata.parse(broken(edit), "x.bpf.o")
    assert message in str(err.value)
    assert str(err.value).startswith("x.bpf.o: ")


def test_not_an_object():
    with pytest.raises(metadata.MetadataError, match="must be a JSON object"):
        metadata.parse([], "x.bpf.o")


@pytest.fixture(scope="module")
def compiled(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("meta") / "count_calls.bpf.o"
    subprocess.run(
        [*CLANG, f"-I{FIXTURES}", '-DPROFILE_PATH="/bin/true"', '-DFUNC_OFFSET=4660', "-c",
         str(FIXTURES / "count_calls.bpf.c"), "-o", str(out)],
        check=True,
    )  # fmt: skip
    return out


def test_read_from_a_compiled_object(compiled):
    meta = metadata.read(str(compiled))
    assert (meta.name, meta.profile, meta.policy) == (
        "count_calls",
        "/bin/true",
        "count_calls.bpfbox",
    )
    assert meta.contexts[0].enter_program == "bpfbox_func_enter_0"
    assert meta.features == frozenset({"uprobe"})
    assert meta.rodata[abi.CFG_PROFILE_INO] == (0, 8)
    assert meta.rodata[abi.CFG_PROFILE_DEV] == (8, 8)
    assert meta.rodata[abi.CFG_PROFILE_PATH][1] == abi.PROFILE_PATH_LEN


def test_object_without_metadata(tmp_path):
    source = tmp_path / "bare.c"
    source.write_text('int x __attribute__((section("data"))) = 1;\n')
    out = tmp_path / "bare.o"
    subprocess.run([*CLANG, "-c", str(source), "-o", str(out)], check=True)
    with pytest.raises(metadata.MetadataError, match=r"has no bpfbox metadata \(ELF section"):
        metadata.read(str(out))


def test_not_elf(tmp_path):
    path = tmp_path / "x.bpf.o"
    path.write_text(json.dumps(VALID))
    with pytest.raises(metadata.MetadataError, match="not a valid ELF object"):
        metadata.read(str(path))


def test_missing_file(tmp_path):
    with pytest.raises(metadata.MetadataError, match="cannot read"):
        metadata.read(str(tmp_path / "absent.bpf.o"))
