"""Turn the function a `#[func]` context names into the file offset a uprobe attaches at.

A uprobe is placed at an offset in a file, not at a virtual address: libbpf's
`bpf_program__attach_uprobe()` takes the binary's path and a file offset.  So the compiler
looks the name up in the ELF symbol tables (`.symtab` first, because static functions are only
there, then `.dynsym`), and maps the symbol's address to a file offset through the program
headers, which describe how the file is loaded and are therefore what the kernel's own
address-to-offset mapping follows.

Only pyelftools is used: no `nm`/`readelf` at compile time, so the compiler behaves the same on
every machine.  Every failure is a `SymbolError` with a stable `kind` for diagnostics.
"""

from __future__ import annotations

import bisect
import mmap
import stat
import struct
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, cast

from elftools.common.exceptions import ELFError
from elftools.construct.core import ConstructError
from elftools.elf.dynamic import DynamicSegment
from elftools.elf.elffile import ELFFile
from elftools.elf.gnuversions import GNUVerDefSection
from elftools.elf.sections import NoteSection, Symbol, SymbolTableSection

from .btf import nearest_names

_ELF_MAGIC = b"\x7fELF"
# pyelftools names type 10 (STT_GNU_IFUNC) STT_LOOS unless the file's OS ABI is GNU.
_FUNCTION_TYPES = frozenset({"STT_FUNC", "STT_GNU_IFUNC", "STT_LOOS"})
# Other bindings (STB_GNU_UNIQUE) count as global: they are visible process-wide.
_BINDINGS = {"STB_LOCAL": "local", "STB_GLOBAL": "global", "STB_WEAK": "weak"}
_BINDING_STRENGTH = {"local": 0, "weak": 1, "global": 2}
_LINKED_TYPES = frozenset({"ET_EXEC", "ET_DYN"})
_PF_X = 0x1
_DF_1_PIE = 0x08000000
# A `.gnu.version` entry: the version index, plus a bit saying the version is not the default.
_VERSYM_HIDDEN = 0x8000
_VERSYM_INDEX = 0x7FFF
# Indexes 0 and 1 mean "local" and "global, unversioned"; the version definition numbered 1
# names the file itself (its soname), not a symbol version.
_FIRST_VERSION_INDEX = 2
# pyelftools parses lazily, so malformed input can make any of these escape from any call:
# sizes, offsets and indexes all come from the file, and seeking a mapping with an offset
# out of range raises ValueError or OverflowError.
ELF_PARSE_ERRORS = (
    ELFError,
    ConstructError,
    struct.error,
    ValueError,
    OverflowError,
    IndexError,
    KeyError,
    OSError,
)


@dataclass(frozen=True)
class FunctionSymbol:
    """A function found in an ELF file, with the file offset a uprobe on its entry needs."""

    name: str  # as asked, including any `@VERSION`
    binary: str  # path of the ELF file that contains the code, as given
    offset: int  # file offset of the entry
    address: int  # st_value (virtual address)
    size: int
    binding: str  # "global", "local" or "weak"
    table: str  # ".symtab" or ".dynsym"


class SymbolError(Exception):
    """A function name cannot be turned into a uprobe offset.

    `kind` is a short stable string that diagnostics and tests key on; str() is a lowercase
    message without a trailing period, with names and paths in backticks.
    """

    kind = "symbol-error"


class NotFoundError(SymbolError):
    """The binary, library or symbols file does not exist."""

    kind = "missing-file"


class NotElfError(SymbolError):
    """The path exists but is not a readable, well-formed ELF file (or is a directory)."""

    kind = "not-elf"


class NotExecutableError(SymbolError):
    """The file is ELF but cannot be what was asked for.

    A uprobe needs a linked file (ET_EXEC or ET_DYN), so objects and core dumps are refused
    everywhere; a confined program must also be runnable, so a shared library is refused
    there unless it is a PIE or has an interpreter (both of which the kernel can exec).
    """

    kind = "not-executable"


class StrippedError(SymbolError):
    """The file has no `.symtab` and the name is not in its dynamic symbols."""

    kind = "stripped"


