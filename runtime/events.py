"""Decode the events a profile sends and say what happened, for people and for machines.

Text lines name who did what and point at the policy line responsible:

    bpfbox: denied mylogin[412] read /etc/shadow (mylogin.bpfbox:4 allows it only inside main)
    bpfbox: would deny mylogin[412] write /etc/shadow (no rule in mylogin.bpfbox allows it)
    bpfbox: audit mylogin[412] read /etc/passwd (mylogin.bpfbox:7)
    bpfbox: tainted mylogin[412] by read /etc/passwd (mylogin.bpfbox:3); enforcing from now on
    bpfbox: 3 events lost (mylogin's ring buffer was full)

With `bpfbox-run --reduce-repeats`, an event the same as one reported less than a second
before (whoever acts) is counted instead; its next line says how many were left out, and the
counts still pending when the reader stops get a line each, with no acting task:

    bpfbox: would deny ls[41] read /a (no rule in a.bpfbox allows it); 41 more since the last report
    bpfbox: would deny read /a (no rule in a.bpfbox allows it); 87 more since the last report

The acting task's name and the object are the confined process's to choose: in text lines
(and the JSON `message`) what does not print shows escaped (\\xNN, \\uNNNN) and a backslash
doubled, so that no name can start a line of its own (`shown`).  The JSON `comm` and
`object` fields keep them as they are, escaped by JSON.

`--log-format json` writes one JSON object per line instead.  Its fields are stable:

    time        UTC time the runtime read the event (it looks every 100 ms: usually within
                0.1 s of the access), ISO 8601 with milliseconds
    event       "deny", "complain" (would have been denied), "audit", "taint" or "lost"
    profile     the profile's name;  policy: the policy file it was compiled from
    pid, tid    process id (thread group) and thread id of the acting task;  comm: its name
                (all three null in a count of repeats still pending when the reader stops)
    rule_kind   "fs", "proc", "signal", "ptrace", "net", "cap", "ipc", "key" or "ioctl";
                "self" for what no rule can allow (self-protection: the bpf() system call,
                a module request, a file owner naming another process)
    access      list of what was attempted: fs/proc/ptrace/net/ipc/key operations, signal
                names ("sigterm"), capability names ("sys_admin"), ioctl command names
                ("tiocsti"; a command with no name as its number in hex); for "self":
                "bpf_syscall", "module_request", "signal_owner" or "mount_tree"
    object      the file (fs, ioctl), the target's executable (signal, ptrace, proc), the
                IPC object kind ("shm", "sem", "msg") for ipc, else null
    target_pid  the target process (signal, ptrace, proc; self's signal_owner), else null;
                null too when the kernel does not say which process (prlimit)
    family      the address family ("inet6") for net, else null
    reason      why a deny/complain happened: "no_rule", "denied_by_rule", "outside_context",
                "partial_grant", "self_protection" (a bpffs path, or rule_kind "self");
                null for audit and taint
    rule        the rule pointed at: {"id", "file", "line", "column", "action", "text",
                "contexts"}, or null; `file` is the policy or the fragment the rule is in
    repeats     only when not 0 (--reduce-repeats): how many of the same event were
                counted, not reported, since its last report
    message     the text line, without the "bpfbox: " prefix
For "lost" records only time, event, profile, policy, lost (new since the previous record),
total and message are present.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import sys
import syslog
from dataclasses import dataclass
from datetime import datetime, timezone
from json.encoder import encode_basestring_ascii
from operator import itemgetter
from typing import Any, NamedTuple, TextIO

from bpfbox.contract import abi, kinds
from bpfbox.contract.metadata import Rule
from bpfbox.runtime.metadata import Metadata

PREFIX = "bpfbox: "

_KIND_NAMES = {value: name for name, value in abi.EVENT_KINDS.items()}
_REASON_NAMES = {value: name for name, value in abi.REASONS.items()}
_FAMILY_NAMES = {value: name for name, value in abi.FAMILIES.items()}
_PROTECTED_NAMES = {value: name for name, value in abi.PROTECTED.items()}
#: The rule_kind name of self-protection events (abi.SELF_PROTECTION_KIND: no rule kind).
SELF = "self"
#: By `object_num`: Protected is an IntEnum, so a plain number finds its entry.
_PROTECTED_WORDING: dict[int, str] = {
    abi.Protected.BPF_SYSCALL: "the bpf() system call",
    abi.Protected.MODULE_REQUEST: "a kernel module request",
    abi.Protected.SIGNAL_OWNER: "a file owner (F_SETOWN) naming process {target}",
    abi.Protected.MOUNT_TREE: "a change to the mount tree (mount, umount, pivot_root)",
}


def _flag_table(kind_name: str) -> dict[str, int]:
    """The bits of a rule kind's access names (signals, capabilities: `1 << number`)."""
    kind = kinds.REGISTRY.get(kind_name)
    return kind.flags.bits if kind else {}


