"""The hand-written test objects follow the contract, and the VM harness builds its boot.

tests/e2e/fixtures/contract.h gives objects that stand in for bpfboxc output the contract's
generated C header, so they follow contract/abi.py by construction.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

TESTS = Path(__file__).parents[1]
CONTRACT = TESTS / "e2e" / "fixtures" / "contract.h"


def test_contract_h_takes_the_contract_from_its_generated_header():
    """No number or layout restated by hand: the generated header, which the contract test
    holds to abi.py, is included."""
    text = CONTRACT.read_text()
    assert '#include "../../../codegen_templates/bpf/bpfbox_abi.h"' in text
    assert "struct event {" not in text
    assert not re.findall(r"^#define (?:EVENT|RULE|FS|REASON|STAT)_\w+ ", text, re.M)


def harness():
    spec = importlib.util.spec_from_file_location("run_in_vm", TESTS / "vm" / "run_in_vm.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_vm_boot_command_and_guest_script(tmp_path):
    vm = harness()
    args = vm._parse(["--no-bpf-lsm", "--", "pytest", "-k", "a b"])
    command = vm.boot_command("vng", "/boot/vmlinuz-x", args, tmp_path, tmp_path / "console")
    assert command[command.index("--append") + 1] == "lsm=lockdown,capability,landlock"
    assert command[command.index("--rwdir") + 1] == str(tmp_path)
    script = vm.guest_script(args.command, tmp_path, None)
    assert "pytest -k 'a b'\n" in script
    assert f"echo $status > {tmp_path}/status" in script
    assert "export PYTHONDONTWRITEBYTECODE=1" in script


def test_vm_status_must_be_reported(tmp_path):
    vm = harness()
    with pytest.raises(vm.HarnessError, match="without reporting the command's exit status"):
        vm._reported_status(tmp_path, 0)
    (tmp_path / "status").write_text("7\n")
    assert vm._reported_status(tmp_path, 7) == 7


def test_vm_picks_the_newest_kernel(monkeypatch):
    vm = harness()
    images = ["/boot/vmlinuz-6.1.0-9-amd64", "/boot/vmlinuz-6.1.0-56-amd64"]
    monkeypatch.setattr(vm.glob, "glob", lambda pattern: images)
    monkeypatch.setattr(vm.os, "access", lambda path, mode: True)
    assert vm.newest_kernel() == "/boot/vmlinuz-6.1.0-56-amd64"