class UnknownFunctionError(SymbolError):
    """No function has that name; `candidates` holds up to 3 similar names, best first."""

    kind = "unknown-function"

    def __init__(self, message: str, candidates: list[str]) -> None:
        super().__init__(message)
        self.candidates = candidates


class DuplicateFunctionError(SymbolError):
    """Several functions at different addresses have that name, so the probe is ambiguous.

    `matches` lists them, e.g. two `static` functions of different translation units.
    """

    kind = "duplicate-function"

    def __init__(self, message: str, matches: list[FunctionSymbol]) -> None:
        super().__init__(message)
        self.matches = matches


class UnmappedFunctionError(SymbolError):
    """The symbol's address is not in any file-backed loadable segment of the binary.

    This happens with a symbols file that belongs to another build of the binary, when the
    file carries no build ID to tell.
    """

    kind = "unmapped-function"


class MismatchedSymbolsError(SymbolError):
    """The symbols file and the binary have different GNU build IDs."""

    kind = "symbols-mismatch"


@dataclass(frozen=True)
class _Segment:
    """A PT_LOAD program header: `filesz` bytes at `offset` are mapped at `vaddr`."""

    vaddr: int
    memsz: int
    offset: int
    filesz: int
    executable: bool


@dataclass(frozen=True)
class _Entry:
    """A defined function symbol, its name split into base name and GNU version."""

    base: str
    version: str | None
    default: bool  # whether the plain base name refers to this symbol
    address: int
    size: int
    binding: str
    table: str

    @property
    def display_name(self) -> str:
        """The shortest name that finds this entry."""
        return self.base if self.default else f"{self.base}@{self.version}"


@dataclass(frozen=True)
class _FunctionTable:
    """The defined functions of one ELF file, from all its symbol tables."""

    source: str
    entries: tuple[_Entry, ...]
    has_symtab: bool

    def names(self) -> list[str]:
        return sorted({entry.display_name for entry in self.entries})


def check_elf_executable(path: str | Path) -> None:
    """Check that `path` is a program the kernel can exec, so a profile may confine it.

    Accepts ET_EXEC files, and ET_DYN files that are PIEs (they have an interpreter, or the
    DF_1_PIE flag, as static PIEs do).  Raises NotFoundError, NotElfError or
    NotExecutableError otherwise.
    """
    elf_path = Path(path)
    with _open_elf(elf_path) as elf:
        _require_linked(elf, elf_path)
        if elf["e_type"] == "ET_DYN" and not _is_runnable_shared_object(elf):
            raise NotExecutableError(f"`{elf_path}` is a shared library, not a program")


def resolve_function(
    binary: str | Path, name: str, symbols_file: str | Path | None = None
) -> FunctionSymbol:
    """Find function `name` in `binary` and return it with its uprobe file offset.

    `name` may carry a GNU version (`NAME@VERSION` for any version, `NAME@@VERSION` for the
    default one); a plain name means the default version.  With `symbols_file` (separate
    debug symbols, as `objcopy --only-keep-debug` makes them), the name is looked up there,
    but the offset always comes from the program headers of `binary`, because a debug file's
    program headers keep the addresses but not the file offsets.
    """
    binary_path = Path(binary)
    with _open_elf(binary_path) as elf:
        _require_linked(elf, binary_path)
        segments = _load_segments(elf)
        if symbols_file is None:
            table = _function_table(elf, binary_path)
        else:
            table = _symbols_file_table(Path(symbols_file), binary_path, _build_id(elf))
    groups = _group_by_address(_lookup(table, name))
    if not groups:
        raise _not_found(table, name, from_symbols_file=symbols_file is not None)
    found = [_function_symbol(name, binary, group, segments) for group in groups]
    if len(found) > 1:
        raise _duplicate(name, table.source, found)
    return found[0]


def function_names(binary: str | Path) -> list[str]:
    """Return the sorted names of all defined functions of `binary`, for "did you mean".

    Every name listed resolves with `resolve_function`, unless it is ambiguous: a version
    that is not the default is listed as `NAME@VERSION`.
    """
    path = Path(binary)
    with _open_elf(path) as elf:
        return _function_table(elf, path).names()


