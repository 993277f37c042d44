"""Can this kernel enforce a bpfbox profile?  Checked feature by feature, each with a fix.

`bpfbox-run --check-kernel` prints every check; loading runs the checks the profile's
programs need first, so an unsuitable kernel produces "boot with lsm=...,bpf" rather than an
opaque libbpf error half-way through.  Checks that must load something into the kernel (LSM
and fentry programs, ring buffer and task storage maps) are real probes: configuration files
can claim support that a sandbox or lockdown then refuses.
"""

from __future__ import annotations

import gzip
import os
import subprocess
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from bpfbox.compiler import btf
from bpfbox.contract import abi, hook_abi, kinds
from bpfbox.contract.errors import BpfboxError
from bpfbox.runtime import hooks, libbpf

OK = "ok"
MISSING = "missing"
UNKNOWN = "unknown"
SKIPPED = "skipped"

BTF_PATH = abi.BTF_PATH
SECURITYFS = "/sys/kernel/security"
LSM_LIST = f"{SECURITYFS}/lsm"
UPROBE_PMU = "/sys/bus/event_source/devices/uprobe"
PROC_CONFIG = "/proc/config.gz"
PROC_FILESYSTEMS = "/proc/filesystems"

#: Capabilities that together replace root for loading and attaching these programs.
REQUIRED_CAPS = {"CAP_BPF": 39, "CAP_PERFMON": 38, "CAP_SYS_ADMIN": 21}

#: Kernel functions the program-load probes attach to (present whenever the feature is).
LSM_PROBE_HOOK = "bpf_lsm_file_open"
FENTRY_PROBE_FUNC = "vfs_read"

#: BPF helpers the library's programs call, with the first Linux release that has each:
#: the newest of them sets the floor (bpf_loop: 5.17).
HELPERS = {
    "probe_read_kernel": "5.5",
    "ringbuf_reserve": "5.8",
    "task_storage_get": "5.11",
    "get_current_task_btf": "5.11",
    "loop": "5.17",
}
MINIMUM_KERNEL = max(HELPERS.values(), key=lambda v: tuple(map(int, v.split("."))))
#: The kernels the VM suite runs on.
TESTED_KERNELS = ("6.1", "6.12")

#: Features a profile can need (metadata.SECTION_FEATURES values) plus what every one needs.
BASE = "base"
ALL_FEATURES = frozenset({BASE, "lsm", "tracing", "uprobe"})


def overlayfs_registered() -> bool:
    """Whether overlayfs is in the kernel now (built in, or its module loaded): its types are
    then in the kernel's BTF, where a profile being loaded finds them (overlay.bpf.h).  True
    where it cannot be told: the warning this serves must not be a false alarm."""
    try:
        with open(PROC_FILESYSTEMS, encoding="utf-8") as listing:
            return any(line.split()[-1:] == ["overlay"] for line in listing)
    except OSError:
        return True


class KernelError(BpfboxError):
    """The environment cannot run bpfbox: exit status 2, with the failing checks listed."""

    exit_code = 2


@dataclass(frozen=True)
class Outcome:
    """What one check found and, unless it passed, what to do about it."""

    status: str
    detail: str
    fix: str = ""


@dataclass(frozen=True)
class Check:
    """A named check's outcome, tagged with the feature it serves."""

    feature: str
    name: str
    outcome: Outcome

    @property
    def failed(self) -> bool:
        return self.outcome.status == MISSING


def run_checks(features: Iterable[str] = ALL_FEATURES) -> list[Check]:
    """Run the checks for `features` (and the base ones); probes only with privileges."""
    wanted = set(features) | {BASE}
    privileged = check_privileges().status == OK
    checks = []
    for spec in _CHECKS:
        if spec.feature not in wanted:
            continue
        if spec.probes and not privileged:
            outcome = Outcome(SKIPPED, "needs privileges to probe")
        else:
            outcome = spec.run()
        checks.append(Check(spec.feature, spec.name, outcome))
    return checks


def require_privileges() -> None:
    """Raise KernelError unless this process may load and attach BPF programs."""
    privileges = check_privileges()
    if privileges.status != OK:
        raise KernelError(f"not privileged: {privileges.detail}", privileges.fix)


def require(features: Iterable[str]) -> None:
    """Raise KernelError unless every check `features` need passes."""
    require_privileges()
    failed = [c for c in run_checks(features) if c.failed]
    if failed:
        raise KernelError(
            "this kernel cannot enforce the profile:\n"
            + "\n".join(_report_line(c) for c in failed),
            "fix the items above; `bpfbox-run --check-kernel` lists every check",
        )


def report(checks: list[Check]) -> str:
    """A human-readable table of checks, one per line, fixes under failures."""
    header = f"kernel {os.uname().release}"
    return "\n".join([header, *(_report_line(c) for c in checks)])


def _report_line(check: Check) -> str:
    outcome = check.outcome
    line = f"  {outcome.status.upper():8} {check.name}: {outcome.detail}"
    return line + (f"\n  {'':8} fix: {outcome.fix}" if outcome.fix else "")