def _object(kind_name: str) -> kinds.Object | None:
    kind = kinds.REGISTRY.get(kind_name)
    return kind.object if kind else None


class EventError(Exception):
    """A ring-buffer sample that is not an event of this ABI."""


@dataclass(frozen=True)
class StackFrame:
    """One user stack frame of a learning event (abi.STACK_FRAME_FIELDS)."""

    status: int  # abi.FrameStatus
    build_id: bytes
    offset: int  # the file offset; the virtual address when status is FrameStatus.IP


@dataclass(frozen=True)
class Learned:
    """What a learning run's events add (abi.LEARN_EVENT_FIELDS)."""

    exe: str  # the acting task's executable; "" if it could not be resolved
    stack_size: int  # bytes of frames bpf_get_task_stack wrote, or its negative errno
    frames: tuple[StackFrame, ...]  # innermost first
    exe_entry: int = 0  # the executable's entry point as loaded (AT_ENTRY), 0 if unknown
    user_sp: int = 0  # the user stack pointer the window starts at
    window: bytes = b""  # the user stack from user_sp up; empty if it could not be read


class Event(NamedTuple):
    """One decoded event; numeric fields are kept so nothing is lost for unknown values.  A
    named tuple, not a frozen dataclass: complain mode decodes one per access, and a tuple is
    made in a tenth of the time."""

    kind: int
    rule_kind: int
    pid: int
    tgid: int
    flags: int
    rule: int
    reason: int
    object_num: int
    target_pid: int
    comm: str
    object: str
    repeats: int = 0
    learned: Learned | None = None

    @property
    def kind_name(self) -> str:
        return _KIND_NAMES.get(self.kind, f"kind{self.kind}")

    @property
    def rule_kind_name(self) -> str:
        if self.rule_kind == abi.SELF_PROTECTION_KIND:
            return SELF
        kind = kinds.by_number(self.rule_kind)
        return kind.name if kind else f"kind{self.rule_kind}"

    @property
    def reason_name(self) -> str:
        return _REASON_NAMES.get(self.reason, f"reason{self.reason}")


def decode(data: bytes) -> Event:
    """Decode one ring-buffer sample (abi.EVENT_STRUCT, or abi.LEARN_EVENT_STRUCT in a
    learning run); longer samples are tolerated."""
    if len(data) < abi.EVENT_STRUCT.size:
        raise EventError(f"event of {len(data)} bytes, expected {abi.EVENT_STRUCT.size}")
    values = list(abi.EVENT_STRUCT.unpack_from(data))
    for string in _STRINGS:
        values[string] = _c_string(values[string])
    values.append(_learned(data) if len(data) >= abi.LEARN_EVENT_STRUCT.size else None)
    return Event._make(values)


_STRINGS = tuple(i for i, f in enumerate(abi.EVENT_FIELDS) if f.struct_code.endswith("s"))


