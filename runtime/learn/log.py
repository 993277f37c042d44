"""The learning log: what a learning run records, one JSON object per line (version 1).

A learning run (`bpfbox-learn record`, record.py) confines a command with a profile that
denies nothing and records every access the language can express, for the whole process tree.
Several runs may be appended to one file; each starts with a `run` record, followed by the
`access` records of that run, and ends with an `end` record (a run without one, such as a
hand-written one, is read all the same).

    {"record": "run", "version": 1, "profile": "/sbin/mylogin",
     "command": ["/sbin/mylogin", "check", "root"], "started": "2026-11-29T16:00:00.000Z"}

    record    "run"
    version   1 (a reader refuses other versions)
    profile   the program the run confined (absolute path)
    command   the command line, a list of strings (informative; quoted in the draft)
    started   UTC time, ISO 8601 (informative)

    {"record": "access", "kind": "fs", "object": "/etc/shadow", "access": ["read"],
     "family": null, "target_pid": null, "pid": 412, "tid": 412, "comm": "mylogin",
     "exe": "/sbin/mylogin", "stack": [{"build_id": "6019...", "offset": 5376},
     {"build_id": "6019...", "offset": 5790}, {"ip": 140737351962000}], "stack_error": null,
     "scanned": [{"build_id": "6019...", "offset": 5790, "callee": 5376}]}

    record      "access"
    kind        a rule kind of the language: "fs", "proc", "signal", "ptrace", "net", "cap"
    access      what was requested, as names of the kind's flag table in
                contract/kinds.py (`RuleKind.flags`): fs and proc access flags, ptrace
                access, net operations, one signal name ("sigterm"), one capability name
                ("sys_admin").  Exactly the flags the enforcing program's hook requests
                (its `req`: `read|write` for an O_RDWR open), not the ones they imply.
    object      fs: the path, resolved as the enforcing program resolves it (absolute, from
                the root of the initial mount tree, no symlinks, no trailing `/`);
                proc, signal, ptrace: the target process's executable (absolute path);
                net, cap: null.  A /proc/PID/... entry is a `proc` access of the process PID
                (the kernel side decides this exactly as the enforcing program does, from
                the inode), never an `fs` one.
    family      net: the address family by its language name ("inet6"); otherwise null
    target_pid  proc, signal, ptrace: the target's process id; otherwise null
    pid, tid    process (thread group) and thread id of the acting task;  comm: its name
    exe         the acting task's executable (absolute path): the profile's program, or
                whatever a descendant executed later
    stack       the acting thread's user stack at the hook, innermost frame first, as
                `bpf_get_task_stack(current, buf, size, BPF_F_USER_STACK |
                BPF_F_USER_BUILD_ID)` returns it (at most 32 frames): each
                `struct bpf_stack_build_id` becomes
                  {"build_id": HEX, "offset": N}  status BPF_STACK_BUILD_ID_VALID: the
                      GNU build ID of the file mapped there (lower-case hex) and the frame's
                      file offset in it (vm_pgoff * page size + ip - vm_start);
                  {"ip": N}  status BPF_STACK_BUILD_ID_IP: the kernel could not read the
                      build ID (page not resident, no build ID, lock contended); the raw
                      virtual address, which the host cannot symbolise.
                Frames after the innermost are return addresses.  null when the stack was
                not collected.  The kernel's user unwinder follows frame pointers, so a
                program built without them (-O1 and above omit them unless
                -fno-omit-frame-pointer) yields short or wrong stacks.
    stack_error the negative errno of a failed `bpf_get_task_stack` as text ("-EFAULT"), or null
    scanned     return addresses into the profile's program that the recorder found in a
                copy of the top of the stack (runtime/learn/scan.py; the frame-pointer walk
                above stops early in some libc functions), innermost first, as
                {"build_id": HEX, "offset": N, "callee": M} frames of the program, `callee`
                the file offset a direct call (`e8 rel32`) before the return address jumps
                to, null for an indirect one; null when the access was not the program's
                own or no copy was made.  Optional (older logs lack
                it).  A heuristic: a stale return address left on the stack by a call that
                already returned is indistinguishable from a live one.

    The recorder writes each distinct access record of a run once (a read loop makes the
    same access from the same code many times).

    {"record": "end", "status": 0, "recorded": 14, "repeated": 3, "lost": 0,
     "unrecorded": {"ioctl accesses (not in the learning log's kinds yet)": 2}}

    record      "end"
    status      the command's exit status (128+N: killed by signal N)
    recorded    access records written;  repeated: accesses identical to one written
    lost        accesses the kernel could not queue (its ring buffer was full): rules the
                draft may miss.  The draft says so; record such a run again.
    unrecorded  accesses no record can stand for, counted by why

The host symbolises frames whose build ID is the profile program's with the program's ELF
symbols (compiler/symbols.py `FunctionIndex`).  Unknown fields are ignored, so the kernel
side may add some.  Every problem is reported as `FILE:LINE: what is wrong`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from bpfbox.compiler import language

from . import jsonl

VERSION = 1
RECORD_RUN = "run"
RECORD_ACCESS = "access"
#: The kinds a version-1 log records (above); drafts have no rules of the others yet.
LOGGED_KINDS = ("fs", "proc", "signal", "ptrace", "net", "cap")
RECORD_END = "end"
#: Kinds whose object is another process's executable.
TARGETED_KINDS = ("proc", "signal", "ptrace")
_HEX = re.compile(r"[0-9a-f]+")


class LogError(Exception):
    """A learning log that cannot be read, or a record that breaks the format."""


@dataclass(frozen=True)
class Frame:
    """One user stack frame: a file offset in the file with that build ID, or a raw address."""

    build_id: str | None = None
    offset: int | None = None
    ip: int | None = None
    callee: int | None = None  # a scanned frame's direct call target (file offset)


@dataclass(frozen=True)
class Run:
    """One learning run: the program it confined and the command it ran."""

    index: int
    profile: str
    command: tuple[str, ...]
    where: str  # FILE:LINE of its run record
    lost: int = 0  # accesses the kernel could not queue (its `end` record)


@dataclass(frozen=True)
class Access:
    """One recorded access (see the module docstring for the fields)."""

    run: Run
    kind: str
    object: str | None
    family: str | None
    access: tuple[str, ...]
    target_pid: int | None
    pid: int
    tid: int
    comm: str
    exe: str
    stack: tuple[Frame, ...] | None
    stack_error: str | None
    where: str
    scanned: tuple[Frame, ...] | None = None  # return addresses the stack scan found

    def mask(self) -> int:
        """The requested flags as the bits of the kind's flag table."""
        return language.RULE_KINDS[self.kind].flags.mask(list(self.access))


