"""The stack scan (runtime/learn/scan.py) on real code and real stacks.

- Call instructions as the assembler encodes them: the scan must accept the address right
  after every form of `call` and refuse the one after a jump.
- A real process's stack: a program built without frame pointers (the frame-pointer walk
  cannot go through it) writes a copy of its stack's top and its AT_ENTRY, as a learning
  event carries them; the scan must name its callers, outermost last, from the program's ELF.
- Drafting: a direct call's target drops the stale frames the scan found inside the
  callee's frame; the golden mylogin runs with their program frames moved from the kernel's
  `stack` to `scanned` (what a run on Debian 12 records, glibc's open64 breaking the
  frame-pointer walk) draft the same policy.
"""

from __future__ import annotations

import dataclasses
import struct
import subprocess
from pathlib import Path

from bpfbox.compiler import symbols
from bpfbox.compiler.resolve import ElfResolver
from bpfbox.contract import abi
from bpfbox.runtime.learn import draft as drafting
from bpfbox.runtime.learn.log import Frame, read_logs
from bpfbox.runtime.learn.scan import follows_call, return_addresses
from elftools.elf.elffile import ELFFile

REPO = Path(__file__).resolve().parents[2]
GOLDEN = REPO / "tests" / "golden" / "learn"
ROOT = REPO / "tests" / "golden" / "root"

# Each instruction is followed by a label `after_N`; the calls first, then what is no call.
CALLS = [
    "call target",
    "call *%rax",
    "call *%r11",
    "call *(%rax)",
    "call *(%rsp)",
    "call *8(%rax)",
    "call *8(%rsp)",
    "call *target@GOTPCREL(%rip)",
    "call *0x1000(%rax)",
    "call *0x1000(%rsp)",
    "call *0x1000(,%rax,8)",
    "call *0x1000(%r12,%rbx,4)",
]
NOT_CALLS = ["jmp target", "jmp *%rax", "jmp *8(%rax)", "jmp *target@GOTPCREL(%rip)", "ret", "nop"]


def test_the_scan_knows_every_call_form_the_assembler_writes(tmp_path: Path) -> None:
    lines = [".text", ".globl target", "target:"]
    for number, instruction in enumerate(CALLS + NOT_CALLS):
        lines += [f"    {instruction}", f".globl after_{number}", f"after_{number}:"]
    source = tmp_path / "calls.s"
    source.write_text("\n".join(lines) + "\n    ret\n")
    obj = tmp_path / "calls.o"
    subprocess.run(["clang", "-c", str(source), "-o", str(obj)], check=True)
    with obj.open("rb") as f:
        elf = ELFFile(f)
        code = elf.get_section_by_name(".text").data()
        table = elf.get_section_by_name(".symtab")
        after = [
            table.get_symbol_by_name(f"after_{n}")[0]["st_value"]
            for n in range(len(CALLS + NOT_CALLS))
        ]
    assert [follows_call(code, at) for at in after] == [True] * len(CALLS) + [False] * len(
        NOT_CALLS
    )


PROGRAM = r"""
#include <sys/auxv.h>
#include <unistd.h>

/* Writes its stack pointer, AT_ENTRY and the stack's top from there, as a learning event
 * carries them. */
__attribute__((noinline)) int dump(void)
{
	unsigned long header[2];

	__asm__ volatile("mov %%rsp, %0" : "=r"(header[0]));
	header[1] = getauxval(AT_ENTRY);
	if (write(1, header, sizeof(header)) != sizeof(header))
		return 1;
	return write(1, (void *)header[0], WINDOW) != WINDOW;
}

__attribute__((noinline)) int middle(int n) { return dump() + n; }
__attribute__((noinline)) int outer(int n) { return middle(n) * 3; }

int main(int argc, char **argv)
{
	/* Room above main's callers, so that the copy never runs past the stack's top. */
	volatile char room[4 * WINDOW];

	room[0] = 0;
	return outer(argc - 1) + room[0];
}
"""