def _learned(data: bytes) -> Learned:
    values = abi.LEARN_EVENT_STRUCT.unpack_from(data)
    extras = {f.name: values[i] for i, f in enumerate(abi.LEARN_EVENT_FIELDS)}
    size = extras["stack_size"]
    frames = []
    if size > 0:
        written = extras["stack"][: min(size, len(extras["stack"]))]
        for status, build_id, offset in abi.STACK_FRAME_STRUCT.iter_unpack(
            written[: len(written) - len(written) % abi.STACK_FRAME_STRUCT.size]
        ):
            if status == abi.FrameStatus.EMPTY:
                break
            frames.append(StackFrame(status, build_id, offset))
    copied = extras["window_size"]
    return Learned(
        _c_string(extras["exe"]),
        size,
        tuple(frames),
        extras["exe_entry"],
        extras["user_sp"],
        extras["window"][: max(0, min(copied, len(extras["window"])))],
    )


def _c_string(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode(errors="replace")


def access_names(event: Event) -> list[str]:
    """The names of the bits in `flags` (unknown bits as hex), in the table's order."""
    if event.rule_kind == abi.SELF_PROTECTION_KIND:
        return [_PROTECTED_NAMES.get(event.object_num, f"protected{event.object_num}")]
    kind = kinds.REGISTRY.get(event.rule_kind_name)
    if kind and kind.unnamed and event.flags == kind.unnamed:
        # An ioctl command with no name in the vocabulary: its number.
        return [f"{event.object_num:#x}"]
    table = _flag_table(event.rule_kind_name)
    names = [name for name, bit in table.items() if event.flags & bit]
    rest = event.flags & ~sum(bit for name, bit in table.items() if name in names)
    return names + ([f"{rest:#x}"] if rest else [])


def family_name(event: Event) -> str:
    """The address family of a net event, e.g. "inet6"."""
    return _FAMILY_NAMES.get(event.object_num, f"af{event.object_num}")


def describe_access(event: Event) -> str:
    """What the task tried to do: `read /etc/shadow`, `net inet6 connect`, `cap sys_admin`."""
    kind = kinds.REGISTRY.get(event.rule_kind_name)
    what = ",".join(access_names(event)) or "(nothing)"
    if event.rule_kind == abi.SELF_PROTECTION_KIND:
        wording = _PROTECTED_WORDING.get(event.object_num, what)
        return wording.format(target=event.target_pid or "group")
    if kind is None:
        return f"{event.rule_kind_name} {what}"
    if not event.flags and kind.object is kinds.Object.TARGET:
        # What no rule can name (a signal above 63) travels as its number, with no flag bit.
        what = str(event.object_num)
    return kind.wording.format(
        access=what,
        object=shown(event.object),
        target=_target(event),
        family=family_name(event),
        kind=kind.name,
        **{"class": class_name(event)},
    )


def class_name(event: Event) -> str:
    """The class of an event of a kind with classes (net: "inet6", ipc: "shm"), else ""."""
    kind = kinds.REGISTRY.get(event.rule_kind_name)
    if kind is None or kind.object is not kinds.Object.CLASS:
        return ""
    names = kind.classes.names(1 << event.object_num) if event.object_num < 64 else []
    return names[0] if names else f"#{event.object_num}"


def _target(event: Event) -> str:
    if not event.target_pid:  # the kernel does not say which (prlimit)
        return "another process"
    return f"{shown(event.object) or '?'}[{event.target_pid}]"


def location(meta: Metadata, rule: Rule | None, rule_id: int) -> str:
    """`mylogin.bpfbox:4` (the rule's own file, which may be a fragment the policy includes),
    or as much as is known when the rule is not in the metadata."""
    if rule is not None:
        return rule.location
    if rule_id == abi.NO_RULE:
        return meta.policy
    return f"rule #{rule_id} of {meta.policy}"


def explain_denial(meta: Metadata, event: Event) -> str:
    """Why a deny (or complain) event happened, in words that point at the policy."""
    rule = meta.rule(event.rule)
    where = location(meta, rule, event.rule)
    reason = event.reason_name
    if reason == "no_rule":
        return f"no rule in {meta.policy} allows it"
    if reason == "denied_by_rule":
        return f"{where} denies it"
    if reason == "outside_context":
        inside = _either(list(rule.contexts)) if rule and rule.contexts else "its contexts"
        return f"{where} allows it only inside {inside}"
    if reason == "self_protection":
        return "bpfbox protects itself and unconfined processes: no rule can allow it"
    if reason == "guards_beneath":
        return f"{where} denies a path at or beneath it, which the move would take away"
    if reason == "partial_grant":
        granted = granted_names(rule, event.flags) if rule else []
        return f"{where} grants only {','.join(granted) if granted else 'part of it'}"
    return f"{where}, {reason}"


def _either(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def granted_names(rule: Rule, requested: int) -> list[str]:
    """What of the `requested` access bits the rule grants, by name: ["read"] for
    `fs("/x", read)` and a request to read and write."""
    table = _flag_table(rule.kind)
    return [name for name, bit in table.items() if rule.flags & requested & bit]


def message(meta: Metadata, event: Event) -> str:
    """The text line for an event, without the "bpfbox: " prefix."""
    return _sentence(*_phrase(meta, event), event)


def _sentence(verb: str, rest: str, event: Event) -> str:
    line = f"{verb} {shown(event.comm)}[{event.tgid}] {rest}"
    return line + _repeated(event) if event.repeats else line


def pending_message(meta: Metadata, event: Event) -> str:
    """The text line for a count of repeats still pending (no acting task)."""
    verb, rest = _phrase(meta, event)
    return f"{verb} {rest}{_repeated(event)}"


def _repeated(event: Event) -> str:
    return f"; {event.repeats} more since the last report"


def shown(text: str) -> str:
    """`text` as one line shows it: a confined process names itself (prctl PR_SET_NAME) and
    its files, and a newline there would write a line of its own making into a text log.
    What does not print (control characters, line separators, bidirectional overrides)
    shows as \\xNN, \\uNNNN or \\UNNNNNNNN, and a backslash doubled."""
    if text.isprintable() and "\\" not in text:
        return text
    return "".join(c if c.isprintable() and c != "\\" else _escaped(c) for c in text)


def _escaped(c: str) -> str:
    code = ord(c)
    if c == "\\":
        return "\\\\"
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def _phrase(meta: Metadata, event: Event) -> tuple[str, str]:
    """The text line around the acting task: ("would deny", "read /x (no rule ... allows it)")."""
    access = describe_access(event)
    kind = event.kind_name
    if kind == "deny":
        return "denied", f"{access} ({explain_denial(meta, event)})"
    if kind == "complain":
        return "would deny", f"{access} ({explain_denial(meta, event)})"
    where = location(meta, meta.rule(event.rule), event.rule)
    if kind == "audit":
        return "audit", f"{access} ({where})"
    if kind == "taint":
        return "tainted", f"by {access} ({where}); enforcing from now on"
    return kind, f"{access} ({where})"


def lost_message(meta: Metadata, count: int, total: bool = False) -> str:
    """`3 events lost (mylogin's ring buffer was full)`; `total` says it is the final count."""
    noun = "event" if count == 1 else "events"
    scope = " in total" if total else ""
    return f"{count} {noun} lost{scope} ({meta.name}'s ring buffer was full)"


def event_record(meta: Metadata, event: Event, now: datetime) -> dict[str, Any]:
    """The JSON object for an event (see the module docstring for the fields)."""
    return _record(meta, event, _per_event(event, now, message(meta, event)))


def _per_event(event: Event, now: datetime, text: str) -> dict[str, Any]:
    """The JSON fields that events differing only in the acting task do not share."""
    return {
        "time": timestamp(now),
        "pid": event.tgid,
        "tid": event.pid,
        "comm": event.comm,
        "message": text,
    }


def _record(meta: Metadata, event: Event, own: dict[str, Any]) -> dict[str, Any]:
    kind = event.rule_kind_name
    rule = meta.rule(event.rule)
    denial = event.kind_name in ("deny", "complain")
    targeted = _object(kind) is kinds.Object.TARGET
    return {
        "time": own["time"],
        "event": event.kind_name,
        "profile": meta.name,
        "policy": meta.policy,
        "pid": own["pid"],
        "tid": own["tid"],
        "comm": own["comm"],
        "rule_kind": kind,
        "access": access_names(event),
        "object": _object_record(event, kind, targeted),
        "target_pid": event.target_pid if (targeted or kind == SELF) and event.target_pid else None,
        "family": family_name(event) if kind == "net" else None,
        "reason": event.reason_name if denial else None,
        "rule": _rule_record(rule),
        # Only when there are any: without --reduce-repeats the records stay as they were.
        **({"repeats": event.repeats} if event.repeats else {}),
        "message": own["message"],
    }


def _object_record(event: Event, kind: str, targeted: bool) -> str | None:
    if targeted or _object(kind) is kinds.Object.PATH:
        return event.object
    if kind != "net" and _object(kind) is kinds.Object.CLASS:
        return class_name(event)
    return None


def _rule_record(rule: Rule | None) -> dict[str, Any] | None:
    if rule is None:
        return None
    return {
        "id": rule.id,
        "file": rule.file,
        "line": rule.line,
        "column": rule.column,
        "action": rule.action,
        "text": rule.text,
        "contexts": list(rule.contexts),
    }


def timestamp(now: datetime) -> str:
    """UTC, ISO 8601 with milliseconds: 2026-11-29T16:00:00.000Z."""
    return now.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


#: The fields of an Event that do not change what it says, only who did it.
_ACTOR_FIELDS = ("pid", "tgid", "comm", "repeats", "learned")
_WHAT_IT_SAYS = itemgetter(
    *(i for i, name in enumerate(Event._fields) if name not in _ACTOR_FIELDS)
)
#: Descriptions a Reporter keeps; past that it starts again (a confined process can make any
#: number of distinct paths).
DESCRIPTIONS_KEPT = 4096


class _Description(NamedTuple):
    """What every event with the same kind, access, object, rule and reason says."""

    verb: str
    rest: str
    #: The JSON record as json.dumps writes it, cut around the per-event values: text, a
    #: per-event field's name, text, ... text.  Cut at the description's second event (a
    #: stream of distinct events would pay for cuts it never uses); None until then, and
    #: empty when the record cannot be cut (_json_pieces).  Uncut, events are written whole.
    json_pieces: tuple[str, ...] | None = None


def _json_pieces(meta: Metadata, event: Event) -> tuple[str, ...]:
    """The cut record of `event`'s description, for events with no repeats."""
    record = _record(meta, event._replace(repeats=0), _STAND_INS)
    text = json.dumps(record)
    pieces: list[str] = []
    for name in record:
        if name in _STAND_INS:
            before, _, text = text.partition(_STAND_INS_JSON[name])
            pieces += [before, name]
    pieces.append(text)
    if any(_NUL_JSON in piece for piece in pieces[::2]):
        # A constant with a NUL (a crafted object's metadata) could hold a stand-in's text.
        return ()
    return tuple(pieces)


#: Stand-ins for the per-event values while a description's JSON record is written once:
#: json.dumps writes NUL as \u0000, which only a NUL gives, and no string of an event has
#: one (they are C strings), so each stand-in's text is found exactly where its value goes.
_STAND_INS: dict[str, Any] = {
    name: f"\0{name}\0"
    for name in _per_event(Event(0, 0, 0, 0, 0, 0, 0, 0, 0, "", ""), datetime.now(), "")
}
_STAND_INS_JSON = {name: json.dumps(stand_in) for name, stand_in in _STAND_INS.items()}
_NUL_JSON = json.dumps("\0")[1:-1]


def _json_value(value: str | int) -> str:
    """A string or number as json.dumps writes it, without its per-call set-up."""
    return str(value) if isinstance(value, int) else encode_basestring_ascii(value)


class Reporter:
    """Writes events and lost-event counts to a stream, as text lines or JSON lines.

    A write that fails (a full disk, EIO, a closed pipe or stderr) never stops anything:
    each kind of failure is reported once, to stderr and syslog, and every failed line is
    counted in `failed_writes`.  Enforcement is in the kernel and does not wait for the log.
    """

    def __init__(self, stream: TextIO, json_lines: bool = False) -> None:
        self.stream = stream
        self.json_lines = json_lines
        self.failed_writes = 0
        self._reported: set[str] = set()
        self._descriptions: dict[tuple[int, Any], tuple[Metadata, _Description]] = {}
        # Unbuffered writes: a line that failed is not retried with the next one.
        try:
            self._fd: int | None = stream.fileno()
        except (OSError, ValueError, AttributeError):
            self._fd = None

    def event(self, meta: Metadata, event: Event) -> None:
        """Report one event: what it says is worked out once for all that say the same (in
        complain mode, a loop's accesses), its own fields for each."""
        said = self._description(meta, event)
        text = _sentence(said.verb, said.rest, event)
        if not self.json_lines:
            self._write(PREFIX + text)
            return
        own = _per_event(event, datetime.now(timezone.utc), text)
        pieces = said.json_pieces
        if not pieces or event.repeats:
            self._write(json.dumps(_record(meta, event, own)))
            return
        self._write(
            pieces[0]
            + "".join(_json_value(own[pieces[i]]) + pieces[i + 1] for i in range(1, len(pieces), 2))
        )

    def _description(self, meta: Metadata, event: Event) -> _Description:
        key = (id(meta), _WHAT_IT_SAYS(event))
        kept = self._descriptions.get(key)
        # The metadata is kept with its descriptions, so its id cannot be another's.
        if kept is None or kept[0] is not meta:
            if len(self._descriptions) >= DESCRIPTIONS_KEPT:
                self._descriptions.clear()
            said = _Description(*_phrase(meta, event))
        elif self.json_lines and kept[1].json_pieces is None:
            said = kept[1]._replace(json_pieces=_json_pieces(meta, event))
        else:
            return kept[1]
        self._descriptions[key] = (meta, said)
        return said

    def pending(self, meta: Metadata, event: Event) -> None:
        """Report a count of repeats still pending (Session.take_repeats): no acting task."""
        text = pending_message(meta, event)
        if not self.json_lines:
            self._write(PREFIX + text)
            return
        now = timestamp(datetime.now(timezone.utc))
        own = {"time": now, "pid": None, "tid": None, "comm": None, "message": text}
        self._write(json.dumps(_record(meta, event, own)))

    def lost(self, meta: Metadata, new: int, total: int, final: bool = False) -> None:
        """Report that `new` more events were lost (`total` so far); `final` at exit."""
        text = lost_message(meta, total if final else new, total=final)
        if self.json_lines:
            record = {
                "time": timestamp(datetime.now(timezone.utc)),
                "event": "lost",
                "profile": meta.name,
                "policy": meta.policy,
                "lost": 0 if final else new,
                "total": total,
                "message": text,
            }
            self._write(json.dumps(record))
        else:
            self._write(PREFIX + text)

    def _write(self, line: str) -> None:
        try:
            if self._fd is None:
                self.stream.write(line + "\n")
                self.stream.flush()
            else:
                # One write per line, so that `tail -f` on a --log file shows it at once.
                os.write(self._fd, (line + "\n").encode())
        except (OSError, ValueError) as err:
            self._write_failed(err)

    def _write_failed(self, err: OSError | ValueError) -> None:
        self.failed_writes += 1
        if isinstance(err, OSError):
            what = errno.errorcode.get(err.errno, "error") if err.errno is not None else "error"
        else:
            what = "closed"
        if what in self._reported:
            return
        self._reported.add(what)
        name = getattr(self.stream, "name", "the event log")
        reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
        warning = (
            f"bpfbox-run: warning: cannot write events to {name}: {reason} ({what}); "
            "enforcement continues, further failed lines are only counted"
        )
        syslog.syslog(syslog.LOG_WARNING, warning)
        # None when bpfbox-run started without a standard error (`2>&-`).
        if sys.__stderr__ is not None:
            with contextlib.suppress(OSError, ValueError):
                sys.__stderr__.write(warning + "\n")
                sys.__stderr__.flush()
