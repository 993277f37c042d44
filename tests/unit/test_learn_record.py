"""The host side of learning runs: a learning event, as the kernel lays it out (abi), decoded
and turned into an `access` record of the learning log (runtime/learn/record.py).

The golden learning logs (tests/golden/learn) are in the log format the recorder must write:
each of their access records, laid out as the kernel would send it, must come back as the
very same record, and a recorded log must draft as the golden draft.
"""

from __future__ import annotations

import errno
import io
import json
import struct
import subprocess
from pathlib import Path

import pytest
from bpfbox.compiler import symbols
from bpfbox.compiler.clang import clang_path, compile_object
from bpfbox.compiler.resolve import ElfResolver
from bpfbox.contract import abi, kinds
from bpfbox.runtime import events, libbpf, loader, metadata
from bpfbox.runtime.learn import draft as drafting
from bpfbox.runtime.learn import record as recording
from bpfbox.runtime.learn.cli import run_cli
from bpfbox.runtime.learn.log import read_logs

REPO = Path(__file__).resolve().parents[2]
GOLDEN = REPO / "tests" / "golden" / "learn"
ROOT = REPO / "tests" / "golden" / "root"
META = None  # the recorder does not look at the metadata
SP = 0x7FFD_1234_5000  # where a test's stack copy starts


def learn_event(
    record: dict,
    kind: int = abi.EventKind.COMPLAIN,
    reason: int = 0,
    window: bytes = b"",
    loaded_entry: int = 0,
) -> bytes:
    """The ring-buffer sample a learning profile sends for the access `record`, with
    `window` as the copy of the stack's top (none by default: `scanned` is null)."""
    rule_kind = kinds.REGISTRY[record["kind"]]
    flags = sum(rule_kind.flags.bits[name] for name in record["access"])
    number = abi.FAMILIES[record["family"]] if record["family"] else 0
    event = abi.EVENT_STRUCT.pack(
        kind,
        rule_kind.number,
        record["tid"],
        record["pid"],
        flags,
        abi.NO_RULE,
        reason,
        number,
        record["target_pid"] or 0,
        record["comm"].encode(),
        (record["object"] or "").encode(),
        0,  # repeats: a learning run reports every event
    )
    frames = b"".join(_frame(frame) for frame in record["stack"] or ())
    error = record["stack_error"]
    size = -getattr(errno, error[1:]) if error else len(frames)
    stack = frames.ljust(abi.LEARN_STACK_DEPTH * abi.STACK_FRAME_STRUCT.size, b"\0")
    return abi.LEARN_EVENT_STRUCT.pack(
        event, record["exe"].encode(), size, stack, loaded_entry, SP, len(window), window
    )


def _frame(frame: dict) -> bytes:
    if "ip" in frame:
        return abi.STACK_FRAME_STRUCT.pack(abi.FrameStatus.IP, b"\0" * 20, frame["ip"])
    build_id = bytes.fromhex(frame["build_id"])
    return abi.STACK_FRAME_STRUCT.pack(abi.FrameStatus.VALID, build_id, frame["offset"])


def golden_records(name: str) -> list[dict]:
    return [
        json.loads(line)
        for path in sorted((GOLDEN / name).glob("*.jsonl"))
        for line in path.read_text().splitlines()
        if line.strip()
    ]


def collected(record: dict) -> bool:
    """The recorder always collects the stack: a hand-written record may say it did not."""
    return record["stack"] is not None or record["stack_error"] is not None


@pytest.mark.parametrize("name", ["mylogin", "nostack"])
def test_every_golden_access_comes_back_from_its_event(name: str) -> None:
    accesses = [r for r in golden_records(name) if r["record"] == "access" and collected(r)]
    assert len(accesses) > 10
    for record in accesses:
        assert recording.access_record(events.decode(learn_event(record))) == record