def read_logs(paths: list[Path]) -> tuple[list[Run], list[Access]]:
    """Read and validate every run and access of the logs, in order."""
    runs: list[Run] = []
    accesses: list[Access] = []
    for path in paths:
        lines = jsonl.read_lines(path, "a learning log", LogError)
        current: Run | None = None
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            record = jsonl.json_object(line, where, LogError)
            kind = record.get("record")
            if kind == RECORD_RUN:
                current = _run(record, len(runs), where)
                runs.append(current)
            elif kind not in (RECORD_ACCESS, RECORD_END):
                raise LogError(
                    f"{where}: `record` is {kind!r}; expected {RECORD_RUN!r}, "
                    f"{RECORD_ACCESS!r} or {RECORD_END!r}"
                )
            elif current is None:
                raise LogError(f"{where}: an {kind} record before any run record")
            elif kind == RECORD_ACCESS:
                accesses.append(_access(record, current, where))
            else:
                lost = _natural(record.get("lost"), "lost", where)
                current = runs[-1] = replace(current, lost=lost)
    if not runs:
        raise LogError("the learning logs hold no run record: nothing to learn from")
    return runs, accesses


def _field(record: dict[str, Any], key: str, kinds: tuple[type, ...], where: str) -> Any:
    if key not in record:
        raise LogError(f"{where}: field `{key}` is missing")
    value = record[key]
    if isinstance(value, bool) or not isinstance(value, kinds):
        expected = " or ".join("null" if k is type(None) else k.__name__ for k in kinds)
        raise LogError(f"{where}: field `{key}` must be {expected}, not {json.dumps(value)}")
    return value