@dataclass(frozen=True)
class FunctionIndex:
    """The functions of one ELF file by file offset: which function a stack frame is in.

    The inverse of `resolve_function`: a user stack frame recorded as (build ID, file offset),
    which is what `bpf_get_stack(BPF_F_USER_STACK | BPF_F_USER_BUILD_ID)` reports, becomes the
    name of the function containing it.  Names are the ones `resolve_function` accepts;
    `ambiguous` holds those that name several functions (E0505 in a `#[func]`).
    """

    binary: str
    build_id: str | None
    has_symtab: bool
    entry: int | None  # the file offset of the entry point (e_entry), None if not in the file
    starts: tuple[int, ...]  # file offsets of function entries, sorted
    ends: tuple[int, ...]  # one past each function's last byte
    names: tuple[str, ...]
    ambiguous: frozenset[str]

    def function_at(self, offset: int) -> str | None:
        """The function whose code contains file offset `offset`, or None."""
        index = bisect.bisect_right(self.starts, offset) - 1
        if index >= 0 and offset < self.ends[index]:
            return self.names[index]
        return None

    def function_starting_at(self, offset: int) -> str | None:
        """The function whose entry is file offset `offset`, or None."""
        index = bisect.bisect_left(self.starts, offset)
        if index < len(self.starts) and self.starts[index] == offset:
            return self.names[index]
        return None


def function_index(binary: str | Path, symbols_file: str | Path | None = None) -> FunctionIndex:
    """Index the functions of `binary` (names from `symbols_file` when given) by file offset.

    A function of size 0 (hand-written assembly often has no size) extends to the next one.
    Aliases at one address are one function, named by the strongest binding, `.symtab` first.
    """
    binary_path = Path(binary)
    with _open_elf(binary_path) as elf:
        _require_linked(elf, binary_path)
        segments = _load_segments(elf)
        build_id = _build_id(elf)
        entry_offset = _file_offset(elf["e_entry"], segments)
        if symbols_file is None:
            table = _function_table(elf, binary_path)
        else:
            table = _symbols_file_table(Path(symbols_file), binary_path, build_id)
    by_offset: dict[int, tuple[_Entry, int]] = {}
    addresses_by_name: dict[str, set[int]] = {}
    for entry in table.entries:
        offset = _file_offset(entry.address, segments)
        if offset is None:
            continue
        addresses_by_name.setdefault(entry.display_name, set()).add(entry.address)
        best = by_offset.get(offset)
        if best is None or _preferred(entry, best[0]):
            by_offset[offset] = (entry, max(entry.size, best[1] if best else 0))
    starts = sorted(by_offset)
    ends = []
    for index, start in enumerate(starts):
        size = by_offset[start][1]
        if not size:
            size = starts[index + 1] - start if index + 1 < len(starts) else 1
        ends.append(start + size)
    return FunctionIndex(
        binary=str(binary),
        build_id=build_id,
        has_symtab=table.has_symtab,
        entry=entry_offset,
        starts=tuple(starts),
        ends=tuple(ends),
        names=tuple(by_offset[start][0].display_name for start in starts),
        ambiguous=frozenset(name for name, found in addresses_by_name.items() if len(found) > 1),
    )


@dataclass(frozen=True)
class CodeSegment:
    """An executable PT_LOAD segment: `code` (its bytes in the file) is loaded at `vaddr`."""

    vaddr: int
    offset: int  # where `code` starts in the file
    code: bytes


@dataclass(frozen=True)
class ExecutableText:
    """The code of an ELF file as it is loaded, for telling return addresses into it in a
    copy of a user stack (runtime/learn/scan.py)."""

    binary: str
    build_id: str | None
    entry: int  # e_entry: the entry point's address before the load bias
    segments: tuple[CodeSegment, ...]

    def file_offset(self, address: int) -> tuple[CodeSegment, int] | None:
        """The segment whose file bytes hold virtual address `address`, and its index there."""
        for segment in self.segments:
            if 0 <= address - segment.vaddr < len(segment.code):
                return segment, address - segment.vaddr
        return None


def executable_text(binary: str | Path) -> ExecutableText:
    """Read the executable segments of `binary` (an executable or shared library)."""
    path = Path(binary)
    with _open_elf(path) as elf:
        _require_linked(elf, path)
        return ExecutableText(
            binary=str(binary),
            build_id=_build_id(elf),
            entry=elf["e_entry"],
            segments=tuple(
                CodeSegment(segment["p_vaddr"], segment["p_offset"], segment.data())
                for segment in elf.iter_segments(type="PT_LOAD")
                if segment["p_flags"] & _PF_X
            ),
        )


