"""Hook ABI variants: the program of each LSM hook prototype, chosen from the kernel's BTF.

The BTF fixtures carry the `bpf_lsm_<hook>` prototypes of Debian's 6.1 and 6.12 kernels
(tests/fixtures/btf/lsm_btf.py); tiny.btf has no LSM hook at all.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from bpfbox.contract import hook_abi
from bpfbox.contract.metadata import Document
from bpfbox.runtime import build, hooks, kernel, libbpf, loader

from .helpers import compile_text

ROOT = Path(__file__).parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "btf"
LIBRARY = ROOT / "codegen_templates" / "bpf"
HOOKS = tuple(hook_abi.HOOKS.values())


def selection(btf_name: str) -> hooks.Selection:
    prototypes = hooks.kernel_prototypes(hook_abi.HOOKS, str(FIXTURES / btf_name))
    return hooks.select(HOOKS, prototypes)


def test_6_1_keeps_the_dentry_first_and_user_namespace_variants():
    chosen = selection("lsm_6_1.btf")
    kept = hook_abi.variant_programs() - chosen.disabled
    assert kept == {
        "bpfbox_inode_setattr",
        "bpfbox_inode_setxattr_userns",
        "bpfbox_inode_removexattr_userns",
        "bpfbox_userns_create",
    }
    assert [h.hook for h in chosen.absent] == [
        "inode_set_acl",
        "inode_remove_acl",
        "inode_get_acl",
        "file_truncate",
    ]


def test_6_12_keeps_the_idmap_variants_and_the_6_2_hooks():
    chosen = selection("lsm_6_12.btf")
    kept = hook_abi.variant_programs() - chosen.disabled
    assert kept == {
        "bpfbox_inode_setattr_idmap",
        "bpfbox_inode_setxattr_idmap",
        "bpfbox_inode_removexattr_idmap",
        "bpfbox_inode_set_acl_idmap",
        "bpfbox_inode_remove_acl_idmap",
        "bpfbox_inode_get_acl_idmap",
        "bpfbox_file_truncate",
        "bpfbox_userns_create",
    }
    assert chosen.absent == ()


def test_a_kernel_without_a_required_hook_is_refused_by_name():
    with pytest.raises(hooks.HookAbiError, match="no LSM hook inode_setattr"):
        selection("tiny.btf")


def test_an_unknown_prototype_is_refused_rather_than_misread():
    prototypes = {h.hook: h.variants[0].params for h in HOOKS}
    prototypes["inode_setattr"] = ("struct mnt_idmap *", "struct iattr *", "struct dentry *")
    with pytest.raises(hooks.HookAbiError) as err:
        hooks.select(HOOKS, prototypes)
    assert "inode_setattr takes (struct mnt_idmap *, struct iattr *, struct dentry *)" in str(
        err.value
    )


def _c_parameters() -> dict[str, tuple[str, ...]]:
    """Program name -> its BPF_PROG parameter types, from the library's C."""
    text = "".join(path.read_text() for path in sorted(LIBRARY.glob("*.bpf.h")))
    programs = {}
    for name, params in re.findall(r"BPF_PROG\((\w+),([^)]*)\)", text):
        types = [re.sub(r"\s*\b\w+$", "", p.strip()) for p in params.split(",")]
        programs[name] = tuple(t.replace("const ", "").replace("__u64", "size_t") for t in types)
    return programs


def test_the_library_has_each_variant_with_the_contract_parameters():
    programs = _c_parameters()
    for hook in HOOKS:
        for variant in hook.variants:
            assert programs.get(variant.program) == variant.params, variant.program


def test_metadata_carries_the_variants():
    document = Document(policy="p.bpfbox", profile="/bin/p", name="p", contexts=(), rules=())
    again = Document.from_json(json.loads(document.to_json()), "p.bpf.o")
    assert again.hooks == HOOKS


@pytest.fixture
def btf_of(monkeypatch):
    def use(name: str) -> None:
        monkeypatch.setattr(kernel, "BTF_PATH", str(FIXTURES / name))

    return use


def test_check_kernel_names_a_missing_helper_and_the_floor(btf_of):
    btf_of("lsm_6_12.btf")
    outcome = kernel.check_helpers()
    assert outcome.status == kernel.MISSING
    assert "bpf_loop (5.17)" in outcome.detail
    assert "Linux 5.17 or newer" in outcome.fix


def test_check_kernel_lists_optional_hooks_the_kernel_lacks(monkeypatch, btf_of):
    btf_of("lsm_6_1.btf")
    # The fixture has only the prototype-dependent hooks: pretend the library uses no other.
    monkeypatch.setattr(kernel, "library_hooks", lambda: list(hook_abi.HOOKS))
    outcome = kernel.check_lsm_hooks()
    assert outcome.status == kernel.OK
    assert "file_truncate absent (Linux 6.2+)" in outcome.detail


def test_check_kernel_names_a_missing_hook(btf_of):
    btf_of("lsm_6_12.btf")
    outcome = kernel.check_lsm_hooks()
    assert outcome.status == kernel.MISSING
    assert "no LSM hook bprm_creds_for_exec" in outcome.detail


def test_the_loader_leaves_other_kernels_variants_out_of_a_real_object(tmp_path):
    """A compiled library object, opened by libbpf: the variants the 6.1 selection disables
    are neither loaded nor attached (`set_autoload(false)`), every other program is."""
    source = tmp_path / "empty.bpf.c"
    source.write_text(compile_text('#![profile "/sbin/mylogin"]\n').c_source)
    target = tmp_path / "empty.bpf.o"
    build.compile_object(source, target)
    obj = libbpf.BpfObject(str(target))
    try:
        disabled = selection("lsm_6_1.btf").disabled
        for program in obj.programs():
            if program.name in disabled:
                program.disable()
        every = {p.name for p in obj.programs()}
        loaded = {p.name for p in loader._loaded_programs(obj)}
    finally:
        obj.close()
    assert disabled <= every
    assert loaded == every - disabled
    assert {"bpfbox_inode_setattr", "bpfbox_inode_setxattr_userns"} <= loaded
