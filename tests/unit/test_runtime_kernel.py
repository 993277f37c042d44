"""Kernel checks: each one's verdict and the fix it suggests, with the system faked."""

from __future__ import annotations

import pytest
from bpfbox.runtime import kernel


@pytest.fixture
def lsm_file(tmp_path, monkeypatch):
    path = tmp_path / "lsm"
    monkeypatch.setattr(kernel, "LSM_LIST", str(path))
    return path


def test_bpf_missing_from_the_lsm_list_suggests_the_boot_option(lsm_file):
    lsm_file.write_text("lockdown,capability,landlock")
    outcome = kernel.check_lsm_active()
    assert outcome.status == kernel.MISSING
    assert outcome.detail == "the active LSMs are lockdown,capability,landlock"
    assert outcome.fix.startswith("boot with `lsm=lockdown,capability,landlock,bpf`")


def test_bpf_in_the_lsm_list(lsm_file):
    lsm_file.write_text("lockdown,capability,bpf\n")
    assert kernel.check_lsm_active().status == kernel.OK


def test_unreadable_lsm_list_is_unknown(lsm_file):
    assert kernel.check_lsm_active().status == kernel.UNKNOWN


def test_privileges_come_from_the_effective_capabilities(monkeypatch):
    monkeypatch.setattr(kernel, "_effective_caps", lambda: 1 << 39 | 1 << 38 | 1 << 21)
    assert kernel.check_privileges().status == kernel.OK
    monkeypatch.setattr(kernel, "_effective_caps", lambda: 1 << 21)
    outcome = kernel.check_privileges()
    assert outcome.status == kernel.MISSING
    assert "lacks CAP_BPF, CAP_PERFMON" in outcome.detail


def test_probes_are_skipped_without_privileges(monkeypatch):
    monkeypatch.setattr(kernel, "_effective_caps", lambda: 0)
    checks = {c.name: c for c in kernel.run_checks()}
    assert checks["privileges"].failed
    assert checks["LSM programs load"].outcome.status == kernel.SKIPPED
    assert checks["ring buffer maps"].outcome.status == kernel.SKIPPED
    with pytest.raises(kernel.KernelError, match="not privileged") as err:
        kernel.require(["lsm"])
    assert err.value.exit_code == 2


def test_config_option_read_from_boot_config(tmp_path, monkeypatch):
    config = tmp_path / "config"
    config.write_text("CONFIG_FOO=y\n# CONFIG_BPF_LSM is not set\n")
    monkeypatch.setattr(kernel, "_kernel_config", lambda option: (None, str(config)))
    outcome = kernel.check_lsm_config()
    assert outcome.status == kernel.MISSING
    assert "CONFIG_BPF_LSM=y" in outcome.fix


def test_only_the_needed_features_are_checked(monkeypatch):
    monkeypatch.setattr(kernel, "_effective_caps", lambda: 0)
    names = {c.name for c in kernel.run_checks(["uprobe"])}
    assert "uprobes" in names and "kernel BTF" in names
    assert "LSM programs load" not in names and "fentry programs load" not in names


def test_report_puts_fixes_under_failures():
    checks = [
        kernel.Check("base", "kernel BTF", kernel.Outcome(kernel.OK, "/sys/kernel/btf/vmlinux")),
        kernel.Check("lsm", "securityfs", kernel.Outcome(kernel.MISSING, "absent", "mount it")),
    ]
    lines = kernel.report(checks).splitlines()
    assert lines[1:] == [
        "  OK       kernel BTF: /sys/kernel/btf/vmlinux",
        "  MISSING  securityfs: absent",
        "           fix: mount it",
    ]


@pytest.mark.parametrize(
    ("listing", "registered"),
    [
        ("nodev\tsysfs\n\text4\nnodev\toverlay\n", True),
        ("nodev\tsysfs\n\text4\nnodev\toverlayx\n", False),
        ("", False),
    ],
)
def test_overlayfs_registered_reads_the_file_system_list(
    tmp_path, monkeypatch, listing, registered
):
    path = tmp_path / "filesystems"
    path.write_text(listing)
    monkeypatch.setattr(kernel, "PROC_FILESYSTEMS", str(path))
    assert kernel.overlayfs_registered() is registered


def test_overlayfs_registered_without_a_list_raises_no_alarm(tmp_path, monkeypatch):
    monkeypatch.setattr(kernel, "PROC_FILESYSTEMS", str(tmp_path / "missing"))
    assert kernel.overlayfs_registered()
