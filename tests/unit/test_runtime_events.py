"""Decoding ring-buffer events and the messages bpfbox-run prints for them."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import sys
from datetime import datetime, timezone

import pytest
from bpfbox.contract import abi, kinds
from bpfbox.runtime import events, metadata
from hypothesis import given, settings
from hypothesis import strategies as st

META = metadata.parse(
    {
        "version": abi.METADATA_VERSION,
        "policy": "mylogin.bpfbox",
        "profile": "/sbin/mylogin",
        "name": "mylogin",
        "task_state_layout": abi.TASK_STATE_LAYOUT,
        "contexts": [],
        "hooks": [{"hook": "inode_setattr",
               "variants": [{"program": "p", "params": ["struct dentry *"]}]}],
        "rules": [
            {"id": 3, "file": "mylogin.bpfbox", "line": 3, "column": 1, "kind": "fs",
             "action": "taint", "audit": False, "flags": 0x11, "text": 'fs("/etc/passwd", read)'},
            {"id": 4, "file": "mylogin.bpfbox", "line": 4, "column": 5, "kind": "fs",
             "action": "allow", "audit": False, "flags": 0x11,
             "text": 'fs("/etc/shadow", read|getattr)', "contexts": ["check_password"]},
            {"id": 5, "file": "mylogin.bpfbox", "line": 5, "column": 5, "kind": "fs",
             "action": "allow", "audit": False, "flags": 0x11,
             "text": "fs('/run/read-only', read)", "contexts": ["a", "b", "c"]},
            {"id": 7, "file": "mylogin.bpfbox", "line": 7, "column": 1, "kind": "fs",
             "action": "audit", "audit": True, "flags": 0x11, "text": 'fs("/etc/passwd", read)'},
            {"id": 9, "file": "mylogin.bpfbox", "line": 9, "column": 1, "kind": "signal",
             "action": "deny", "audit": False, "flags": 1 << 15,
             "text": 'signal("/usr/bin/x", sigterm)'},
            {"id": 12, "file": "<bpfbox>/base.bpfbox", "line": 30, "column": 1, "kind": "fs",
             "action": "deny", "audit": False, "flags": 0x2, "text": 'fs("/etc/x", write)'},
        ],
    },
    "mylogin.bpf.o",
)  # fmt: skip


def pack(**fields: object) -> bytes:
    """An event as the BPF program would send it (unspecified fields are zero)."""
    values = {f.name: 0 for f in abi.EVENT_FIELDS}
    values.update(comm=b"mylogin", object=b"", pid=412, tgid=412)
    values.update({k: (v.encode() if isinstance(v, str) else v) for k, v in fields.items()})
    return abi.EVENT_STRUCT.pack(*(values[f.name] for f in abi.EVENT_FIELDS))


def fs_event(
    kind: str, flags: tuple[str, ...], path: str, rule: int, reason: str, repeats: int = 0
) -> bytes:
    return pack(
        kind=abi.EVENT_KINDS[kind],
        rule_kind=kinds.REGISTRY["fs"].number,
        flags=sum(abi.FS_FLAGS[f] for f in flags),
        object=path,
        rule=rule,
        reason=abi.REASONS[reason],
        repeats=repeats,
    )


def text(data: bytes) -> str:
    return events.PREFIX + events.message(META, events.decode(data))


def test_event_is_320_bytes_and_decodes():
    data = fs_event("deny", ("read",), "/etc/shadow", 4, "outside_context")
    assert len(data) == abi.EVENT_STRUCT.size == 320
    event = events.decode(data + b"trailing padding is ignored")
    assert (event.comm, event.tgid, event.object, event.rule) == ("mylogin", 412, "/etc/shadow", 4)


def test_short_sample_is_an_error():
    with pytest.raises(events.EventError, match="expected 320"):
        events.decode(b"\0" * 20)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            fs_event("deny", ("read",), "/etc/shadow", 4, "outside_context"),
            "bpfbox: denied mylogin[412] read /etc/shadow "
            "(mylogin.bpfbox:4 allows it only inside check_password)",
        ),
        (
            fs_event("deny", ("read",), "/run/read-only", 5, "outside_context"),
            "bpfbox: denied mylogin[412] read /run/read-only "
            "(mylogin.bpfbox:5 allows it only inside a, b or c)",
        ),
        (
            fs_event("deny", ("read", "write"), "/etc/shadow", 4, "partial_grant"),
            "bpfbox: denied mylogin[412] read,write /etc/shadow "
            "(mylogin.bpfbox:4 grants only read)",
        ),
        (
            fs_event("deny", ("write",), "/etc/x", 12, "denied_by_rule"),
            "bpfbox: denied mylogin[412] write /etc/x (<bpfbox>/base.bpfbox:30 denies it)",
        ),
        (
            fs_event("deny", ("rm",), "/etc/ssl", 12, "guards_beneath"),
            "bpfbox: denied mylogin[412] rm /etc/ssl (<bpfbox>/base.bpfbox:30 denies a path "
            "at or beneath it, which the move would take away)",
        ),
        (
            fs_event("deny", ("write",), "/etc/shadow", 0, "no_rule"),
            "bpfbox: denied mylogin[412] write /etc/shadow (no rule in mylogin.bpfbox allows it)",
        ),
        (
            fs_event("complain", ("write",), "/etc/shadow", 0, "no_rule"),
            "bpfbox: would deny mylogin[412] write /etc/shadow "
            "(no rule in mylogin.bpfbox allows it)",
        ),
        (
            fs_event("audit", ("read",), "/etc/passwd", 7, "no_rule"),
            "bpfbox: audit mylogin[412] read /etc/passwd (mylogin.bpfbox:7)",
        ),
        (
            fs_event("taint", ("read",), "/etc/passwd", 3, "no_rule"),
            "bpfbox: tainted mylogin[412] by read /etc/passwd (mylogin.bpfbox:3); "
            "enforcing from now on",
        ),
    ],
)
def test_fs_messages(data, expected):
    assert text(data) == expected


def test_signal_denied_by_rule():
    data = pack(
        kind=abi.EVENT_KINDS["deny"],
        rule_kind=kinds.REGISTRY["signal"].number,
        flags=1 << abi.SIGNALS["sigterm"],
        object="/usr/bin/x",
        target_pid=123,
        rule=9,
        reason=abi.REASONS["denied_by_rule"],
    )
    assert text(data) == (
        "bpfbox: denied mylogin[412] signal sigterm to /usr/bin/x[123] (mylogin.bpfbox:9 denies it)"
    )


@pytest.mark.parametrize(
    ("rule_kind", "flags", "extra", "access"),
    [
        ("net", abi.NET_OPS["connect"], {"object_num": abi.FAMILIES["inet6"]}, "net inet6 connect"),
        ("net", abi.NET_OPS["create"], {"object_num": 99}, "net af99 create"),
        ("cap", 1 << abi.CAPABILITIES["sys_admin"], {}, "cap sys_admin"),
        ("signal", 0, {"object_num": 64, "target_pid": 9}, "signal 64 to ?[9]"),
        (
            "ptrace",
            abi.PTRACE_FLAGS["attach"],
            {"object": "/usr/bin/x", "target_pid": 123},
            "ptrace attach /usr/bin/x[123]",
        ),
        (
            "proc",
            abi.PROC_FLAGS["read"],
            {"object": "/usr/bin/x", "target_pid": 7},
            "proc read /usr/bin/x[7]",
        ),
        # prlimit's hook is told the credentials, not the process.
        ("proc", abi.PROC_FLAGS["write"], {}, "proc write another process"),
        ("fs", abi.FS_FLAGS["read"] | 1 << 40, {"object": "/x"}, "read,0x10000000000 /x"),
        ("ipc", abi.IPC_OPS["create"], {"object_num": abi.IPC_KINDS["msg"]}, "ipc msg create"),
        ("ipc", abi.IPC_OPS["read"], {"object_num": 9}, "ipc #9 read"),
        ("key", abi.KEY_OPS["search"] | abi.KEY_OPS["read"], {}, "key read,search"),
        (
            "ioctl",
            abi.IOCTL_FLAGS["tiocsti"],
            {"object": "/dev/pts/3", "object_num": 0x5412},
            "ioctl tiocsti /dev/pts/3",
        ),
        (
            "ioctl",
            abi.IOCTL_UNNAMED,
            {"object": "/dev/dri/card0", "object_num": 0xC04064A0},
            "ioctl 0xc04064a0 /dev/dri/card0",
        ),
    ],
)
def test_access_descriptions(rule_kind, flags, extra, access):
    event = events.decode(pack(rule_kind=kinds.REGISTRY[rule_kind].number, flags=flags, **extra))
    assert events.describe_access(event) == access


@pytest.mark.parametrize(
    ("what", "target", "message"),
    [
        ("bpf_syscall", 0, "denied mylogin[412] the bpf() system call"),
        ("module_request", 0, "denied mylogin[412] a kernel module request"),
        ("signal_owner", 77, "denied mylogin[412] a file owner (F_SETOWN) naming process 77"),
    ],
)
def test_self_protection_events(what, target, message):
    data = pack(
        kind=abi.EVENT_KINDS["deny"],
        rule_kind=abi.SELF_PROTECTION_KIND,
        object_num=abi.PROTECTED[what],
        target_pid=target,
        rule=abi.NO_RULE,
        reason=abi.REASONS["self_protection"],
    )
    event = events.decode(data)
    because = " (bpfbox protects itself and unconfined processes: no rule can allow it)"
    assert events.message(META, event) == message + because
    record = events.event_record(META, event, datetime(2024, 5, 1, tzinfo=timezone.utc))
    assert (record["rule_kind"], record["access"], record["object"]) == ("self", [what], None)
    assert record["target_pid"] == (target or None)


@pytest.mark.parametrize(("target", "shown"), [(0, "another process"), (7, "/usr/bin/x[7]")])
def test_a_target_the_kernel_does_not_name_has_no_pid(target, shown):
    """prlimit's hook is told the other process's credentials, not which process it is."""
    data = pack(
        kind=abi.EVENT_KINDS["deny"],
        rule_kind=kinds.REGISTRY["proc"].number,
        flags=abi.PROC_FLAGS["write"],
        object="/usr/bin/x" if target else "",
        target_pid=target,
        rule=abi.NO_RULE,
        reason=abi.REASONS["no_rule"],
    )
    event = events.decode(data)
    assert events.message(META, event).startswith(f"denied mylogin[412] proc write {shown} (")
    record = events.event_record(META, event, datetime(2024, 5, 1, tzinfo=timezone.utc))
    assert record["target_pid"] == (target or None)


def test_a_bpffs_path_is_an_fs_event_no_rule_can_allow():
    data = fs_event("deny", ("read",), "/sys/fs/bpf/bpfbox", abi.NO_RULE, "self_protection")
    assert text(data) == (
        "bpfbox: denied mylogin[412] read /sys/fs/bpf/bpfbox (bpfbox protects itself and"
        " unconfined processes: no rule can allow it)"
    )


def test_json_records_name_the_ipc_object_kind_and_the_ioctl_command():
    ipc = events.decode(
        pack(
            rule_kind=kinds.REGISTRY["ipc"].number,
            flags=abi.IPC_OPS["write"],
            object_num=abi.IPC_KINDS["shm"],
        )
    )
    record = events.event_record(META, ipc, datetime.now(timezone.utc))
    assert (record["rule_kind"], record["object"], record["family"]) == ("ipc", "shm", None)
    assert record["access"] == ["write"]
    ioctl = events.decode(
        pack(
            rule_kind=kinds.REGISTRY["ioctl"].number,
            flags=abi.IOCTL_UNNAMED,
            object="/dev/x",
            object_num=0x1234,
        )
    )
    record = events.event_record(META, ioctl, datetime.now(timezone.utc))
    assert (record["object"], record["access"]) == ("/dev/x", ["0x1234"])


def test_unknown_rule_id_and_reason_still_print():
    data = fs_event("deny", ("read",), "/x", 42, "no_rule")
    event = events.decode(data)
    unknown_reason = event._replace(reason=77)
    assert events.message(META, unknown_reason).endswith("(rule #42 of mylogin.bpfbox, reason77)")


def test_json_record_has_stable_fields():
    data = pack(
        kind=abi.EVENT_KINDS["deny"],
        rule_kind=kinds.REGISTRY["net"].number,
        flags=abi.NET_OPS["connect"],
        object_num=abi.FAMILIES["inet"],
        reason=abi.REASONS["no_rule"],
        pid=413,
    )
    now = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=timezone.utc)
    record = events.event_record(META, events.decode(data), now)
    assert record == {
        "time": "2024-05-01T12:00:00.123Z",
        "event": "deny",
        "profile": "mylogin",
        "policy": "mylogin.bpfbox",
        "pid": 412,
        "tid": 413,
        "comm": "mylogin",
        "rule_kind": "net",
        "access": ["connect"],
        "object": None,
        "target_pid": None,
        "family": "inet",
        "reason": "no_rule",
        "rule": None,
        "message": "denied mylogin[412] net inet connect (no rule in mylogin.bpfbox allows it)",
    }


def test_json_record_points_at_the_rule():
    data = fs_event("audit", ("read",), "/etc/passwd", 7, "no_rule")
    record = events.event_record(META, events.decode(data), datetime.now(timezone.utc))
    assert record["reason"] is None
    assert record["rule"] == {
        "id": 7,
        "file": "mylogin.bpfbox",
        "line": 7,
        "column": 1,
        "action": "audit",
        "text": 'fs("/etc/passwd", read)',
        "contexts": [],
    }


def test_reporter_text_and_lost_counts():
    out = io.StringIO()
    reporter = events.Reporter(out)
    reporter.event(META, events.decode(fs_event("audit", ("read",), "/etc/passwd", 7, "no_rule")))
    reporter.lost(META, 1, 1)
    reporter.lost(META, 4, 5)
    reporter.lost(META, 0, 5, final=True)
    assert out.getvalue().splitlines() == [
        "bpfbox: audit mylogin[412] read /etc/passwd (mylogin.bpfbox:7)",
        "bpfbox: 1 event lost (mylogin's ring buffer was full)",
        "bpfbox: 4 events lost (mylogin's ring buffer was full)",
        "bpfbox: 5 events lost in total (mylogin's ring buffer was full)",
    ]


def test_reporter_json_lines():
    out = io.StringIO()
    reporter = events.Reporter(out, json_lines=True)
    reporter.event(META, events.decode(fs_event("audit", ("read",), "/etc/passwd", 7, "no_rule")))
    reporter.lost(META, 2, 2)
    first, second = (json.loads(line) for line in out.getvalue().splitlines())
    assert first["event"] == "audit"
    assert second == {
        "time": second["time"],
        "event": "lost",
        "profile": "mylogin",
        "policy": "mylogin.bpfbox",
        "lost": 2,
        "total": 2,
        "message": "2 events lost (mylogin's ring buffer was full)",
    }


def test_a_count_of_repeats_is_said_with_the_event():
    """--reduce-repeats: the same events counted, not reported, since this one's last report."""
    event = events.decode(fs_event("complain", ("read",), "/srv/a", 0, "no_rule", repeats=41))
    assert event.repeats == 41
    line = "would deny mylogin[412] read /srv/a (no rule in mylogin.bpfbox allows it)"
    assert events.message(META, event) == line + "; 41 more since the last report"
    record = events.event_record(META, event, datetime.now(timezone.utc))
    assert (record["repeats"], record["message"]) == (41, events.message(META, event))