def test_a_recorded_log_drafts_as_the_golden_draft(tmp_path: Path) -> None:
    log = tmp_path / "mylogin.log"
    with log.open("w") as stream:
        for record in golden_records("mylogin"):
            if record["record"] == "run":
                recorder = recording.Recorder(stream, pytest.fail)
                recorder.write(record)
            else:
                recorder.event(META, events.decode(learn_event(record)))
                # The same access from the same code again: one record says it all.
                recorder.event(META, events.decode(learn_event(record)))
                if record["object"] == "/etc/shadow":
                    recorder.end(0)
    ends = [json.loads(line) for line in log.read_text().splitlines()]
    ends = [r for r in ends if r["record"] == "end"]
    assert [(e["recorded"], e["repeated"], e["lost"]) for e in ends] == [(7, 7, 0), (7, 7, 0)]
    runs, accesses = read_logs([log])
    text = drafting.draft(runs, accesses, ElfResolver(sysroot=ROOT), log_names=("a", "b"))
    golden = (GOLDEN / "mylogin" / "draft.bpfbox").read_text()
    assert text == golden.replace("(1-check.jsonl, 2-add.jsonl)", "(a, b)")


def test_the_stack_of_an_event() -> None:
    record = golden_records("mylogin")[-1]
    decoded = events.decode(learn_event(record))
    assert decoded.learned is not None
    assert decoded.learned.exe == "/sbin/mylogin"
    assert [f.offset for f in decoded.learned.frames] == [f["offset"] for f in record["stack"]]
    # The kernel leaves the frames it did not write zeroed (status EMPTY): they end the stack.
    assert len(decoded.learned.frames) < abi.LEARN_STACK_DEPTH


