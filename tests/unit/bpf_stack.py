"""A bound on the stack a BPF object's programs need, as the kernel's verifier counts it.

The verifier refuses a program whose chain of BPF-to-BPF calls needs more than 512 bytes of
stack in all ("combined stack size of N calls is X. Too large"), counting each function's
frame rounded up to 32 bytes.  Here the frames are read from the instructions (the deepest
offset below r10 a function stores to, loads from, or takes the address of, on any path,
where the verifier counts only the paths it explores), and a bpf_loop callback counts as a
call from the function that passes it: a bound at or above the verifier's count.  On the
code before 7221df8 it gave the 544 bytes of 6 calls that 6.1 refused.  This finds on the
host, from clang's object, what the VM matrix otherwise finds per kernel.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from elftools.elf.elffile import ELFFile
from elftools.elf.relocation import RelocationSection

#: The verifier's limit for a chain of calls (MAX_BPF_STACK).
STACK_LIMIT = 512
_INSN = 8
_CALL, _LD_IMM64, _MOV64_REG, _ADD64_IMM = 0x85, 0x18, 0xBF, 0x07
_PSEUDO_CALL = 1
_CLASS_LDX, _CLASS_ST, _CLASS_STX = 1, 2, 3
_FP = 10


@dataclass(frozen=True)
class Function:
    name: str
    frame: int  # bytes, rounded up as the verifier does
    callees: frozenset[tuple[str, int]]  # (section, byte offset) of each called function


def functions(path: Path) -> dict[tuple[str, int], Function]:
    """Every function of the object by (section, offset), with its frame and callees."""
    with path.open("rb") as stream:
        elf = ELFFile(stream)
        targets = _relocation_targets(elf)
        found = {}
        for symbol in elf.get_section_by_name(".symtab").iter_symbols():
            if symbol["st_info"]["type"] != "STT_FUNC":
                continue
            section = elf.get_section(symbol["st_shndx"]).name
            start, size = symbol["st_value"], symbol["st_size"]
            code = elf.get_section_by_name(section).data()[start : start + size]
            found[(section, start)] = _function(symbol.name, section, start, code, targets)
    return found


def deepest_chain(
    found: dict[tuple[str, int], Function], key: tuple[str, int]
) -> tuple[int, list[str]]:
    """The most stack any chain of calls from `key` needs, and that chain's functions."""
    function = found[key]
    below, chain = max(
        (deepest_chain(found, callee) for callee in function.callees), default=(0, [])
    )
    return function.frame + below, [f"{function.name} ({function.frame})", *chain]


def _relocation_targets(elf: ELFFile) -> dict[tuple[str, int], str]:
    """(section, offset) of each relocated instruction -> the section its symbol is in."""
    targets = {}
    for section in elf.iter_sections():
        if not isinstance(section, RelocationSection):
            continue
        patched = elf.get_section(section["sh_info"]).name
        symbols = elf.get_section(section["sh_link"])
        for relocation in section.iter_relocations():
            symbol = symbols.get_symbol(relocation["r_info_sym"])
            if symbol["st_shndx"] not in ("SHN_UNDEF", "SHN_ABS"):
                targets[(patched, relocation["r_offset"])] = elf.get_section(
                    symbol["st_shndx"]
                ).name
    return targets


def _function(
    name: str, section: str, start: int, code: bytes, targets: dict[tuple[str, int], str]
) -> Function:
    deepest = 0
    callees = set()
    frame_pointers: dict[int, int] = {}  # register -> its offset from r10
    index = 0
    while index < len(code) // _INSN:
        insn = code[index * _INSN : (index + 1) * _INSN]
        opcode, dst, src = insn[0], insn[1] & 0xF, insn[1] >> 4
        offset = int.from_bytes(insn[2:4], "little", signed=True)
        imm = int.from_bytes(insn[4:8], "little", signed=True)
        here = start + index * _INSN
        if (
            (opcode & 7) in (_CLASS_ST, _CLASS_STX)
            and dst == _FP
            or (opcode & 7) == _CLASS_LDX
            and src == _FP
        ):
            deepest = max(deepest, -offset)
        if opcode == _MOV64_REG and src == _FP:
            frame_pointers[dst] = 0
        elif opcode == _ADD64_IMM and dst in frame_pointers:
            frame_pointers[dst] += imm
            deepest = max(deepest, -frame_pointers[dst])
        elif dst in frame_pointers and (opcode & 7) in (4, 7):
            del frame_pointers[dst]  # another ALU result: no longer a stack address
        if opcode == _CALL and src == _PSEUDO_CALL:
            into = targets.get((section, here))
            # Relocated: imm + 1 instructions into that section; else relative to here.
            callees.add(
                (into, (imm + 1) * _INSN) if into else (section, here + _INSN + imm * _INSN)
            )
        if opcode == _LD_IMM64:
            if targets.get((section, here)) == ".text":  # a callback's address (bpf_loop)
                callees.add((".text", imm))
            index += 2
            continue
        index += 1
    frame = -(-max(deepest, 1) // 32) * 32
    return Function(name, frame, frozenset(callees))
