"""User stacks as this host's kernel reports them, decoded and symbolised as a learning run's.

This host refuses LSM programs, so the learning mode of the generated program runs in the
VM (tests/e2e/test_learn.py).  Its stack capture does not need an LSM hook: a uprobe at the
C library's open() (tests/e2e/fixtures/user_stack.bpf.c) takes the stack exactly as
`learn_extras` does, and sends it in a `struct learn_event`.  The example program, built as
docs/writing-policies.md says (frame pointers), then opens the password file: the decoded
frames must name check_password() and main() through the program's build ID and symbols,
which is what `bpfbox-learn draft` scopes rules by.  Needs root, clang and gcc.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from bpfbox.compiler import symbols
from bpfbox.contract import abi
from bpfbox.runtime import events, libbpf, loader, metadata
from bpfbox.runtime.learn import record as recording
from elftools.elf.elffile import ELFFile

from .helpers import file_offset

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "e2e" / "fixtures"
CLANG = ["clang", "-O2", "-g", "-target", "bpf", "-D__TARGET_ARCH_x86", "-I/usr/include"]
LIBC = Path("/lib/x86_64-linux-gnu/libc.so.6")
#: mylogin's environment: the password files build_mylogin writes.
ENV = dict(os.environ)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="loading BPF programs needs root")


def build_mylogin(directory: Path) -> Path:
    """The example program, built as docs/writing-policies.md says."""
    mylogin = directory / "mylogin"
    subprocess.run(
        ["gcc", "-O1", "-fno-omit-frame-pointer", "-o", str(mylogin)]
        + [str(REPO / "examples" / "mylogin.c")],
        check=True,
    )
    for name, text in (("passwd", "root:x:0:0\n"), ("shadow", "root:*:1\n")):
        (directory / name).write_text(text)
    ENV["MYLOGIN_PASSWD"] = str(directory / "passwd")
    ENV["MYLOGIN_SHADOW"] = str(directory / "shadow")
    return mylogin


def compile_fixture(name: str, directory: Path) -> Path:
    obj_path = directory / f"{name}.bpf.o"
    subprocess.run(
        [*CLANG, f"-I{FIXTURES}", "-c", str(FIXTURES / f"{name}.bpf.c"), "-o", str(obj_path)],
        check=True,
    )
    return obj_path


def test_a_kernel_stack_names_the_function_that_opened_the_file(tmp_path: Path) -> None:
    mylogin = build_mylogin(tmp_path)
    passwd, shadow = tmp_path / "passwd", tmp_path / "shadow"
    obj_path = compile_fixture("user_stack", tmp_path)
    libc = LIBC.resolve()
    samples: list[bytes] = []
    obj = libbpf.BpfObject(str(obj_path))
    ring = libbpf.RingBuffer()
    try:
        obj.load()
        (program,) = obj.programs()
        link = program.attach_uprobe(str(libc), file_offset(libc, "open64", ".dynsym"), False)
        ring.add(obj.map(abi.EVENTS_MAP).fd(), "events", samples.append)
        result = subprocess.run(
            [str(mylogin), "check", "root"], env=ENV, capture_output=True, text=True
        )
        ring.poll(1000)
        link.destroy()
    finally:
        ring.free()
        obj.close()
    assert result.returncode == 0, result.stdout
    opens = [
        decoded
        for decoded in map(events.decode, samples)
        if decoded.comm == "mylogin" and decoded.object in (str(passwd), str(shadow))
    ]
    assert [e.object for e in opens] == [str(passwd), str(shadow)]
    index = symbols.function_index(mylogin)
    for opened in opens:
        assert opened.learned is not None and opened.learned.stack_size > 0
        record = recording.access_record(opened)
        assert isinstance(record, str)  # no executable: the uprobe does not resolve it
        frames = opened.learned.frames
        # Innermost: open() itself, in the C library, whose build ID the kernel read.
        assert frames[0].status == abi.FrameStatus.VALID
        named = [
            index.function_at(frame.offset - 1)
            for frame in frames[1:]
            if frame.build_id.hex() == index.build_id
        ]
        # read_entry(), open()'s caller, is there only when the kernel recovers the caller
        # of a function a uprobe stopped at its entry (newer kernels do); at a system call,
        # as in an LSM hook, the frame-pointer walk skips it (docs/writing-policies.md).
        assert named[-2:] == ["check_password", "main"], named
        assert set(named) <= {"read_entry", "check_password", "main"}, named


def test_learning_mode_emission_loads_and_resolves_the_executable(tmp_path: Path) -> None:
    """verdict.bpf.h's emit() with CFG_LEARN set (tests/e2e/fixtures/learn_emit.bpf.c): the
    verifier accepts the learning branch (the ring buffer's record held across the path
    walk), and the event names the caller's executable as the path walker resolves it."""
    mylogin = build_mylogin(tmp_path)
    obj_path = compile_fixture("learn_emit", tmp_path)
    with obj_path.open("rb") as f:
        rodata = metadata._rodata_variables(ELFFile(f))
    samples: list[bytes] = []
    obj = libbpf.BpfObject(str(obj_path))
    ring = libbpf.RingBuffer()
    try:
        data = loader._rodata(obj).initial_value()
        offset, size = rodata[abi.CFG_LEARN]
        data[offset : offset + size] = (1).to_bytes(size, "little")
        obj.load()
        (program,) = obj.programs()
        link = program.attach_uprobe(str(mylogin), file_offset(mylogin, "check_password"), False)
        ring.add(obj.map(abi.EVENTS_MAP).fd(), "events", samples.append)
        subprocess.run([str(mylogin), "check", "root"], capture_output=True, env=ENV)
        ring.poll(1000)
        link.destroy()
    finally:
        ring.free()
        obj.close()
    (event,) = map(events.decode, samples)
    assert event.learned is not None and event.learned.exe == str(mylogin.resolve())
    index = symbols.function_index(mylogin)
    named = {
        index.function_at(frame.offset)
        for frame in event.learned.frames
        if frame.build_id.hex() == index.build_id
    }
    assert {"check_password", "main"} <= named, named
