"""Self-protection: what a confined process never does, whatever its policy grants.

tests/e2e/policies/selfprotect.bpfbox grants every access to /sys, every capability and
ptrace of one program (target2): bpffs (the pinned profiles), the bpf() system call, module
loading and changes to the mount tree stay refused; ptrace, /proc/PID/mem and
process_vm_writev reach only what a rule names, never bpfbox-run or an unconfined process.
"""

from __future__ import annotations

import os
import stat
import subprocess

import pytest
from confined import DATA, Enforcing, fresh_data, probe, start_target

pytestmark = [pytest.mark.vm, pytest.mark.usefixtures("installed_tree")]

#: A character device major no driver registers (majors go up to 4095): opening a node of
#: it makes the kernel ask for the module `char-major-4000-0`.
UNCLAIMED_MAJOR = 4000


@pytest.fixture(scope="module")
def session():
    fresh_data(dirs=("mountpoint", "elsewhere"))
    os.mknod(DATA / "nomodule", stat.S_IFCHR | 0o600, os.makedev(UNCLAIMED_MAJOR, 0))
    with Enforcing("selfprotect") as running:
        yield running


def refused(session, what: str) -> list[dict]:
    return session.wait_for(lambda e: e["rule_kind"] == "self" and e["access"] == [what])


class TestBpf:
    def test_the_pins_are_out_of_reach_of_any_fs_rule(self, session):
        assert probe("stat:/sys/kernel", "readdir:/sys/kernel") == ["ok", "ok"]
        ops = ["stat:/sys/fs/bpf/bpfbox", "readdir:/sys/fs/bpf", "rmdir:/sys/fs/bpf/bpfbox"]
        assert probe(*ops) == ["EPERM"] * len(ops)
        assert os.listdir("/sys/fs/bpf/bpfbox"), "the profile's pins are still there"
        events = session.wait_for(
            lambda e: e["reason"] == "self_protection" and e["object"] == "/sys/fs/bpf/bpfbox"
        )
        assert events[0]["rule_kind"] == "fs" and events[0]["rule"] is None

    def test_the_bpf_system_call_even_with_every_capability(self, session):
        assert probe("bpf-obj-get:/sys/fs/bpf/bpfbox") == ["EPERM"]
        assert refused(session, "bpf_syscall")


class TestModules:
    def test_no_module_is_loaded_for_a_confined_process(self, session):
        # The open fails (ENXIO) whether or not the module request was refused: the event
        # says that bpfbox refused it.
        assert probe(f"open:r:{DATA / 'nomodule'}") == ["ENXIO"]
        assert refused(session, "module_request")


class TestMountTree:
    def test_no_mount_umount_move_or_pivot_root_even_with_every_capability(self, session):
        """With cap(any) each of these would succeed (pivot_root in a mount namespace of the
        probe's own): the tree decides which file a path names."""
        mountpoint, elsewhere = DATA / "mountpoint", DATA / "elsewhere"
        subprocess.run(["mount", "-t", "tmpfs", "bpfbox-test", str(mountpoint)], check=True)
        try:
            ops = [f"mount-tmpfs:{elsewhere}", f"umount:{mountpoint}"]
            ops += [f"move-mount:{mountpoint}:{elsewhere}", f"pivot-root:{mountpoint}"]
            assert probe(*ops) == ["EPERM"] * 4
            assert os.path.ismount(mountpoint) and not os.path.ismount(elsewhere)
            seen = session.wait_for_count(
                lambda e: e["rule_kind"] == "self" and e["access"] == ["mount_tree"], 4
            )
            assert len(seen) == 4
            assert "a change to the mount tree" in seen[0]["message"]
        finally:
            subprocess.run(["umount", str(mountpoint)], check=False)


class TestProcesses:
    """ptrace, /proc/PID/mem and process_vm_writev all go through ptrace_access_check."""

    @pytest.mark.parametrize("op", ["ptrace-attach", "proc-mem-write", "vm-write"])
    def test_bpfbox_run_and_unconfined_processes(self, session, op):
        target = start_target()
        try:
            assert probe(f"{op}:{session.process.pid}", f"{op}:{target.pid}") == ["EPERM"] * 2
        finally:
            target.kill()
            target.wait()

    def test_what_a_rule_names(self, session):
        target = start_target("target2")
        try:
            ops = [f"ptrace-attach:{target.pid}", f"proc-mem-write:{target.pid}"]
            # Address 0 is not mapped: EFAULT once the access check let the write through.
            assert probe(*ops, f"vm-write:{target.pid}") == ["ok", "ok", "EFAULT"]
        finally:
            target.kill()
            target.wait()