def test_pending_counts_are_reported_with_no_acting_task():
    """What a reader that stops takes out of the kernel's count (Session.take_repeats)."""
    pending = events.decode(fs_event("complain", ("read",), "/srv/a", 0, "no_rule"))._replace(
        pid=0, tgid=0, comm="", repeats=87
    )
    text, as_json = io.StringIO(), io.StringIO()
    events.Reporter(text).pending(META, pending)
    events.Reporter(as_json, json_lines=True).pending(META, pending)
    said = "would deny read /srv/a (no rule in mylogin.bpfbox allows it)"
    said += "; 87 more since the last report"
    assert text.getvalue() == events.PREFIX + said + "\n"
    record = json.loads(as_json.getvalue())
    assert (record["event"], record["object"], record["repeats"]) == ("complain", "/srv/a", 87)
    assert (record["pid"], record["tid"], record["comm"], record["message"]) == (
        None,
        None,
        None,
        said,
    )


_ANY_BYTES = st.binary(max_size=40).map(lambda raw: raw.replace(b"\0", b"x"))


@settings(max_examples=300, deadline=None)
@given(
    kind=st.sampled_from([*abi.EVENT_KINDS.values(), 9]),
    rule_kind=st.sampled_from(
        [abi.SELF_PROTECTION_KIND, *(k.number for k in kinds.REGISTRY.values()), 99]
    ),
    flags=st.integers(0, 2**64 - 1),
    rule=st.sampled_from([3, 4, 5, 7, 9, 12, 42, abi.NO_RULE]),
    reason=st.sampled_from([*abi.REASONS.values(), 77]),
    object_num=st.integers(0, 2**32 - 1),
    target_pid=st.integers(0, 2**32 - 1),
    comms=st.lists(_ANY_BYTES, min_size=3, max_size=3),
    repeats=st.lists(st.integers(0, 2**64 - 1), min_size=3, max_size=3),
    path=_ANY_BYTES,
)
def test_reported_lines_are_the_records_whatever_the_event_and_however_often_seen(
    kind, rule_kind, flags, rule, reason, object_num, target_pid, comms, repeats, path
):
    """The Reporter works out what an event says once and reuses it for events that differ
    only in who acted (the JSON record's cut from the second on): each line is still exactly
    what event_record and message give."""
    out_json, out_text = io.StringIO(), io.StringIO()
    as_json, as_text = events.Reporter(out_json, json_lines=True), events.Reporter(out_text)
    said = []
    for pid, (comm, repeated) in enumerate(zip(comms, repeats, strict=True), start=100):
        data = pack(
            kind=kind,
            rule_kind=rule_kind,
            flags=flags,
            rule=rule,
            reason=reason,
            object_num=object_num,
            target_pid=target_pid,
            object=path,
            comm=comm,
            pid=pid,
            tgid=pid,
            repeats=repeated,
        )
        event = events.decode(data)
        as_json.event(META, event)
        as_text.event(META, event)
        said.append(event)
    # One description, cut for JSON: the lines after the first were written from it.
    ((_, description),) = as_json._descriptions.values()
    assert description.json_pieces
    for event, line, text_line in zip(
        said, out_json.getvalue().splitlines(), out_text.getvalue().splitlines(), strict=True
    ):
        record = events.event_record(META, event, datetime.now(timezone.utc))
        assert line == json.dumps({**record, "time": json.loads(line)["time"]})
        assert text_line == events.PREFIX + events.message(META, event)


