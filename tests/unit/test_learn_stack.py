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
from bpfbox.runtime.bpf_elf import BpfElf
from bpfbox.runtime.learn import record as recording
from bpfbox.runtime.learn.scan import return_addresses
from elftools.elf.elffile import ELFFile

from .helpers import file_offset

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "e2e" / "fixtures"
CLANG = ["clang", "-O2", "-g", "-target", "bpf", "-D__TARGET_ARCH_x86", "-I/usr/include"]
LIBC = Path("/lib/x86_64-linux-gnu/libc.so.6")
PAGE = 4096
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


def learning_events(
    directory: Path, mylogin: Path, sites: list[tuple[Path, int]]
) -> list[events.Event]:
    """The events verdict.bpf.h's emit() sends with CFG_LEARN set
    (tests/e2e/fixtures/learn_emit.bpf.c) from uprobes at `sites` (file, offset) while
    `mylogin check root` runs."""
    obj_path = compile_fixture("learn_emit", directory)
    rodata = metadata._rodata_variables(BpfElf(obj_path.read_bytes()))
    samples: list[bytes] = []
    obj = libbpf.BpfObject(str(obj_path))
    ring = libbpf.RingBuffer()
    try:
        data = loader._rodata(obj).initial_value()
        offset, size = rodata[abi.CFG_LEARN]
        data[offset : offset + size] = (1).to_bytes(size, "little")
        obj.load()
        (program,) = obj.programs()
        links = [program.attach_uprobe(str(path), at, False) for path, at in sites]
        ring.add(obj.map(abi.EVENTS_MAP).fd(), "events", samples.append)
        run = subprocess.run([str(mylogin), "check", "root"], capture_output=True, env=ENV)
        assert run.returncode == 0, run
        ring.poll(1000)
        for link in links:
            link.destroy()
    finally:
        ring.free()
        obj.close()
    return [events.decode(sample) for sample in samples]


def test_learning_mode_emission_loads_and_resolves_the_executable(tmp_path: Path) -> None:
    """verdict.bpf.h's emit() with CFG_LEARN set (tests/e2e/fixtures/learn_emit.bpf.c): the
    verifier accepts the learning branch (the ring buffer's record held across the path
    walk), and the event names the caller's executable as the path walker resolves it."""
    mylogin = build_mylogin(tmp_path)
    (event,) = learning_events(
        tmp_path, mylogin, [(mylogin, file_offset(mylogin, "check_password"))]
    )
    assert event.learned is not None and event.learned.exe == str(mylogin.resolve())
    index = symbols.function_index(mylogin)
    named = {
        index.function_at(frame.offset)
        for frame in event.learned.frames
        if frame.build_id.hex() == index.build_id
    }
    assert {"check_password", "main"} <= named, named


def syscall_offsets(library: Path, function: str) -> list[int]:
    """File offsets of the `syscall` instructions of `function` (an export of `library`),
    found by the disassembler: a uprobe must sit on an instruction's first byte."""
    with library.open("rb") as f:
        (symbol,) = ELFFile(f).get_section_by_name(".dynsym").get_symbol_by_name(function)
    start = file_offset(library, function, ".dynsym")
    listing = subprocess.run(
        ["objdump", "-d", f"--start-address={symbol['st_value']}"]
        + [f"--stop-address={symbol['st_value'] + symbol['st_size']}", str(library)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [
        start + int(line.split(":")[0], 16) - symbol["st_value"]
        for line in listing.splitlines()
        if line.rstrip().endswith("\tsyscall")
    ]


def test_the_stack_scan_finds_the_functions_at_the_system_call(tmp_path: Path) -> None:
    """emit() at open64's system call, where an LSM hook runs: there glibc keeps the path in
    rbp, and the stack copy the event carries must still name read_entry, check_password and
    main through the scan (runtime/learn/scan.py), for both password files."""
    mylogin = build_mylogin(tmp_path)
    libc = LIBC.resolve()
    sites = syscall_offsets(libc, "open64")
    assert sites
    sent = learning_events(tmp_path, mylogin, [(libc, site) for site in sites])
    opens = [e for e in sent if e.comm == "mylogin"]
    # The loader opens libraries with its own code; the program's two opens are open64's.
    assert len(opens) == 2, (sites, sent)
    text = symbols.executable_text(mylogin)
    index = symbols.function_index(mylogin)
    for opened in opens:
        assert opened.learned is not None
        # All of it, or the part in the stack pointer's page when the next one was never
        # touched (verdict.bpf.h's copy_stack_top).
        window = opened.learned.window
        assert len(window) == abi.LEARN_STACK_WINDOW or 0 < len(window) == PAGE - (
            opened.learned.user_sp % PAGE
        ), (len(window), hex(opened.learned.user_sp))
        found = return_addresses(
            text, opened.learned.window, opened.learned.exe_entry, opened.learned.user_sp
        )
        names = [index.function_at(address.offset - 1) for address in found]
        live = ["read_entry", "check_password", "main"]
        assert [n for n in names if n in live] == live, names
        # The second open's copy also holds the return address into report() that the first
        # read's printf left (a stale frame, scan.py), inside the live ones: the draft's
        # choice of the outermost function is not misled by it.
        stale = [i for i, name in enumerate(names) if name not in (*live, "_start")]
        assert all(i < names.index("check_password") for i in stale), names