def _preferred(entry: _Entry, other: _Entry) -> bool:
    """Whether `entry` names a function better than `other` at the same address."""

    def rank(candidate: _Entry) -> tuple[bool, int]:
        return candidate.table == ".symtab", _BINDING_STRENGTH[candidate.binding]

    return rank(entry) > rank(other)


@contextmanager
def _open_elf(path: Path) -> Iterator[ELFFile]:
    """Open `path` as ELF; malformed contents met anywhere in the block become NotElfError.

    The file is mapped rather than read: pyelftools reads sizes it takes from the file, and
    reading a corrupt 2**60-byte section from a mapping stops at its end instead of first
    allocating that much memory.
    """
    with _open_regular_file(path) as file:
        try:
            if file.read(len(_ELF_MAGIC)) != _ELF_MAGIC:
                raise NotElfError(f"`{path}` is not an ELF file")
            with mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as image:
                # pyelftools reads its stream with read/seek/tell, which a mapping has.
                yield ELFFile(cast(BinaryIO, image))
        except ELF_PARSE_ERRORS as error:
            raise NotElfError(f"`{path}` is a malformed or truncated ELF file") from error


def _open_regular_file(path: Path) -> BinaryIO:
    """Open `path` for reading, refusing anything but a regular file.

    The type is checked before opening, because opening a FIFO waits for a writer forever.
    """
    try:
        mode = path.stat().st_mode
        if stat.S_ISDIR(mode):
            raise NotElfError(f"`{path}` is a directory, not an ELF file")
        if not stat.S_ISREG(mode):
            raise NotElfError(f"`{path}` is not a regular file")
        return path.open("rb")
    except FileNotFoundError as error:
        raise NotFoundError(f"file `{path}` does not exist") from error
    except OSError as error:
        reason = (error.strerror or str(error)).lower()
        raise NotElfError(f"cannot read `{path}`: {reason}") from error


def _require_linked(elf: ELFFile, path: Path) -> None:
    """Refuse files with no loaded code: there is no file offset to probe in them."""
    e_type = elf["e_type"]
    if e_type not in _LINKED_TYPES:
        what = {"ET_REL": "a relocatable object file", "ET_CORE": "a core dump"}.get(
            e_type, f"an ELF file of type `{e_type}`"
        )
        raise NotExecutableError(f"`{path}` is {what}, not an executable or shared library")
    # A debug file made by `objcopy --only-keep-debug` has the program headers but no code.
    if not any(
        segment["p_flags"] & _PF_X and segment["p_filesz"] > 0
        for segment in elf.iter_segments(type="PT_LOAD")
    ):
        raise NotExecutableError(
            f"`{path}` has no code: it looks like a separate debug symbols file"
        )


def _is_runnable_shared_object(elf: ELFFile) -> bool:
    """Tell a PIE (which the kernel can exec) from a plain shared library."""
    if any(True for _ in elf.iter_segments(type="PT_INTERP")):
        return True
    return any(
        tag["d_tag"] == "DT_FLAGS_1" and tag["d_val"] & _DF_1_PIE
        for segment in elf.iter_segments(type="PT_DYNAMIC")
        if isinstance(segment, DynamicSegment)  # what pyelftools makes of every PT_DYNAMIC
        for tag in segment.iter_tags()
    )


def _load_segments(elf: ELFFile) -> list[_Segment]:
    return [
        _Segment(
            vaddr=segment["p_vaddr"],
            memsz=segment["p_memsz"],
            offset=segment["p_offset"],
            filesz=segment["p_filesz"],
            executable=bool(segment["p_flags"] & _PF_X),
        )
        for segment in elf.iter_segments(type="PT_LOAD")
    ]


def _build_id(elf: ELFFile) -> str | None:
    """Return the GNU build ID (hex), read from note sections: debug files keep those."""
    for section in elf.iter_sections(type="SHT_NOTE"):
        if not isinstance(section, NoteSection):  # what pyelftools makes of every SHT_NOTE
            continue
        for note in section.iter_notes():
            if note["n_type"] == "NT_GNU_BUILD_ID":
                return str(note["n_desc"])
    return None


