"""The loader on this host's kernel: uprobes load and fire here, LSM programs do not.

A uprobe-only object (tests/e2e/fixtures/count_calls.bpf.c) goes through every loader step
for real: build, open, read-only configuration, load, uprobe attach from the metadata,
pinning (in a private bpffs mount), ring buffer events, the stats map, replacement and
unloading.  Needs root, clang and gcc, like the runtime.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from bpfbox.contract import abi
from bpfbox.runtime import libbpf, loader, metadata, pins

from .helpers import file_offset

FIXTURES = Path(__file__).parents[1] / "e2e" / "fixtures"
CLANG = ["clang", "-O2", "-g", "-target", "bpf", "-D__TARGET_ARCH_x86", "-I/usr/include"]

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="loading BPF programs needs root")


@pytest.fixture(scope="module")
def counted(tmp_path_factory) -> Path:
    """The test binary, reached through a symlink as profiles often are."""
    directory = tmp_path_factory.mktemp("uprobe")
    binary = directory / "counted-binary"
    subprocess.run(["gcc", "-O1", "-o", str(binary), str(FIXTURES / "counted.c")], check=True)
    link = directory / "counted"
    link.symlink_to(binary)
    return link


def compile_fixture(out: Path, profile: Path, offset: int) -> Path:
    subprocess.run(
        [*CLANG, f"-I{FIXTURES}", f'-DPROFILE_PATH="{profile}"', f"-DFUNC_OFFSET={offset}",
         "-c", str(FIXTURES / "count_calls.bpf.c"), "-o", str(out)],
        check=True,
    )  # fmt: skip
    return out


@pytest.fixture(scope="module")
def count_obj(counted, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("obj") / "count_calls.bpf.o"
    return compile_fixture(out, counted, file_offset(counted.resolve(), "counted"))


def leftovers(expected: int = 0) -> list[str]:
    """Our programs still in the kernel, waiting a little for the lazy free of the others."""
    for _ in range(50):
        out = subprocess.run(["bpftool", "-j", "prog", "show"], capture_output=True, text=True)
        names = [p.get("name", "") for p in json.loads(out.stdout or "[]")]
        left = [n for n in names if n.startswith("bpfbox_func")]
        if len(left) <= expected:
            return left
        time.sleep(0.1)
    return left


@pytest.fixture(autouse=True)
def private_pins(tmp_path, monkeypatch) -> Path:
    """A bpffs of our own and a state directory, for this process and bpfbox-run children."""
    bpffs, state = tmp_path / "bpffs", tmp_path / "state"
    bpffs.mkdir()
    subprocess.run(["mount", "-t", "bpf", "bpf", str(bpffs)], check=True)
    monkeypatch.setattr(pins, "BPFFS", str(bpffs))
    monkeypatch.setattr(pins, "ROOT", str(bpffs / "bpfbox"))
    monkeypatch.setattr(pins, "WORK", str(bpffs / "bpfbox-work"))
    monkeypatch.setattr(pins, "STATE", str(state))
    monkeypatch.setenv("BPFBOX_BPFFS", str(bpffs))
    monkeypatch.setenv("BPFBOX_STATE_DIR", str(state))
    yield bpffs
    subprocess.run(["umount", "-l", str(bpffs)], check=False)


def follow(names, seen, lost=None) -> loader.Session:
    return loader.Session(
        names,
        on_event=lambda meta, event: seen.append((meta, event)),
        on_lost=lambda meta, new, total: (lost if lost is not None else []).append(total),
        warn=pytest.fail,
    )


def poll_until(session: loader.Session, done, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not done() and time.monotonic() < deadline:
        session.poll(100)


def test_uprobes_count_calls_and_send_events(counted, count_obj, private_pins):
    seen: list[tuple[metadata.Metadata, object]] = []
    lost: list[int] = []
    (rec,) = loader.load([str(count_obj)], warn=pytest.fail, mode=pins.MODE_FOREGROUND)
    assert rec.name == "count_calls" and rec.mode == "foreground"
    assert sorted(os.listdir(private_pins / "bpfbox" / "count_calls")) == [
        "events",
        "link-bpfbox_func_enter_0",
        "link-bpfbox_func_leave_0",
        "repeats",
        "stats",
        "tasks",
    ]
    with follow(["count_calls"], seen, lost) as session:
        subprocess.run([str(counted), "5"], check=True)
        poll_until(session, lambda: len(seen) >= 5)
    assert loader.release([rec]) == ["count_calls"]
    assert len(seen) == 5 and not lost
    meta, event = seen[0]
    real = counted.resolve()
    st = real.stat()
    # The program echoes what the loader wrote into its read-only data.
    assert event.kind_name == "audit" and event.comm == "counted"
    assert event.flags == st.st_ino
    assert event.object_num == os.major(st.st_dev) << 20 | os.minor(st.st_dev)
    assert event.object == str(real)
    assert event.target_pid == len(real.name)
    assert meta.name == "count_calls"
    assert leftovers() == []
    assert pins.names() == []


def test_pinned_profile_outlives_its_loader_and_is_replaced_in_place(counted, count_obj):
    """Nothing holds the object but the pins; a second load replaces it, keeping its maps."""
    (first,) = loader.load([str(count_obj)], warn=pytest.fail, mode=pins.MODE_DETACHED)
    seen: list = []
    with follow(["count_calls"], seen) as session:
        subprocess.run([str(counted), "2"], check=True)
        poll_until(session, lambda: len(seen) >= 2)
        (second,) = loader.load([str(count_obj)], warn=pytest.fail, mode=pins.MODE_COMMAND)
        # The replacement keeps the persistent mode, and the follower its ring buffer.
        assert second.mode == pins.MODE_DETACHED and second.owner != first.owner
        subprocess.run([str(counted), "3"], check=True)
        poll_until(session, lambda: len(seen) >= 5)
    assert len(seen) == 5
    assert len(leftovers(expected=2)) == 2, "the old programs must be gone, the new attached"
    assert loader.release([second]) == [], "a persistent profile is not released"
    pins.unload("count_calls")
    assert leftovers() == []
    assert pins.leftovers() == []


def test_cli_reports_events_and_passes_the_exit_status(counted, count_obj):
    command = [sys.executable, "-m", "bpfbox.runtime.cli", str(count_obj), "--"]
    result = subprocess.run([*command, str(counted), "3"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    audits = [line for line in result.stderr.splitlines() if line.startswith("bpfbox: audit")]
    assert len(audits) == 3
    assert audits[0].startswith("bpfbox: audit counted[")
    assert audits[0].endswith("(count_calls.bpfbox:3)")
    status = subprocess.run([*command, "sh", "-c", "exit 5"], capture_output=True, text=True)
    assert status.returncode == 5, status.stderr
    assert leftovers() == []
    assert pins.names() == []


def test_command_mode_outlives_the_orphans_of_the_command(counted, count_obj, tmp_path):
    """bpfbox-run adopts the command's orphans and unloads only once they have exited."""
    done = tmp_path / "orphan-done"
    orphan = f"(sleep 1; {counted} 2; touch {done}) >/dev/null 2>&1 &"
    command = [sys.executable, "-m", "bpfbox.runtime.cli", str(count_obj), "--", "sh", "-c"]
    result = subprocess.run([*command, orphan], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert done.exists(), "bpfbox-run returned before the orphan had finished"
    audits = [line for line in result.stderr.splitlines() if line.startswith("bpfbox: audit")]
    assert len(audits) == 2, result.stderr
    assert "the command exited; count_calls" in result.stderr
    assert leftovers() == []
    assert pins.names() == []


def test_detach_list_and_unload_through_the_clis(counted, count_obj):
    run = [sys.executable, "-m", "bpfbox.runtime.cli"]
    manage = [sys.executable, "-m", "bpfbox.runtime.manage"]
    detached = subprocess.run([*run, "--detach", str(count_obj)], capture_output=True, text=True)
    assert detached.returncode == 0, detached.stderr
    assert "loaded count_calls" in detached.stderr
    subprocess.run([str(counted), "2"], check=True)
    listed = subprocess.run([*manage, "list", "--json"], capture_output=True, text=True)
    assert listed.returncode == 0, listed.stderr
    (row,) = [json.loads(line) for line in listed.stdout.splitlines()]
    assert row["name"] == "count_calls" and row["mode"] == "detached"
    assert row["source"] == str(count_obj) and row["lost_events"] == 0
    missing = subprocess.run([*manage, "unload", "nosuch"], capture_output=True, text=True)
    assert missing.returncode == 1
    assert missing.stderr.startswith("bpfbox: error: no profile named nosuch is loaded")
    gone = subprocess.run([*manage, "unload", "--all"], capture_output=True, text=True)
    assert gone.returncode == 0 and "unloaded count_calls" in gone.stdout
    assert leftovers() == []


def test_attach_failure_unloads_everything(counted, tmp_path):
    beyond_the_end = compile_fixture(tmp_path / "bad.bpf.o", counted, 1 << 30)
    with pytest.raises(libbpf.AttachError, match="as uprobe to .*counted\\+0x40000000 failed"):
        loader.load([str(beyond_the_end)], warn=pytest.fail, mode=pins.MODE_FOREGROUND)
    assert leftovers() == []
    assert pins.names() == [] and pins.leftovers() == []


def test_complain_flag_reaches_the_program(counted, count_obj):
    seen: list = []
    records = loader.load(
        [str(count_obj)], warn=pytest.fail, mode=pins.MODE_FOREGROUND, complain=True
    )
    with follow(["count_calls"], seen) as session:
        subprocess.run([str(counted), "1"], check=True)
        poll_until(session, lambda: bool(seen))
    loader.release(records)
    assert [e.kind_name for _, e in seen] == ["complain"]


def test_counts_of_repeats_are_taken_out_once(count_obj):
    """--reduce-repeats: a stopping reader reports what the kernel counted and not reported
    yet, taking it out of the pinned map (another reader then has nothing to report again).
    Entries are written here as the programs write them (verdict.bpf.h, emit_reduced)."""
    (rec,) = loader.load(
        [str(count_obj)], warn=pytest.fail, mode=pins.MODE_FOREGROUND, reduce_repeats=True
    )
    fd = pins.open_map(rec.name, "repeats")
    try:
        assert libbpf.map_shape(fd, "repeats").max_entries == abi.REPEATS_ENTRIES
        for path, repeats in (("/srv/counted", 5), ("/srv/reported", 0)):
            fields = {f.name: 0 for f in abi.EVENT_FIELDS} | {
                "comm": b"",
                "kind": abi.EVENT_KINDS["complain"],
            }
            fields["object"] = path.encode()
            key = abi.EVENT_STRUCT.pack(*fields.values())
            value = abi.REPEAT_COUNT_STRUCT.pack(time.monotonic_ns(), repeats)
            assert libbpf.library().bpf.bpf_map_update_elem(fd, key, value, 0) == 0
    finally:
        os.close(fd)
    with follow([rec.name], []) as session:
        ((meta, event),) = session.take_repeats()
        assert (meta.name, event.object, event.repeats, event.pid) == (
            rec.name,
            "/srv/counted",
            5,
            0,
        )
        assert session.take_repeats() == []
    loader.release([rec])


def test_without_reduce_repeats_the_map_holds_one_entry(count_obj):
    (rec,) = loader.load([str(count_obj)], warn=pytest.fail, mode=pins.MODE_FOREGROUND)
    fd = pins.open_map(rec.name, "repeats")
    try:
        assert libbpf.map_shape(fd, "repeats").max_entries == 1
    finally:
        os.close(fd)
    loader.release([rec])


def test_rodata_patching_of_a_compiled_object(counted, count_obj):
    meta = metadata.read(str(count_obj))
    identity = loader.identity_of(meta)
    obj = libbpf.BpfObject(str(count_obj))
    try:
        loader.configure(obj, meta, identity, complain=True)
        data = bytes(loader._rodata(obj).initial_value())
    finally:
        obj.close()

    def value(name: str) -> bytes:
        offset, size = meta.rodata[name]
        return data[offset : offset + size]

    real = counted.resolve()
    assert int.from_bytes(value(abi.CFG_PROFILE_INO), "little") == real.stat().st_ino
    assert int.from_bytes(value(abi.CFG_PROFILE_DEV), "little") == identity.dev
    assert int.from_bytes(value(abi.CFG_COMPLAIN), "little") == 1
    assert value(abi.CFG_PROFILE_PATH).rstrip(b"\0") == str(real).encode()
    assert int.from_bytes(value(abi.CFG_PROFILE_NAME_LEN), "little") == len(real.name)


@pytest.mark.parametrize(
    ("missing", "help_text"),
    [(abi.CFG_COMPLAIN, "run it without --complain"), (abi.CFG_PROFILE_INO, "rebuild")],
)
def test_missing_configuration_variable(count_obj, missing, help_text):
    meta = metadata.read(str(count_obj))
    rodata = {k: v for k, v in meta.rodata.items() if k != missing}
    stripped = metadata.Metadata(**{**meta.__dict__, "rodata": rodata})
    obj = libbpf.BpfObject(str(count_obj))
    try:
        with pytest.raises(libbpf.ConfigError, match=f"no read-only variable {missing}") as err:
            loader.configure(obj, stripped, loader.identity_of(meta), complain=True)
    finally:
        obj.close()
    assert help_text in err.value.help


def test_profile_path_longer_than_the_variable(count_obj):
    meta = metadata.read(str(count_obj))
    identity = loader.Identity(ino=1, dev=2, st_dev=3, path="/" + "x" * abi.PROFILE_PATH_LEN)
    obj = libbpf.BpfObject(str(count_obj))
    try:
        with pytest.raises(libbpf.ConfigError, match="is longer than the 255 bytes"):
            loader.configure(obj, meta, identity, complain=False)
    finally:
        obj.close()


def test_kernel_device_encoding():
    assert loader.kernel_dev(os.makedev(254, 3)) == 254 << 20 | 3
    assert loader.kernel_dev(os.makedev(8, 300)) == 8 << 20 | 300


# The one-line reason bpfbox-run gives for a verifier's refusal.

_REFUSED_ACCESS = """\
0: (b7) r1 = 0
; return *(int *)0;
1: (61) r0 = *(u32 *)(r1 +0)
R1 invalid mem access 'scalar'
"""
_STATISTICS = "processed 2 insns (limit 1000000) max_states_per_insn 0 total_states 0\n"


def test_verifier_summary_is_the_line_after_the_last_instruction() -> None:
    assert (
        libbpf.verifier_summary(_REFUSED_ACCESS + _STATISTICS) == "R1 invalid mem access 'scalar'"
    )


def test_verifier_summary_skips_the_advice_newer_kernels_add() -> None:
    """7.3 explains some refusals in lines after the reason; the reason is still the summary."""
    advice = (
        "A pointer was used after it was invalidated by\n"
        "arithmetic, helper calls, or other operations that can invalidate it.\n"
    )
    log = _REFUSED_ACCESS + advice + _STATISTICS
    assert libbpf.verifier_summary(log) == "R1 invalid mem access 'scalar'"


def test_verifier_summary_without_instructions_is_the_last_line_before_statistics() -> None:
    assert libbpf.verifier_summary("BTF is malformed\n" + _STATISTICS) == "BTF is malformed"
    assert libbpf.verifier_summary("") == "no reason given (empty verifier log)"