def check_privileges() -> Outcome:
    """Root's powers, or the three capabilities, in the *effective* set.

    A root inside a container may lack them, so capabilities are read rather than the uid.
    """
    effective = _effective_caps()
    missing = [name for name, bit in REQUIRED_CAPS.items() if not effective >> bit & 1]
    who = f"uid {os.geteuid()}"
    if not missing:
        return Outcome(OK, f"{who} with {', '.join(REQUIRED_CAPS)}")
    return Outcome(
        MISSING,
        f"{who} lacks {', '.join(missing)}",
        "run bpfbox-run as root (sudo bpfbox-run ...) or grant it CAP_BPF, CAP_PERFMON and "
        "CAP_SYS_ADMIN",
    )


def _effective_caps() -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("CapEff:"):
                    return int(line.split()[1], 16)
    except OSError:
        pass
    return 0


def check_btf() -> Outcome:
    """CO-RE relocation and BTF-typed programs need the kernel's own BTF."""
    return _present(
        BTF_PATH, "use a kernel built with CONFIG_DEBUG_INFO_BTF=y (most distribution kernels are)"
    )


def _present(path: str, fix: str) -> Outcome:
    """A check that passes when the kernel shows the file `path`."""
    if os.path.exists(path):
        return Outcome(OK, path)
    return Outcome(MISSING, f"{path} does not exist", fix)


def check_lsm_config() -> Outcome:
    """CONFIG_BPF_LSM from the kernel's config, inferred from the LSM list if none is found."""
    value, source = _kernel_config("CONFIG_BPF_LSM")
    if value == "y":
        return Outcome(OK, f"CONFIG_BPF_LSM=y in {source}")
    if source:
        return Outcome(
            MISSING,
            f"CONFIG_BPF_LSM is not set in {source}",
            "install a kernel built with CONFIG_BPF_LSM=y (Debian, Ubuntu and Fedora kernels are)",
        )
    if "bpf" in (_active_lsms() or []):
        return Outcome(OK, "inferred: bpf is an active LSM")
    return Outcome(UNKNOWN, "no kernel config found to tell")


def _kernel_config(option: str) -> tuple[str | None, str]:
    """(value, where it was read) of a kernel config option; (None, "") if no config exists."""
    candidates = ((f"/boot/config-{os.uname().release}", open), (PROC_CONFIG, gzip.open))
    for path, opener in candidates:
        try:
            with opener(path, "rt") as f:
                for line in f:
                    if line.startswith(option + "="):
                        return line.strip().split("=", 1)[1], path
            return None, path
        except OSError:
            continue
    return None, ""


def check_securityfs() -> Outcome:
    """The active LSM list lives in securityfs; mount it when missing and allowed to."""
    if not os.path.ismount(SECURITYFS) and os.geteuid() == 0:
        subprocess.run(
            ["mount", "-t", "securityfs", "securityfs", SECURITYFS],
            capture_output=True,
            check=False,
        )
    if os.path.exists(LSM_LIST):
        return Outcome(OK, f"mounted at {SECURITYFS}")
    return Outcome(
        MISSING,
        f"{LSM_LIST} is not readable",
        f"mount it as root: mount -t securityfs securityfs {SECURITYFS}",
    )


def _active_lsms() -> list[str] | None:
    try:
        with open(LSM_LIST) as f:
            return [name for name in f.read().strip().split(",") if name]
    except OSError:
        return None


def check_lsm_active() -> Outcome:
    """The BPF LSM only runs programs when `bpf` is in the boot-time LSM list."""
    active = _active_lsms()
    if active is None:
        return Outcome(UNKNOWN, f"cannot read {LSM_LIST}")
    listed = ",".join(active)
    if "bpf" in active:
        return Outcome(OK, listed)
    wanted = ",".join([*active, "bpf"])
    return Outcome(
        MISSING,
        f"the active LSMs are {listed}",
        f"boot with `lsm={wanted}` on the kernel command line (e.g. add it to "
        "GRUB_CMDLINE_LINUX in /etc/default/grub, run update-grub, reboot)",
    )


def check_uprobes() -> Outcome:
    """Function contexts of user programs are tracked with uprobes."""
    return _present(
        UPROBE_PMU,
        "use a kernel built with CONFIG_UPROBE_EVENTS=y, or drop function contexts from the policy",
    )


def _map_probe(map_type: int, kernel: str) -> Outcome:
    try:
        supported = libbpf.probe_map_type(map_type)
    except libbpf.LibbpfError as err:
        return Outcome(UNKNOWN, str(err))
    if supported == 1:
        return Outcome(OK, "a test map was created")
    if supported == 0:
        return Outcome(MISSING, "the kernel cannot create them", f"use {kernel}")
    return Outcome(UNKNOWN, f"the probe failed: {libbpf.errno_text(supported)}")


def check_ringbuf() -> Outcome:
    """Events travel through a BPF ring buffer."""
    return _map_probe(libbpf.MAP_TYPE_RINGBUF, "Linux 5.8 or newer")


def check_task_storage() -> Outcome:
    """Per-task state (taint, function context) lives in task storage."""
    return _map_probe(libbpf.MAP_TYPE_TASK_STORAGE, "Linux 5.11 or newer")