def _symbols_file_table(path: Path, binary: Path, binary_build_id: str | None) -> _FunctionTable:
    """Read the functions of a separate symbols file, refusing one from another build."""
    with _open_elf(path) as elf:
        build_id = _build_id(elf)
        if binary_build_id and build_id and build_id != binary_build_id:
            raise MismatchedSymbolsError(
                f"symbols file `{path}` does not belong to `{binary}`: "
                f"build id {build_id} differs from {binary_build_id}"
            )
        return _function_table(elf, path)


def _function_table(elf: ELFFile, path: Path) -> _FunctionTable:
    entries: list[_Entry] = []
    has_symtab = False
    # A debug file's `.dynsym` is NOBITS, so matching on the section type skips it.
    for index, section in enumerate(elf.iter_sections()):
        if not isinstance(section, SymbolTableSection):  # SHT_SYMTAB and SHT_DYNSYM are
            continue
        if section["sh_type"] == "SHT_SYMTAB":
            has_symtab = True
            entries.extend(_symtab_entries(section))
        elif section["sh_type"] == "SHT_DYNSYM":
            entries.extend(_dynsym_entries(elf, section, index))
    return _FunctionTable(source=str(path), entries=tuple(entries), has_symtab=has_symtab)


def _is_defined_function(symbol: Symbol) -> bool:
    return (
        symbol["st_info"]["type"] in _FUNCTION_TYPES
        and symbol["st_shndx"] != "SHN_UNDEF"
        and symbol["st_value"] != 0
        and symbol.name != ""
    )


def _make_entry(
    symbol: Symbol, base: str, version: str | None, default: bool, table: str
) -> _Entry:
    return _Entry(
        base=base,
        version=version,
        default=default,
        address=symbol["st_value"],
        size=symbol["st_size"],
        binding=_BINDINGS.get(symbol["st_info"]["bind"], "global"),
        table=table,
    )


def _symtab_entries(section: SymbolTableSection) -> Iterator[_Entry]:
    # The static linker writes versioned definitions into `.symtab` as `NAME@@V` / `NAME@V`.
    for symbol in section.iter_symbols():
        if _is_defined_function(symbol):
            base, version, default = _split_version(symbol.name)
            yield _make_entry(symbol, base, version, default, ".symtab")


def _dynsym_entries(
    elf: ELFFile, section: SymbolTableSection, section_index: int
) -> Iterator[_Entry]:
    # `.dynsym` names are bare; their versions live in the parallel `.gnu.version` array.
    versions = _dynsym_versions(elf, section_index)
    for index, symbol in enumerate(section.iter_symbols()):
        if _is_defined_function(symbol):
            version, default = versions[index] if index < len(versions) else (None, True)
            yield _make_entry(symbol, symbol.name, version, default, ".dynsym")


def _dynsym_versions(elf: ELFFile, dynsym_index: int) -> list[tuple[str | None, bool]]:
    """Return (version name, is default) for each `.dynsym` entry, from `.gnu.version`."""
    versym = next(
        (
            section
            for section in elf.iter_sections(type="SHT_GNU_versym")
            if section["sh_link"] == dynsym_index
        ),
        None,
    )
    if versym is None:
        return []
    data = versym.data()
    if len(data) != versym["sh_size"]:
        raise ELFError("`.gnu.version` extends past the end of the file")
    names = _version_names(elf)
    order = "<" if elf.little_endian else ">"
    versions: list[tuple[str | None, bool]] = []
    for (value,) in struct.iter_unpack(order + "H", data):
        name = names.get(value & _VERSYM_INDEX)
        # Reserved indexes, and ones this file does not define, mean "unversioned".
        if name is None:
            versions.append((None, True))
        else:
            versions.append((name, not value & _VERSYM_HIDDEN))
    return versions