def test_a_text_line_shows_control_characters_escaped():
    """A confined process names itself and its files: what it writes there cannot start a
    line of its own in a text log."""
    forged = "\nbpfbox: audit x[1] read /etc/passwd (mylogin.bpfbox:7)"
    data = fs_event("complain", ("read",), "/tmp/a" + forged, 0, "no_rule")
    event = events.decode(data)._replace(comm="sh\x1b[2J\\")
    line = events.message(META, event)
    assert "\n" not in line and "\x1b" not in line
    assert line.startswith("would deny sh\\x1b[2J\\\\[412] read /tmp/a\\x0abpfbox: audit")
    # Line and paragraph separators, a right-to-left override: escaped as well.
    assert (
        events.shown("a\u2028b\u2029c\u202ed\U000e0001é") == "a\\u2028b\\u2029c\\u202ed\\U000e0001é"
    )


def test_a_record_whose_metadata_holds_a_nul_is_written_whole():
    """The JSON record is written once per description with stand-ins (NUL-delimited) for
    the per-event values; a crafted object whose metadata holds one cannot misplace them."""
    meta = dataclasses.replace(META, policy='x\0time\0"\0pid\0')
    out = io.StringIO()
    reporter = events.Reporter(out, json_lines=True)
    event = events.decode(fs_event("complain", ("read",), "/x", 0, "no_rule"))
    for _ in range(3):
        reporter.event(meta, event)
    for line in out.getvalue().splitlines():
        record = events.event_record(meta, event, datetime.now(timezone.utc))
        assert line == json.dumps({**record, "time": json.loads(line)["time"]})