def _program_probe(func: str, prog_type: int, attach_type: int, fix: str) -> Outcome:
    try:
        btf_id = libbpf.vmlinux_func_btf_id(func)
        if not btf_id:
            return Outcome(MISSING, f"the kernel has no function {func}", fix)
        err = libbpf.probe_attach_program(prog_type, attach_type, btf_id)
    except libbpf.LibbpfError as error:
        return Outcome(UNKNOWN, str(error))
    if err == 0:
        return Outcome(OK, f"a test program for {func} loaded")
    return Outcome(
        MISSING, f"the kernel refused a test program for {func}: {libbpf.errno_text(err)}", fix
    )


def check_lsm_programs() -> Outcome:
    """Load a trivial LSM program: sandboxes and some kernels refuse them despite the config."""
    return _program_probe(
        LSM_PROBE_HOOK,
        libbpf.PROG_TYPE_LSM,
        libbpf.ATTACH_LSM_MAC,
        "use a kernel with CONFIG_BPF_LSM=y that allows BPF LSM programs (not a sandbox that "
        "forbids them): `bpftool feature probe kernel` must list program_type lsm as available",
    )


def check_fentry_programs() -> Outcome:
    """Load a trivial fentry program: kernel-function contexts use fentry/fexit."""
    return _program_probe(
        FENTRY_PROBE_FUNC,
        libbpf.PROG_TYPE_TRACING,
        libbpf.ATTACH_TRACE_FENTRY,
        "use a kernel with BPF trampolines (x86-64, CONFIG_DEBUG_INFO_BTF=y, Linux 5.5+) that "
        "allows tracing programs",
    )


def check_helpers() -> Outcome:
    """The BPF helpers the programs call, by their ids in the kernel's `enum bpf_func_id`."""
    try:
        with libbpf.LibbpfTypes(BTF_PATH) as types:
            known = types.enum_names("bpf_func_id")
    except (btf.BtfError, libbpf.LibbpfError) as err:
        return Outcome(UNKNOWN, str(err))
    missing = [f"bpf_{h} ({since})" for h, since in HELPERS.items() if f"BPF_FUNC_{h}" not in known]
    if not missing:
        return Outcome(OK, ", ".join(f"bpf_{h}" for h in HELPERS))
    return Outcome(
        MISSING,
        f"the kernel lacks {', '.join(missing)}",
        f"use Linux {MINIMUM_KERNEL} or newer (tested: {', '.join(TESTED_KERNELS)})",
    )


def library_hooks() -> list[str]:
    """Every LSM hook the library's programs attach to, in registry order."""
    used = [
        *kinds.LIFECYCLE_HOOKS,
        *(h.name for k in kinds.REGISTRY.values() for h in k.hooks),
        *kinds.SELF_PROTECTION_HOOKS,
    ]
    return list(dict.fromkeys(used))


def check_lsm_hooks() -> Outcome:
    """Every hook the programs attach to exists, with a prototype the library has a program for."""
    try:
        prototypes = hooks.kernel_prototypes(library_hooks(), BTF_PATH)
        selection = hooks.select(hook_abi.HOOKS.values(), prototypes)
    except hooks.HookAbiError as err:
        return Outcome(MISSING, str(err), err.help)
    optional = {h.hook for h in hook_abi.HOOKS.values() if h.optional}
    missing = [h for h, params in prototypes.items() if params is None and h not in optional]
    if missing:
        return Outcome(
            MISSING,
            f"the kernel has no LSM hook {', '.join(missing)}",
            f"use Linux {MINIMUM_KERNEL} or newer (tested: {', '.join(TESTED_KERNELS)})",
        )
    detail = f"{len(prototypes) - len(selection.absent)} hooks"
    variants = [h.hook for h in hook_abi.HOOKS.values() if len(h.variants) > 1]
    detail += f" (prototype-dependent, matched: {', '.join(variants)})"
    for hook in selection.absent:
        detail += f"; {hook.hook} absent (Linux {hook.since}+): {hook.without}"
    return Outcome(OK, detail)


@dataclass(frozen=True)
class _Spec:
    feature: str
    name: str
    run: Callable[[], Outcome]
    #: Loads something into the kernel, so it cannot run (meaningfully) without privileges.
    probes: bool = False


_CHECKS = (
    _Spec(BASE, "privileges", check_privileges),
    _Spec(BASE, "kernel BTF", check_btf),
    _Spec(BASE, "BPF helpers", check_helpers),
    _Spec(BASE, "ring buffer maps", check_ringbuf, probes=True),
    _Spec(BASE, "task storage maps", check_task_storage, probes=True),
    _Spec("lsm", "BPF LSM compiled in", check_lsm_config),
    _Spec("lsm", "securityfs", check_securityfs),
    _Spec("lsm", "bpf in the active LSMs", check_lsm_active),
    _Spec("lsm", "LSM programs load", check_lsm_programs, probes=True),
    _Spec("lsm", "LSM hooks", check_lsm_hooks),
    _Spec("tracing", "fentry programs load", check_fentry_programs, probes=True),
    _Spec("uprobe", "uprobes", check_uprobes),
)