def _absolute(value: str, key: str, where: str) -> str:
    if not value.startswith("/"):
        raise LogError(f"{where}: field `{key}` must be an absolute path, not {value!r}")
    return value


def _run(record: dict[str, Any], index: int, where: str) -> Run:
    version = _field(record, "version", (int,), where)
    if version != VERSION:
        raise LogError(
            f"{where}: learning log version {version}; this bpfbox-learn reads {VERSION}"
        )
    command = _field(record, "command", (list,), where)
    if not all(isinstance(word, str) for word in command):
        raise LogError(f"{where}: field `command` must be a list of strings")
    profile = _absolute(_field(record, "profile", (str,), where), "profile", where)
    return Run(index, profile, tuple(command), where)


def _access(record: dict[str, Any], run: Run, where: str) -> Access:
    kind = _field(record, "kind", (str,), where)
    if kind not in language.RULE_KINDS:
        raise LogError(
            f"{where}: `kind` is {kind!r}, not a rule kind ({', '.join(language.RULE_KINDS)})"
        )
    if kind not in LOGGED_KINDS:
        raise LogError(
            f"{where}: `kind` {kind!r} is not in learning logs of version {VERSION} "
            f"(their kinds are {', '.join(LOGGED_KINDS)})"
        )
    table = language.RULE_KINDS[kind].flags
    names = _field(record, "access", (list,), where)
    unknown = [n for n in names if not isinstance(n, str) or n not in table.bits]
    if unknown or not names:
        raise LogError(
            f"{where}: `access` must be a non-empty list of {kind} {table.what}s; "
            f"{json.dumps(unknown)} are not"
        )
    obj = _field(record, "object", (str, type(None)), where)
    if (kind == "fs" or kind in TARGETED_KINDS) and obj is None:
        raise LogError(f"{where}: a {kind} access needs its `object`")
    if obj is not None:
        _absolute(obj, "object", where)
    family = _field(record, "family", (str, type(None)), where)
    if kind == "net" and family not in language.FAMILIES.bits:
        raise LogError(f"{where}: `family` {family!r} is not an address family of the language")
    target_pid = _field(record, "target_pid", (int, type(None)), where)
    stack = _field(record, "stack", (list, type(None)), where)
    # Optional: logs written before the stack scan existed have no `scanned`.
    scanned = _field(record, "scanned", (list, type(None)), where) if "scanned" in record else None
    return Access(
        run=run,
        kind=kind,
        object=obj,
        family=family if kind == "net" else None,
        access=tuple(names),
        target_pid=target_pid,
        pid=_field(record, "pid", (int,), where),
        tid=_field(record, "tid", (int,), where),
        comm=_field(record, "comm", (str,), where),
        exe=_absolute(_field(record, "exe", (str,), where), "exe", where),
        stack=_frames(stack, "stack", where),
        stack_error=_field(record, "stack_error", (str, type(None)), where),
        where=where,
        scanned=_frames(scanned, "scanned", where),
    )


def _frames(frames: list[Any] | None, key: str, where: str) -> tuple[Frame, ...] | None:
    if frames is None:
        return None
    return tuple(_frame(f, f"{where}: {key}[{i}]") for i, f in enumerate(frames))


def _frame(frame: Any, where: str) -> Frame:
    if not isinstance(frame, dict):
        raise LogError(f"{where} must be a JSON object")
    if "ip" in frame:
        return Frame(ip=_natural(frame["ip"], "ip", where))
    build_id = frame.get("build_id")
    if not isinstance(build_id, str) or not _HEX.fullmatch(build_id):
        raise LogError(f"{where}: `build_id` must be lower-case hex (or the frame an `ip`)")
    callee = frame.get("callee")
    return Frame(
        build_id=build_id,
        offset=_natural(frame.get("offset"), "offset", where),
        callee=None if callee is None else _natural(callee, "callee", where),
    )


def _natural(value: Any, key: str, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise LogError(f"{where}: `{key}` must be a non-negative integer")
    return value
