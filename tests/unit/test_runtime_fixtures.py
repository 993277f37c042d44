"""The hand-written test objects follow compiler/abi.py, and the VM harness builds its boot.

tests/e2e/fixtures/contract.h restates the contract in C for objects that stand in for
bpfboxc output; if abi.py changes, this test says which number to update.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest
from bpfbox.compiler import abi

TESTS = Path(__file__).parents[1]
CONTRACT = TESTS / "e2e" / "fixtures" / "contract.h"

EXPECTED = {
    "EVENT_DENY": abi.EVENT_KINDS["deny"],
    "EVENT_AUDIT": abi.EVENT_KINDS["audit"],
    "EVENT_COMPLAIN": abi.EVENT_KINDS["complain"],
    "EVENT_TAINT": abi.EVENT_KINDS["taint"],
    "RULE_FS": abi.RULE_KINDS["fs"],
    "FS_READ": abi.FS_FLAGS["read"],
    "FS_WRITE": abi.FS_FLAGS["write"],
    "REASON_NO_RULE": abi.REASONS["no_rule"],
    "REASON_DENIED_BY_RULE": abi.REASONS["denied_by_rule"],
    "STAT_LOST_EVENTS": abi.STAT_LOST_EVENTS,
    "STAT_CONFINED_TASKS": abi.STAT_CONFINED_TASKS,
    "STAT_DENIALS": abi.STAT_DENIALS,
    "STAT_COUNT": abi.STAT_COUNT,
    "EVENT_COMM_LEN": abi.EVENT_COMM_LEN,
    "EVENT_OBJECT_LEN": abi.EVENT_OBJECT_LEN,
    "PROFILE_PATH_LEN": abi.PROFILE_PATH_LEN,
}


def defines() -> dict[str, int]:
    found = {}
    for name, value in re.findall(r"^#define (\w+) (.+)$", CONTRACT.read_text(), re.M):
        if re.fullmatch(r"[0-9()<\s]+", value):
            found[name] = eval(value)  # digits, shifts and parentheses only
    return found


@pytest.mark.parametrize(("name", "value"), sorted(EXPECTED.items()))
def test_contract_numbers_match_abi(name, value):
    assert defines()[name] == value


def test_contract_names_match_abi():
    text = CONTRACT.read_text()
    names = (abi.CFG_PROFILE_INO, abi.CFG_PROFILE_DEV, abi.CFG_COMPLAIN, abi.EVENTS_MAP)
    names += (abi.STATS_MAP, abi.TASKS_MAP, abi.METADATA_SYMBOL, abi.METADATA_SECTION)
    for name in names:
        assert name in text


def test_contract_event_struct_matches_abi():
    body = re.search(r"struct event \{(.*?)\};", CONTRACT.read_text(), re.S).group(1)
    fields = re.findall(r"(\w+)(?:\[\w+\])?;", body)
    assert fields == [f.name for f in abi.EVENT_FIELDS]


def harness():
    spec = importlib.util.spec_from_file_location("run_in_vm", TESTS / "vm" / "run_in_vm.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_vm_boot_command_and_guest_script(tmp_path):
    vm = harness()
    args = vm._parse(["--no-bpf-lsm", "--", "pytest", "-k", "a b"])
    command = vm.boot_command("vng", "/boot/vmlinuz-x", args, tmp_path)
    assert command[command.index("--append") + 1] == "lsm=lockdown,capability,landlock"
    assert command[command.index("--rwdir") + 1] == str(tmp_path)
    script = vm.guest_script(args.command, tmp_path)
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