def call_return(binary: Path, caller: str, callee: str) -> int:
    """The address after `caller`'s first direct call of `callee`, as objdump reads it."""
    listing = subprocess.run(
        ["objdump", "-d", f"--disassemble={caller}", str(binary)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    return next(
        int(following.split(":")[0], 16)
        for line, following in zip(listing, listing[1:], strict=False)
        if "\tcall " in line and line.endswith(f"<{callee}>")
    )


def test_the_recorder_scans_the_stack_copy_of_the_programs_events() -> None:
    """A return address into check_password() after its call of read_entry(), in a stack
    copy of a process that loaded the (PIE) program 0x5555_5555_4000 higher: the record's
    `scanned` frame names the file offsets of both; other programs' events are not scanned."""
    mylogin = ROOT / "sbin" / "mylogin"
    text = symbols.executable_text(mylogin)
    index = symbols.function_index(mylogin)
    bias = 0x5555_5555_4000
    after = call_return(mylogin, "check_password", "read_entry")
    window = struct.pack("<QQ", 0x1234, bias + after).ljust(abi.LEARN_STACK_WINDOW, b"\0")
    record = {**golden_records("mylogin")[-1], "exe": str(mylogin)}
    sample = learn_event(record, window=window, loaded_entry=bias + text.entry)
    scanned = recording.access_record(events.decode(sample), text)["scanned"]
    (frame,) = scanned
    assert index.function_at(frame["offset"] - 1) == "check_password"
    assert index.function_starting_at(frame["callee"]) == "read_entry"
    assert frame["build_id"] == text.build_id
    other = learn_event(golden_records("mylogin")[-1], window=window, loaded_entry=bias + 0x1120)
    assert recording.access_record(events.decode(other), text)["scanned"] is None


def test_a_failed_stack_capture_is_a_stack_error() -> None:
    record = {**golden_records("mylogin")[-1], "stack": None, "stack_error": "-EFAULT"}
    assert recording.access_record(events.decode(learn_event(record))) == record


def test_an_enforcing_profile_event_is_not_a_learning_one() -> None:
    sample = learn_event(golden_records("mylogin")[-1])[: abi.EVENT_STRUCT.size]
    assert events.decode(sample).learned is None
    assert "without a stack" in recording.access_record(events.decode(sample))


SHADOW = {
    "record": "access",
    "kind": "fs",
    "object": "/etc/shadow",
    "access": ["read"],
    "family": None,
    "target_pid": None,
    "pid": 7,
    "tid": 8,
    "comm": "mylogin",
    "exe": "/sbin/mylogin",
    "stack_error": None,
    "stack": [],
}


@pytest.mark.parametrize(
    ("sample", "why"),
    [
        (learn_event(SHADOW, reason=abi.Reason.SELF_PROTECTION), "self-protection"),
        (learn_event({**SHADOW, "object": None}), "fs accesses of objects with no path"),
        (learn_event({**SHADOW, "exe": ""}), "tasks with no executable"),
        (learn_event(SHADOW, kind=abi.EventKind.AUDIT), "audit events"),
        (
            learn_event({**SHADOW, "kind": "ioctl", "access": ["tcgets"]}),
            "ioctl accesses (not in the learning log's kinds yet)",
        ),
        (
            learn_event({**SHADOW, "kind": "signal", "access": [], "target_pid": 3}),
            "signal accesses no rule can name",
        ),
    ],
)
def test_what_no_access_record_can_stand_for(sample: bytes, why: str) -> None:
    assert why in recording.access_record(events.decode(sample))


def test_unrecorded_and_lost_accesses_are_counted_in_the_end_record() -> None:
    warnings: list[str] = []
    stream = io.StringIO()
    recorder = recording.Recorder(stream, warnings.append)
    recorder.event(META, events.decode(learn_event({**SHADOW, "object": None})))
    recorder.event(META, events.decode(learn_event(SHADOW)))
    recorder.on_lost(META, 3, 3)
    assert recorder.end(0) == {
        "record": "end",
        "status": 0,
        "recorded": 1,
        "repeated": 0,
        "lost": 3,
        "unrecorded": {"fs accesses of objects with no path": 1},
    }
    assert "3 accesses lost" in warnings[0]


def test_a_run_that_lost_accesses_says_so_in_the_draft(tmp_path: Path) -> None:
    records = golden_records("mylogin")
    log = tmp_path / "lost.log"
    end = {"record": "end", "status": 0, "recorded": 7, "repeated": 0, "lost": 5}
    log.write_text("".join(json.dumps(r) + "\n" for r in [*records[:8], end, *records[8:]]))
    runs, accesses = read_logs([log])
    assert [run.lost for run in runs] == [5, 0]
    text = drafting.draft(runs, accesses, ElfResolver(sysroot=ROOT))
    assert "Run 1 lost 5 accesses" in text


def test_the_learning_policy_compiles_to_a_profile_with_no_rule(tmp_path: Path) -> None:
    c_file = recording.build_learning_profile("/usr/bin/cat", tmp_path)
    assert c_file.name == "learn-cat.bpf.c"
    source = c_file.read_text()
    assert abi.CFG_LEARN in source and "/usr/bin/cat" in source


def test_record_refuses_to_overwrite_a_log(tmp_path: Path, capsys) -> None:
    log = tmp_path / "app.log"
    log.write_text("{}\n")
    assert run_cli(["record", "-o", str(log), "--", "/bin/true"]) == 2
    assert "--append" in capsys.readouterr().err
    assert log.read_text() == "{}\n"


def test_record_of_a_missing_command_exits_127(tmp_path: Path, capsys) -> None:
    log = tmp_path / "app.log"
    assert run_cli(["record", "-o", str(log), "--", "no-such-program-here"]) == 127
    assert "not an executable file found in PATH" in capsys.readouterr().err
    assert not log.exists()


def test_record_needs_a_command(tmp_path: Path, capsys) -> None:
    assert run_cli(["record", "-o", str(tmp_path / "app.log")]) == 2
    assert "Missing argument" in capsys.readouterr().err


def test_learning_mode_is_configured_before_load(tmp_path: Path) -> None:
    """The learning profile, compiled by clang and opened by libbpf (no load: this host's
    kernel refuses LSM programs): learning sets complain mode too, and the big ring."""
    cat = str(Path("/usr/bin/cat").resolve())
    c_file = recording.build_learning_profile(cat, tmp_path)
    obj_path = str(tmp_path / "learn-cat.bpf.o")
    compile_object(c_file, Path(obj_path), clang_path())
    meta = metadata.read(obj_path)
    obj = libbpf.BpfObject(obj_path)
    try:
        loader.configure(obj, meta, loader.identity_of(meta), complain=False, learn=True)
        data = bytes(loader._rodata(obj).initial_value())
        ring = obj.map(abi.EVENTS_MAP).shape().max_entries
    finally:
        obj.close()
    for name in (abi.CFG_LEARN, abi.CFG_COMPLAIN):
        offset, size = meta.rodata[name]
        assert int.from_bytes(data[offset : offset + size], "little") == 1
    assert ring == abi.LEARN_RING_BYTES
