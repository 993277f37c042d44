"""Return addresses into a program's code found in a copy of a user stack.

The kernel unwinds a learning event's user stack by frame pointers, and that walk stops at
the first function that keeps something else in rbp: glibc's open64 keeps the path pointer
there across the openat system call, so an open made inside check_password() shows no frame
of the program at all.  A learning event therefore also carries `abi.LEARN_STACK_WINDOW`
bytes of the stack from the stack pointer up, and where the executable was loaded (AT_ENTRY);
this module finds, in that copy, the 8-byte words that are return addresses into the
program: inside an executable segment of its file (after the load bias, AT_ENTRY minus the
ELF header's e_entry, is taken off) and right after a call instruction (`e8 rel32`, or an
indirect `ff /2` in any of its addressing forms).  The draft then names the functions they
lie in, as it does for the kernel's frames (draft.py).

A heuristic: a word that passes both tests need not be a live frame.  A function's stack
slots that it has not written yet still hold what earlier, finished calls left there, which
may be return addresses of those calls; and a pointer to a function that directly follows a
call (a function ending in a call to a noreturn one) looks like a return address into the
function before it.  docs/language.md ("Limits and known gaps") says what that costs.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from bpfbox.compiler.symbols import ExecutableText
from bpfbox.contract import abi

_WORD = struct.Struct("<Q")
_CALL_REL32 = 0xE8
_CALL_REL32_LENGTH = 5
_GROUP_FF = 0xFF
_CALL_INDIRECT = 2  # the ModRM reg field of `ff /2`: call near, absolute indirect
# Every length an `ff /2` call can have (opcode, ModRM, SIB, displacement; prefixes come
# before the opcode and do not matter here).
_INDIRECT_LENGTHS = (2, 3, 4, 6, 7)
_RM_SIB = 4
_RM_DISP32 = 5  # with mod 0: rip-relative, or with a SIB byte: no base register
_MOD_REGISTER = 3


@dataclass(frozen=True)
class ReturnAddress:
    """A word of the stack copy that looks like a return address into the program."""

    offset: int  # its file offset
    # The file offset of the call's target when it is a direct call (`e8 rel32`) into the
    # file's code: the function whose frame must lie just below, which lets the draft drop
    # what lies between as stale (draft.py).  None for an indirect call.
    callee: int | None


def return_addresses(
    text: ExecutableText, window: bytes, loaded_entry: int, sp: int
) -> list[ReturnAddress]:
    """The return addresses into `text` in `window`, innermost first.

    `window` is the user stack from address `sp` up; `loaded_entry` is where the entry point
    was loaded (AT_ENTRY), 0 if unknown (then nothing can be found).  At most
    abi.LEARN_STACK_WINDOW bytes are looked at, one aligned 8-byte word at a time (the ABI
    keeps return addresses 8-byte aligned).
    """
    if not loaded_entry:
        return []
    bias = loaded_entry - text.entry
    window = window[: abi.LEARN_STACK_WINDOW]
    found = []
    for at in range(-sp % _WORD.size, len(window) - _WORD.size + 1, _WORD.size):
        (word,) = _WORD.unpack_from(window, at)
        located = text.file_offset(word - bias)
        if located is None:
            continue
        segment, index = located
        direct = _follows_direct_call(segment.code, index)
        indirect = _follows_indirect_call(segment.code, index)
        if direct and not indirect:
            target = text.file_offset(word - bias + _rel32(segment.code, index))
            callee = target[0].offset + target[1] if target else None
            found.append(ReturnAddress(segment.offset + index, callee))
        elif direct or indirect:
            # Bytes both forms can be read as: the target is not known for sure.
            found.append(ReturnAddress(segment.offset + index, None))
    return found


def follows_call(code: bytes, index: int) -> bool:
    """Whether the instruction ending right before `code[index]` is a call."""
    return _follows_direct_call(code, index) or _follows_indirect_call(code, index)


def _follows_direct_call(code: bytes, index: int) -> bool:
    return index >= _CALL_REL32_LENGTH and code[index - _CALL_REL32_LENGTH] == _CALL_REL32


def _rel32(code: bytes, index: int) -> int:
    return int.from_bytes(code[index - 4 : index], "little", signed=True)


def _follows_indirect_call(code: bytes, index: int) -> bool:
    return any(
        index >= length
        and code[index - length] == _GROUP_FF
        and _indirect_call_length(code, index - length + 1) == length
        for length in _INDIRECT_LENGTHS
    )


def _indirect_call_length(code: bytes, modrm_at: int) -> int:
    """The length of an `ff /2` call whose ModRM byte is at `modrm_at`, 0 if it is not one."""
    modrm = code[modrm_at]
    if (modrm >> 3) & 7 != _CALL_INDIRECT:
        return 0
    mod, rm = modrm >> 6, modrm & 7
    if mod == _MOD_REGISTER:
        return 2
    sib = rm == _RM_SIB
    if mod == 0:
        if sib and modrm_at + 1 < len(code) and code[modrm_at + 1] & 7 == _RM_DISP32:
            return 2 + 1 + 4
        displacement = 4 if rm == _RM_DISP32 else 0
    else:
        displacement = 1 if mod == 1 else 4
    return 2 + sib + displacement