def test_a_reporter_keeps_a_bounded_number_of_descriptions(monkeypatch):
    monkeypatch.setattr(events, "DESCRIPTIONS_KEPT", 8)
    out = io.StringIO()
    reporter = events.Reporter(out, json_lines=True)
    for n in range(20):
        reporter.event(META, events.decode(fs_event("complain", ("read",), f"/f{n}", 4, "no_rule")))
    assert len(reporter._descriptions) <= 8
    assert [json.loads(line)["object"] for line in out.getvalue().splitlines()] == [
        f"/f{n}" for n in range(20)
    ]


def test_granted_names_are_the_requested_bits_the_rule_grants():
    rule = META.rule(4)
    read, write, getattr_ = (abi.FS_FLAGS[name] for name in ("read", "write", "getattr"))
    assert events.granted_names(rule, read | write) == ["read"]
    assert events.granted_names(rule, read | getattr_ | write) == ["read", "getattr"]
    assert events.granted_names(rule, write) == []


AUDIT = fs_event("audit", ("read",), "/etc/passwd", 7, "no_rule")


@pytest.mark.parametrize(
    ("target", "errno_name"),
    [("full", "ENOSPC"), ("closed pipe", "EPIPE"), ("closed stream", "closed")],
)
def test_failed_log_writes_are_reported_once_and_counted(capfd, target, errno_name):
    if target == "full":
        stream = open("/dev/full", "w")  # noqa: SIM115 - a real device that is always full
    else:
        read_end, write_end = os.pipe()
        os.close(read_end)
        stream = os.fdopen(write_end, "w")
        if target == "closed stream":
            stream.close()
    reporter = events.Reporter(stream)
    for _ in range(3):
        reporter.event(META, events.decode(AUDIT))
    reporter.lost(META, 1, 1)
    assert reporter.failed_writes == 4
    warnings = [line for line in capfd.readouterr().err.splitlines() if "cannot write" in line]
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith("bpfbox-run: warning: cannot write events to ")
    assert f"({errno_name}); enforcement continues" in warnings[0]
    if not stream.closed:
        stream.close()


def test_a_failed_log_write_without_a_standard_error_is_still_counted(monkeypatch):
    # Python's sys.__stderr__ is None in a bpfbox-run started with `2>&-`: the warning then
    # goes to syslog alone, and enforcement goes on.
    monkeypatch.setattr(sys, "__stderr__", None)
    with open("/dev/full", "w") as stream:  # a real device that is always full
        reporter = events.Reporter(stream)
        reporter.event(META, events.decode(AUDIT))
        reporter.lost(META, 1, 1)
        assert reporter.failed_writes == 2
