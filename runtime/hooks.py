"""Pick, for each LSM hook with several prototypes, the program the running kernel calls right.

A profile's object carries one program per known prototype of such a hook (its metadata says
which program expects which parameter types: contract/hook_abi.py).  The kernel's BTF gives
the prototype of `bpf_lsm_<hook>`; every variant whose parameter types differ is disabled
before the load.  A hook the kernel has with no matching variant is a refusal naming it: a
program that reads its arguments at the wrong positions would check the wrong object.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from bpfbox.compiler import btf
from bpfbox.contract import abi
from bpfbox.contract.errors import BpfboxError
from bpfbox.contract.hook_abi import HookAbi

from . import libbpf

#: The kernel function a BPF LSM program of hook H attaches to.
LSM_FUNC_PREFIX = "bpf_lsm_"


class HookAbiError(BpfboxError):
    """The running kernel has a hook prototype the profile's programs were not written for."""

    exit_code = 2


@dataclass(frozen=True)
class Selection:
    """The outcome for one object: programs to leave out, and optional hooks the kernel lacks."""

    disabled: frozenset[str]
    absent: tuple[HookAbi, ...]


def kernel_prototypes(
    hooks: Iterable[str], btf_path: str = abi.BTF_PATH
) -> dict[str, tuple[str, ...] | None]:
    """hook -> the parameter types of `bpf_lsm_<hook>` in the BTF at `btf_path` (None: absent),
    read by libbpf."""
    try:
        with libbpf.LibbpfTypes(btf_path) as types:
            return {hook: types.parameter_types(LSM_FUNC_PREFIX + hook) for hook in hooks}
    except (btf.BtfError, libbpf.LibbpfError) as err:
        raise HookAbiError(
            f"cannot read the kernel's LSM hook prototypes: {err}",
            "bpfbox needs a kernel with BTF (CONFIG_DEBUG_INFO_BTF=y) and libbpf 1.x; "
            "`bpfbox-run --check-kernel` lists what this machine lacks",
        ) from None


def select(hooks: Iterable[HookAbi], prototypes: dict[str, tuple[str, ...] | None]) -> Selection:
    """Which variants to disable for a kernel with `prototypes` (kernel_prototypes)."""
    disabled: set[str] = set()
    absent: list[HookAbi] = []
    for hook in hooks:
        params = prototypes.get(hook.hook)
        programs = {v.program for v in hook.variants}
        if params is None:
            if not hook.optional:
                raise HookAbiError(
                    f"this kernel has no LSM hook {hook.hook} (no {LSM_FUNC_PREFIX}{hook.hook} "
                    "in its BTF), which the profile's programs need",
                    "use a supported kernel (Linux 6.1 to 6.12 are tested; see "
                    "`bpfbox-run --check-kernel`)",
                )
            absent.append(hook)
            disabled |= programs
            continue
        matching = {v.program for v in hook.variants if v.params == params}
        if not matching:
            known = "; ".join(f"({', '.join(v.params)})" for v in hook.variants)
            raise HookAbiError(
                f"this kernel's LSM hook {hook.hook} takes ({', '.join(params)}); the "
                f"profile has programs only for {known}: refusing rather than misreading "
                "its arguments",
                "use a supported kernel (Linux 6.1 to 6.12 are tested), or a bpfbox that "
                f"knows this prototype of {hook.hook}",
            )
        disabled |= programs - matching
    return Selection(frozenset(disabled), tuple(absent))


def for_running_kernel(hooks: tuple[HookAbi, ...]) -> Selection:
    """The selection for the running kernel."""
    if not hooks:
        return Selection(frozenset(), ())
    return select(hooks, kernel_prototypes(h.hook for h in hooks))