def test_the_scan_names_the_callers_on_a_real_stack_without_frame_pointers(
    tmp_path: Path,
) -> None:
    source = tmp_path / "stacked.c"
    source.write_text(PROGRAM)
    program = tmp_path / "stacked"
    subprocess.run(
        ["clang", "-O2", "-fomit-frame-pointer", "-fPIE", "-pie", "-Wl,--build-id"]
        + [f"-DWINDOW={abi.LEARN_STACK_WINDOW}", str(source), "-o", str(program)],
        check=True,
    )
    output = subprocess.run([str(program)], capture_output=True, check=True).stdout
    sp, entry = struct.unpack_from("<QQ", output)
    window = output[16:]
    assert len(window) == abi.LEARN_STACK_WINDOW
    text = symbols.executable_text(program)
    index = symbols.function_index(program)
    found = return_addresses(text, window, entry, sp)
    live = {
        index.function_at(address.offset - 1): index.function_starting_at(address.callee)
        for address in found
        if address.callee is not None
    }
    names = [index.function_at(address.offset - 1) for address in found]
    # The live frames, in the stack's order; dump() itself made the copy (no return into it).
    assert [n for n in names if n in ("middle", "outer", "main")] == ["middle", "outer", "main"]
    # Each made a direct call, whose target the scan tells the draft.
    assert {n: live[n] for n in ("middle", "outer", "main")} == {
        "middle": "dump",
        "outer": "middle",
        "main": "outer",
    }
    # A PIE is loaded somewhere else each run: the load bias comes from AT_ENTRY.
    assert entry != text.entry
    # Without the loaded entry point, nothing can be told.
    assert return_addresses(text, window, 0, sp) == []


def test_a_direct_call_drops_the_stale_frames_inside_its_callee() -> None:
    """Scanned frames of the golden mylogin, innermost first: open() was called from
    read_entry(), then a word in check_password()'s own frame that looks like a return into
    add_user() (left by an earlier call), then the return into check_password() after its
    direct call of read_entry(), and into main() after its call of check_password()."""
    index = symbols.function_index(ROOT / "sbin" / "mylogin")
    start = dict(zip(index.names, index.starts, strict=True))

    def inside(name: str, callee: str | None = None) -> Frame:
        return Frame(index.build_id, start[name] + 2, callee=start.get(callee or ""))

    frames = [
        inside("read_entry"),
        inside("add_user"),
        inside("check_password", "read_entry"),
        inside("main", "check_password"),
    ]
    assert drafting._scanned_functions(frames, index) == ["read_entry", "check_password", "main"]
    # An indirect call proves nothing: the stale frame stays.
    frames[2] = inside("check_password")
    assert drafting._scanned_functions(frames, index) == [
        "read_entry",
        "add_user",
        "check_password",
        "main",
    ]


def test_the_scan_adds_nothing_beyond_the_outermost_function_the_walk_reached() -> None:
    """A frame-pointer walk that reached main() is right: a scanned return address found
    beyond it (stale, in main's own frame) must not become the outermost function."""
    _, accesses = read_logs([GOLDEN / "mylogin" / "1-check.jsonl"])
    index = symbols.function_index(ROOT / "sbin" / "mylogin")
    start = dict(zip(index.names, index.starts, strict=True))
    (shadow,) = [a for a in accesses if a.object == "/etc/shadow"]
    live = ("read_entry", "check_password", "main")
    assert drafting._functions(shadow, index) == live
    scanned = [Frame(index.build_id, start[name] + 2) for name in live]
    stale = Frame(index.build_id, start["add_user"] + 2)
    seen = dataclasses.replace(shadow, scanned=(*scanned, stale))
    assert drafting._functions(seen, index) == live
    # With no frame of the program from the walk, the scan is all there is.
    blind = dataclasses.replace(seen, stack=shadow.stack[:1])
    assert drafting._functions(blind, index) == (*live, "add_user")


def test_scanned_frames_draft_as_frame_pointer_frames() -> None:
    runs, accesses = read_logs(sorted((GOLDEN / "mylogin").glob("*.jsonl")))
    index = symbols.function_index(ROOT / "sbin" / "mylogin")

    def scanned(access):
        """The access as Debian 12's glibc makes it look: no program frame in `stack`."""
        if not access.stack:
            return access
        own = [f for f in access.stack if f.build_id == index.build_id]
        other = [f for f in access.stack if f.build_id != index.build_id]
        return dataclasses.replace(access, stack=tuple(other), scanned=tuple(own))

    resolver = ElfResolver(sysroot=ROOT)
    moved = [scanned(a) for a in accesses]
    assert any(a.scanned for a in moved) and not any(
        f.build_id == index.build_id for a in moved for f in a.stack or ()
    )
    assert drafting.draft(runs, moved, resolver) == drafting.draft(runs, accesses, resolver)