def _version_names(elf: ELFFile) -> dict[int, str]:
    """Map version indexes to the names this file defines (`.gnu.version_d`)."""
    names: dict[int, str] = {}
    for section in elf.iter_sections(type="SHT_GNU_verdef"):
        if not isinstance(section, GNUVerDefSection):  # what pyelftools makes of them
            continue
        for verdef, auxiliaries in section.iter_versions():
            first = next(iter(auxiliaries), None)
            if first is not None and verdef["vd_ndx"] >= _FIRST_VERSION_INDEX:
                names[verdef["vd_ndx"]] = first.name
    return names


def _split_version(name: str) -> tuple[str, str | None, bool]:
    """Split `NAME@@V` / `NAME@V` / `NAME` into (base, version, default).

    For a query, `default` means "only the default version"; `NAME@V` matches V whether or
    not it is the default, since users rarely know which of a library's versions is.
    """
    if "@@" in name:
        base, version = name.split("@@", 1)
        return base, version, True
    if "@" in name:
        base, version = name.split("@", 1)
        return base, version, False
    return name, None, True


def _matches(entry: _Entry, base: str, version: str | None, default_only: bool) -> bool:
    if entry.base != base:
        return False
    if version is None:
        return entry.default
    return entry.version == version and (entry.default or not default_only)


def _lookup(table: _FunctionTable, name: str) -> list[_Entry]:
    """Return the entries `name` refers to, from `.symtab` if it has any, else `.dynsym`."""
    base, version, default_only = _split_version(name)
    found = [entry for entry in table.entries if _matches(entry, base, version, default_only)]
    in_symtab = [entry for entry in found if entry.table == ".symtab"]
    return in_symtab or found


def _group_by_address(entries: list[_Entry]) -> list[list[_Entry]]:
    """Group aliases (same address) together: they are one function, not duplicates."""
    groups: dict[int, list[_Entry]] = {}
    for entry in entries:
        groups.setdefault(entry.address, []).append(entry)
    return [groups[address] for address in sorted(groups)]


def _function_symbol(
    name: str, binary: str | Path, aliases: Sequence[_Entry], segments: list[_Segment]
) -> FunctionSymbol:
    strongest = max(aliases, key=lambda entry: _BINDING_STRENGTH[entry.binding])
    offset = _file_offset(strongest.address, segments)
    if offset is None:
        raise UnmappedFunctionError(
            f"function `{name}` at {strongest.address:#x} is not in a loaded part of "
            f"`{binary}`; do the symbols belong to this binary?"
        )
    return FunctionSymbol(
        name=name,
        binary=str(binary),
        offset=offset,
        address=strongest.address,
        size=max(entry.size for entry in aliases),
        binding=strongest.binding,
        table=strongest.table,
    )


def _file_offset(address: int, segments: list[_Segment]) -> int | None:
    """Map a virtual address to its file offset through the segment that loads it.

    Segments may overlap in custom layouts; code is looked for in executable ones first.
    An address past the file-backed part of its segment (in `.bss`) has no offset.
    """
    containing = [s for s in segments if s.vaddr <= address < s.vaddr + s.memsz]
    if not containing:
        return None
    segment = min(containing, key=lambda s: not s.executable)
    if address >= segment.vaddr + segment.filesz:
        return None
    return address - segment.vaddr + segment.offset


def _not_found(table: _FunctionTable, name: str, from_symbols_file: bool) -> SymbolError:
    if table.has_symtab:
        return UnknownFunctionError(
            f"function `{name}` not found in `{table.source}`",
            nearest_names(name, table.names()),
        )
    if from_symbols_file:
        return StrippedError(
            f"function `{name}` not found: symbols file `{table.source}` has no `.symtab`; "
            "make one from an unstripped build with `objcopy --only-keep-debug`"
        )
    return StrippedError(
        f"function `{name}` not found: `{table.source}` is stripped (no `.symtab`) and "
        f"`{name}` is not among its dynamic symbols; use an unstripped build, or "
        "`--symbols FILE` with separate debug symbols"
    )


def _duplicate(name: str, source: str, matches: list[FunctionSymbol]) -> DuplicateFunctionError:
    places = ", ".join(f"{match.address:#x} ({match.binding})" for match in matches)
    return DuplicateFunctionError(
        f"function `{name}` is ambiguous in `{source}`: "
        f"{len(matches)} functions at different addresses have that name: {places}",
        matches,
    )
