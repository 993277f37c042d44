"""The contract as a C header, `bpfbox_abi.h`, for the BPF library in codegen_templates/bpf.

Generated, never written by hand: every number and name the BPF side shares with the runtime
comes from `abi`, and the struct sizes the runtime decodes with are asserted at compile time.
The rendered text is checked in as codegen_templates/bpf/bpfbox_abi.h so that the library is
plain C an editor and clang open directly; a host test fails when that file is stale
(`make golden` rewrites it), and the code generator pastes this rendering, not the file.
"""

from __future__ import annotations

from . import abi, kinds

FILE_NAME = "bpfbox_abi.h"

#: Names the C side uses for the contract's maps and variables (macros for the identifiers).
_NAMES = {
    "TASKS_MAP": abi.TASKS_MAP,
    "EVENTS_MAP": abi.EVENTS_MAP,
    "STATS_MAP": abi.STATS_MAP,
    "SCRATCH_MAP": abi.SCRATCH_MAP,
    "REPEATS_MAP": abi.REPEATS_MAP,
    "REPEAT_SCRATCH_MAP": abi.REPEAT_SCRATCH_MAP,
    "METADATA_SYMBOL": abi.METADATA_SYMBOL,
    "CFG_PROFILE_INO": abi.CFG_PROFILE_INO,
    "CFG_PROFILE_DEV": abi.CFG_PROFILE_DEV,
    "CFG_COMPLAIN": abi.CFG_COMPLAIN,
    "CFG_LEARN": abi.CFG_LEARN,
    "CFG_REDUCE_REPEATS": abi.CFG_REDUCE_REPEATS,
    "CFG_PROFILE_PATH": abi.CFG_PROFILE_PATH,
    "CFG_PROFILE_NAME_LEN": abi.CFG_PROFILE_NAME_LEN,
}

_NUMBERS = {
    "STAT_LOST_EVENTS": abi.STAT_LOST_EVENTS,
    "STAT_CONFINED_TASKS": abi.STAT_CONFINED_TASKS,
    "STAT_DENIALS": abi.STAT_DENIALS,
    "STAT_COUNT": abi.STAT_COUNT,
    "PROFILE_PATH_LEN": abi.PROFILE_PATH_LEN,
    "MAX_CONTEXTS": abi.MAX_CONTEXTS,
    "TASK_STATE_LAYOUT": abi.TASK_STATE_LAYOUT,
    "PATH_BUF": abi.PATH_BUF,
    "PATH_MAX_LEN": abi.PATH_MAX_LEN,
    "NAME_MAX": abi.NAME_MAX,
    "WALK_STEPS": abi.WALK_STEPS,
    "NO_RULE": abi.NO_RULE,
    "LEARN_STACK_DEPTH": abi.LEARN_STACK_DEPTH,
    "LEARN_EXE_LEN": abi.LEARN_EXE_LEN,
    "LEARN_STACK_WINDOW": abi.LEARN_STACK_WINDOW,
    "REPEATS_ENTRIES": abi.REPEATS_ENTRIES,
    "REPEAT_WINDOW_NS": abi.REPEAT_WINDOW_NS,
}


def render() -> str:
    """The text of bpfbox_abi.h."""
    lines = [
        "/* SPDX-License-Identifier: GPL-2.0 */",
        "/* Generated from bpfbox's contract (contract/abi.py): do not edit, run `make golden`. */",
        "#ifndef BPFBOX_ABI_H",
        "#define BPFBOX_ABI_H",
        "",
        "/* Maps, read-only configuration and the metadata string, by the runtime's names. */",
    ]
    lines += [f"#define {macro} {name}" for macro, name in _NAMES.items()]
    lines.append(f'#define METADATA_SECTION "{abi.METADATA_SECTION}"')
    lines += ["", "/* Limits and indices. */"]
    lines += [f"#define {macro} {value}" for macro, value in _NUMBERS.items()]
    lines.append("")
    numbers = {"RULE_SELF_PROTECTION": abi.SELF_PROTECTION_KIND}
    numbers |= {f"RULE_{k.name.upper()}": k.number for k in kinds.REGISTRY.values()}
    lines += _enum("rule_kind", numbers)
    lines += _enum("decision_code", {f"DECISION_{d.name}": d.value for d in abi.Decision})
    lines += _enum("event_kind", {f"EVENT_{k.name}": k.value for k in abi.EventKind})
    lines += _enum("reason", {f"REASON_{r.name}": r.value for r in abi.Reason})
    lines += _enum("frame_status", {f"FRAME_{s.name}": s.value for s in abi.FrameStatus})
    lines += _enum("protected", {f"PROTECTED_{p.name}": p.value for p in abi.Protected})
    lines.append("/* Access flags of each rule kind (signals and capabilities are 1 << number). */")
    for kind in kinds.REGISTRY.values():
        if not kind.flags.numbered:
            prefix = kind.name.upper()
            bits = kind.flags.bits.items()
            lines += [f"#define {prefix}_{name.upper()} {bit:#x}ULL" for name, bit in bits]
    lines += ["", "/* SysV IPC object kinds (the `class` of ipc rules). */"]
    lines += [
        f"#define IPC_CLASS_{name.upper()} {number}" for name, number in abi.IPC_KINDS.items()
    ]
    lines += [
        "",
        "/* ioctl commands: X(NAME, number) for each command an ioctl rule can name; a command",
        " * with no name requests IOCTL_UNNAMED. */",
        f"#define IOCTL_UNNAMED {abi.IOCTL_UNNAMED:#x}ULL",
        "#define IOCTL_COMMANDS(X) \\",
        *(f"\tX({name.upper()}, {number:#x}U) \\" for name, number in abi.IOCTL_COMMANDS.items()),
        "\t/* end of IOCTL_COMMANDS */",
        "",
    ]
    lines += _struct("event", abi.EVENT_FIELDS, abi.EVENT_STRUCT.size, "the runtime's decoder")
    lines += _struct(
        "repeat_count",
        abi.REPEAT_COUNT_FIELDS,
        abi.REPEAT_COUNT_STRUCT.size,
        "the runtime's decoder",
    )
    lines += _struct(
        "stack_frame",
        abi.STACK_FRAME_FIELDS,
        abi.STACK_FRAME_STRUCT.size,
        "struct bpf_stack_build_id (linux/bpf.h)",
    )
    lines += _struct(
        "learn_event", abi.LEARN_EVENT_FIELDS, abi.LEARN_EVENT_STRUCT.size, "the runtime's decoder"
    )
    lines += _struct(
        "task_state",
        abi.TASK_STATE_FIELDS,
        abi.TASK_STATE_STRUCT.size,
        "TASK_STATE_LAYOUT (a pinned task-storage map is reused across programs)",
    )
    lines.append("#endif /* BPFBOX_ABI_H */")
    return "\n".join(lines) + "\n"


def _enum(name: str, members: dict[str, int]) -> list[str]:
    return [f"enum {name} {{", *(f"\t{m} = {v}," for m, v in members.items()), "};", ""]


def _struct(name: str, fields: tuple[abi.Field, ...], size: int, what: str) -> list[str]:
    return [
        f"struct {name} {{",
        *(f"\t{f.declaration};" for f in fields),
        "};",
        f'_Static_assert(sizeof(struct {name}) == {size}, "struct {name} must match {what}");',
        "",
    ]
