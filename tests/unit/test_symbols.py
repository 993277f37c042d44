"""Tests of compiler/symbols.py: from a `#[func]` name to the file offset of a uprobe.

The oracle for offsets is independent of the code under test: the module maps addresses to
file offsets through the program headers, and these tests read the function's bytes through
the section headers instead (the section that holds the address, at `address - sh_addr`) and
compare them with the bytes at the computed offset.  Most tests run twice, on the checked-in
fixtures and on fixtures freshly built by their build.sh, when gcc and binutils are present.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from bpfbox.compiler.symbols import (
    DuplicateFunctionError,
    FunctionSymbol,
    MismatchedSymbolsError,
    NotElfError,
    NotExecutableError,
    NotFoundError,
    StrippedError,
    SymbolError,
    UnknownFunctionError,
    UnmappedFunctionError,
    check_elf_executable,
    function_names,
    resolve_function,
)
from elftools.elf.constants import SH_FLAGS
from elftools.elf.elffile import ELFFile

ELF_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "elf"
TOOLS = ("gcc", "strip", "objcopy", "nm", "objdump")
HAVE_TOOLCHAIN = all(shutil.which(tool) for tool in TOOLS)
needs_toolchain = pytest.mark.skipif(not HAVE_TOOLCHAIN, reason="needs gcc and binutils")
CAN_RUN_FIXTURES = sys.platform == "linux" and os.uname().machine == "x86_64"
NON_PIE_BASE = 0x400000
# How build.sh links the `layout` fixture.
LAYOUT_FLAGS = ("-fPIE", "-pie", "-Wl,-z,noseparate-code", "-Wl,--section-start=.far_text=0x200000")


@pytest.fixture(scope="session")
def fresh_elf_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fixtures rebuilt by build.sh with this machine's toolchain."""
    if not HAVE_TOOLCHAIN:
        pytest.skip("needs gcc and binutils")
    out = tmp_path_factory.mktemp("elf")
    subprocess.run(["sh", str(ELF_DIR / "build.sh"), str(out)], check=True, capture_output=True)
    return out


@pytest.fixture(params=["checked-in", "fresh"])
def elf_dir(request: pytest.FixtureRequest) -> Path:
    if request.param == "checked-in":
        return ELF_DIR
    return request.getfixturevalue("fresh_elf_dir")


#: mylogin's source is the example program.
MYLOGIN_SOURCE = Path(__file__).resolve().parents[2] / "examples" / "mylogin.c"


def gcc(tmp_path: Path, output: str, *args: str) -> Path:
    """Compile and link with gcc in the fixture folder; return the output's path."""
    path = tmp_path / output
    subprocess.run(["gcc", "-O1", "-g0", *args, "-o", str(path)], cwd=ELF_DIR, check=True)
    return path


def bytes_in_section(path: Path, address: int, length: int) -> bytes:
    """Read `length` bytes at virtual `address` through the section headers."""
    with path.open("rb") as stream:
        for section in ELFFile(stream).iter_sections():
            start, size = section["sh_addr"], section["sh_size"]
            if (
                section["sh_type"] == "SHT_PROGBITS"
                and section["sh_flags"] & SH_FLAGS.SHF_ALLOC
                and start <= address < start + size
            ):
                return section.data()[address - start : address - start + length]
    raise AssertionError(f"no section of {path} holds {address:#x}")


def bytes_at_offset(path: Path, offset: int, length: int) -> bytes:
    with path.open("rb") as stream:
        stream.seek(offset)
        return stream.read(length)


def assert_offset_is_entry(symbol: FunctionSymbol) -> None:
    """The bytes at the computed offset are the function's bytes, as its section has them."""
    code = bytes_in_section(Path(symbol.binary), symbol.address, max(symbol.size, 16))
    assert code
    assert bytes_at_offset(Path(symbol.binary), symbol.offset, len(code)) == code


def load_segments(path: Path) -> list[dict]:
    with path.open("rb") as stream:
        return [dict(s.header) for s in ELFFile(stream).iter_segments(type="PT_LOAD")]


def assert_message_style(error: SymbolError) -> None:
    message = str(error)
    assert isinstance(error.kind, str) and error.kind
    assert message and not message[0].isupper() and not message.endswith(".")


def with_elf_type(tmp_path: Path, source: Path, e_type: int) -> Path:
    """Copy `source` with another e_type (a little-endian ELF's bytes 16-17)."""
    data = bytearray(source.read_bytes())
    data[16:18] = e_type.to_bytes(2, "little")
    path = tmp_path / f"{source.name}.type{e_type}"
    path.write_bytes(bytes(data))
    return path


# --- Offsets ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["check_password", "add_user", "main"])
def test_pie_function(elf_dir, name):
    symbol = resolve_function(elf_dir / "mylogin", name)
    assert (symbol.name, symbol.binding, symbol.table) == (name, "global", ".symtab")
    assert symbol.size > 0
    assert_offset_is_entry(symbol)


def test_default_layout_has_four_load_segments(elf_dir):
    segments = load_segments(elf_dir / "mylogin")
    assert [bool(s["p_flags"] & 1) for s in segments] == [False, True, False, False]


@pytest.mark.parametrize("name", ["check_password", "add_user"])
def test_non_pie_function(elf_dir, name):
    symbol = resolve_function(elf_dir / "mylogin-nopie", name)
    assert symbol.address >= NON_PIE_BASE
    assert symbol.offset == symbol.address - NON_PIE_BASE
    assert_offset_is_entry(symbol)


def test_segment_with_its_own_delta(elf_dir):
    """far_func is loaded at 0x200000 from near the start of the file."""
    path = elf_dir / "layout"
    executable = [s for s in load_segments(path) if s["p_flags"] & 1]
    assert len(executable) == 2
    far = resolve_function(path, "far_func")
    near = resolve_function(path, "near_func")
    assert far.address == 0x200000
    assert far.offset != far.address - min(s["p_vaddr"] for s in load_segments(path))
    assert far.offset < os.path.getsize(path)
    assert_offset_is_entry(far)
    assert_offset_is_entry(near)


@needs_toolchain
@pytest.mark.parametrize(
    "flags",
    [
        ["-fPIE", "-pie"],
        ["-fno-pie", "-no-pie"],
        ["-fPIE", "-pie", "-Wl,-z,noseparate-code"],
        ["-fno-pie", "-no-pie", "-Wl,-z,noseparate-code"],
        ["-fno-pie", "-no-pie", "-Wl,-Ttext-segment=0x10000000"],
        ["-fPIE", "-pie", "-Wl,-z,max-page-size=0x10000", "-Wl,-z,separate-code"],
    ],
    ids=["pie", "no-pie", "pie-noseparate", "no-pie-noseparate", "text-segment", "64k-pages"],
)
def test_freshly_linked_layouts(tmp_path, flags):
    path = gcc(tmp_path, "mylogin", *flags, str(MYLOGIN_SOURCE))
    for name in ("check_password", "add_user", "main"):
        assert_offset_is_entry(resolve_function(path, name))


def test_offset_through_separate_symbols(elf_dir):
    """Stripped binary + `objcopy --only-keep-debug` file = the unstripped build's answer."""
    unstripped = resolve_function(elf_dir / "mylogin", "check_password")
    through_debug = resolve_function(
        elf_dir / "mylogin-stripped", "check_password", elf_dir / "mylogin.debug"
    )
    assert through_debug.binary == str(elf_dir / "mylogin-stripped")
    assert (through_debug.offset, through_debug.address) == (unstripped.offset, unstripped.address)
    assert_offset_is_entry(through_debug)


def test_debug_file_keeps_addresses_but_not_offsets(elf_dir):
    """Why the offset must come from the real binary's program headers."""
    binary = load_segments(elf_dir / "mylogin")
    debug = load_segments(elf_dir / "mylogin.debug")
    assert [s["p_vaddr"] for s in debug] == [s["p_vaddr"] for s in binary]
    code = next(s for s in debug if s["p_flags"] & 1)
    assert code["p_filesz"] == 0


def test_symbol_fields_and_paths_as_given(elf_dir):
    symbol = resolve_function(str(elf_dir / "mylogin"), "check_password")
    assert symbol.binary == str(elf_dir / "mylogin")
    assert hash(symbol) == hash(resolve_function(elf_dir / "mylogin", "check_password"))


# --- Shared libraries and symbol versions -------------------------------------------------


@pytest.mark.parametrize("library", ["libfixture.so", "libfixture-stripped.so"])
def test_versioned_names(elf_dir, library):
    path = elf_dir / library
    # The implementations are local symbols of the unstripped build: an independent answer.
    v1 = resolve_function(elf_dir / "libfixture.so", "fixture_version_v1").address
    v2 = resolve_function(elf_dir / "libfixture.so", "fixture_version_v2").address
    assert v1 != v2
    expected = {
        "fixture_version": v2,
        "fixture_version@VERS_2": v2,
        "fixture_version@@VERS_2": v2,
        "fixture_version@VERS_1": v1,
    }
    for name, address in expected.items():
        symbol = resolve_function(path, name)
        assert (symbol.name, symbol.address) == (name, address)
        assert_offset_is_entry(symbol)


@pytest.mark.parametrize("library", ["libfixture.so", "libfixture-stripped.so"])
@pytest.mark.parametrize("name", ["fixture_version@@VERS_1", "fixture_version@VERS_3"])
def test_version_that_does_not_match(elf_dir, library, name):
    with pytest.raises((UnknownFunctionError, StrippedError)):
        resolve_function(elf_dir / library, name)


def test_stripped_library_resolves_exports_through_dynsym(elf_dir):
    symbol = resolve_function(elf_dir / "libfixture-stripped.so", "fixture_add")
    assert (symbol.table, symbol.binding) == (".dynsym", "global")
    assert_offset_is_entry(symbol)
    unstripped = resolve_function(elf_dir / "libfixture.so", "fixture_add")
    assert (unstripped.table, unstripped.offset) == (".symtab", symbol.offset)


def test_unstripped_library_finds_static_functions(elf_dir):
    symbol = resolve_function(elf_dir / "libfixture.so", "hidden_helper")
    assert (symbol.binding, symbol.table) == ("local", ".symtab")
    assert_offset_is_entry(symbol)


def test_function_names_of_a_stripped_library(elf_dir):
    assert function_names(elf_dir / "libfixture-stripped.so") == [
        "fixture_add",
        "fixture_use",
        "fixture_version",
        "fixture_version@VERS_1",
    ]


@pytest.mark.parametrize(
    "fixture", ["mylogin", "mylogin-nopie", "layout", "libfixture.so", "libfixture-stripped.so"]
)
def test_every_listed_name_resolves(elf_dir, fixture):
    names = function_names(elf_dir / fixture)
    assert names == sorted(set(names))
    for name in names:
        assert_offset_is_entry(resolve_function(elf_dir / fixture, name))


def test_function_names_lists_defined_functions_only(elf_dir):
    names = function_names(elf_dir / "mylogin")
    assert {"check_password", "add_user", "main"} <= set(names)
    assert "getenv" not in names  # imported, not defined here


# --- Duplicates and aliases ---------------------------------------------------------------


def test_two_static_functions_of_one_name(elf_dir):
    with pytest.raises(DuplicateFunctionError) as caught:
        resolve_function(elf_dir / "dupstatic", "helper")
    error = caught.value
    assert error.kind == "duplicate-function"
    assert len(error.matches) == 2
    assert len({match.address for match in error.matches}) == 2
    for match in error.matches:
        assert (match.name, match.binding) == ("helper", "local")
        assert f"{match.address:#x}" in str(error)
        assert_offset_is_entry(match)
    assert_message_style(error)


def test_aliases_at_one_address_are_one_function(elf_dir):
    symbol = resolve_function(elf_dir / "dupstatic", "folded")
    assert (symbol.binding, symbol.size) == ("local", 8)
    assert_offset_is_entry(symbol)


def test_unique_static_function(elf_dir):
    symbol = resolve_function(elf_dir / "dupstatic", "only_in_a")
    assert symbol.binding == "local"
    assert_offset_is_entry(symbol)


# --- Names that are not there -------------------------------------------------------------


def test_unknown_function_suggests_near_names(elf_dir):
    path = elf_dir / "mylogin"
    with pytest.raises(UnknownFunctionError) as caught:
        resolve_function(path, "chek_password")
    error = caught.value
    assert error.kind == "unknown-function"
    assert str(error) == f"function `chek_password` not found in `{path}`"
    assert error.candidates[0] == "check_password"
    assert len(error.candidates) <= 3
    assert_message_style(error)


def test_unknown_function_without_near_names(elf_dir):
    with pytest.raises(UnknownFunctionError) as caught:
        resolve_function(elf_dir / "mylogin", "zzzzzzzzzzzz")
    assert caught.value.candidates == []


def test_stripped_binary(elf_dir):
    with pytest.raises(StrippedError) as caught:
        resolve_function(elf_dir / "mylogin-stripped", "check_password")
    error = caught.value
    assert error.kind == "stripped"
    assert "is stripped" in str(error)
    assert "unstripped build" in str(error) and "`--symbols FILE`" in str(error)
    assert_message_style(error)


def test_stripped_library_static_function(elf_dir):
    with pytest.raises(StrippedError):
        resolve_function(elf_dir / "libfixture-stripped.so", "hidden_helper")


def test_symbols_file_without_symtab(elf_dir):
    with pytest.raises(StrippedError, match="symbols file .* has no `.symtab`") as caught:
        resolve_function(
            elf_dir / "mylogin-stripped", "check_password", elf_dir / "mylogin-stripped"
        )
    assert_message_style(caught.value)


def test_symbols_file_of_another_build(elf_dir):
    with pytest.raises(MismatchedSymbolsError) as caught:
        resolve_function(elf_dir / "mylogin-nopie", "check_password", elf_dir / "mylogin.debug")
    assert caught.value.kind == "symbols-mismatch"
    assert_message_style(caught.value)


@needs_toolchain
def test_symbols_of_another_build_without_build_ids(tmp_path):
    """Without build IDs the mismatch shows as an address outside the binary's segments."""
    binary = gcc(tmp_path, "mylogin", "-Wl,--build-id=none", str(MYLOGIN_SOURCE))
    other = gcc(tmp_path, "layout", "-Wl,--build-id=none", *LAYOUT_FLAGS, "layout.c")
    with pytest.raises(UnmappedFunctionError) as caught:
        resolve_function(binary, "far_func", other)
    assert caught.value.kind == "unmapped-function"
    assert_message_style(caught.value)


# --- Files that are not usable ------------------------------------------------------------


def not_elf_files(tmp_path: Path) -> dict[str, Path]:
    mylogin = (ELF_DIR / "mylogin").read_bytes()
    contents = {
        "text": b"#!/bin/sh\necho hello\n",
        "empty": b"",
        "magic only": b"\x7fELF",
        "truncated header": mylogin[:40],
        "truncated after the header": mylogin[:64],
        "magic then garbage": b"\x7fELF" + bytes(range(256)) * 4,
    }
    paths = {"directory": tmp_path, "fifo": tmp_path / "fifo"}
    os.mkfifo(paths["fifo"])
    for label, data in contents.items():
        paths[label] = tmp_path / label.replace(" ", "-")
        paths[label].write_bytes(data)
    return paths


NOT_ELF_CASES = [
    "text",
    "empty",
    "magic only",
    "truncated header",
    "truncated after the header",
    "magic then garbage",
    "directory",
    "fifo",
]


@pytest.mark.parametrize("case", NOT_ELF_CASES)
@pytest.mark.parametrize("call", ["resolve", "names", "check"])
def test_not_elf(tmp_path, case, call):
    path = not_elf_files(tmp_path)[case]
    operations = {
        "resolve": lambda: resolve_function(path, "main"),
        "names": lambda: function_names(path),
        "check": lambda: check_elf_executable(path),
    }
    with pytest.raises(NotElfError) as caught:
        operations[call]()
    assert caught.value.kind == "not-elf"
    assert f"`{path}`" in str(caught.value)
    assert_message_style(caught.value)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_file(tmp_path):
    path = tmp_path / "secret"
    path.write_bytes((ELF_DIR / "mylogin").read_bytes())
    path.chmod(0)
    with pytest.raises(NotElfError, match="cannot read"):
        resolve_function(path, "main")


def test_missing_files(tmp_path):
    missing = tmp_path / "absent"
    for call in (
        lambda: resolve_function(missing, "main"),
        lambda: resolve_function(ELF_DIR / "mylogin-stripped", "main", missing),
        lambda: function_names(missing),
        lambda: check_elf_executable(missing),
    ):
        with pytest.raises(NotFoundError) as caught:
            call()
        assert caught.value.kind == "missing-file"
        assert str(caught.value) == f"file `{missing}` does not exist"


def test_symbols_file_that_is_not_elf(tmp_path):
    text = tmp_path / "symbols.txt"
    text.write_text("check_password 0x1000\n")
    with pytest.raises(NotElfError):
        resolve_function(ELF_DIR / "mylogin-stripped", "check_password", text)


@pytest.mark.parametrize("e_type", [1, 4], ids=["relocatable", "core"])
def test_files_without_a_load_layout(tmp_path, e_type):
    path = with_elf_type(tmp_path, ELF_DIR / "mylogin", e_type)
    for call in (lambda: resolve_function(path, "main"), lambda: check_elf_executable(path)):
        with pytest.raises(NotExecutableError) as caught:
            call()
        assert caught.value.kind == "not-executable"
        assert_message_style(caught.value)


@needs_toolchain
def test_object_file(tmp_path):
    path = tmp_path / "mylogin.o"
    subprocess.run(["gcc", "-c", "-o", str(path), str(MYLOGIN_SOURCE)], cwd=ELF_DIR, check=True)
    with pytest.raises(NotExecutableError, match="relocatable object"):
        check_elf_executable(path)
    with pytest.raises(NotExecutableError):
        resolve_function(path, "check_password")


def test_debug_file_is_no_binary(elf_dir):
    for call in (
        lambda: check_elf_executable(elf_dir / "mylogin.debug"),
        lambda: resolve_function(elf_dir / "mylogin.debug", "check_password"),
    ):
        with pytest.raises(NotExecutableError, match="debug symbols"):
            call()


# --- Programs -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "program", ["mylogin", "mylogin-nopie", "mylogin-stripped", "layout", "dupstatic"]
)
def test_programs_are_executable(elf_dir, program):
    check_elf_executable(elf_dir / program)


def test_shared_library_is_no_program(elf_dir):
    with pytest.raises(NotExecutableError, match="shared library, not a program") as caught:
        check_elf_executable(elf_dir / "libfixture.so")
    assert_message_style(caught.value)


@needs_toolchain
def test_static_pie_is_a_program(tmp_path):
    """A static PIE is ET_DYN without an interpreter; its DF_1_PIE flag tells it apart."""
    try:
        path = gcc(tmp_path, "static-pie", "-static-pie", "layout.c")
    except subprocess.CalledProcessError:
        pytest.skip("this toolchain cannot link static PIEs")
    check_elf_executable(path)


# --- Malformed ELF never escapes as a traceback -------------------------------------------


def mangled_copies(source: Path, count: int, seed: int) -> list[bytes]:
    data = source.read_bytes()
    rng = random.Random(seed)
    copies = [data[: rng.randrange(len(data))] for _ in range(count // 2)]
    for _ in range(count - len(copies)):
        mangled = bytearray(data)
        for _ in range(rng.randint(1, 8)):
            # Past the magic: a broken magic is the simple "not ELF" case.
            mangled[rng.randrange(4, len(mangled))] = rng.randrange(256)
        copies.append(bytes(mangled))
    return copies


def with_section_field(tmp_path: Path, source: Path, section: str, field: str, value: int) -> Path:
    """Copy a little-endian ELF64 `source` with one field of a section header replaced."""
    offsets = {"sh_offset": 24, "sh_size": 32}
    with source.open("rb") as stream:
        elf = ELFFile(stream)
        index = next(i for i, s in enumerate(elf.iter_sections()) if s.name == section)
        position = elf["e_shoff"] + index * elf["e_shentsize"] + offsets[field]
    data = bytearray(source.read_bytes())
    data[position : position + 8] = value.to_bytes(8, "little")
    path = tmp_path / "hostile"
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize(
    ("section", "field"),
    [(".gnu.version", "sh_size"), (".dynstr", "sh_offset"), (".dynsym", "sh_offset")],
)
def test_absurd_section_headers(tmp_path, section, field):
    """Sizes and offsets near 2**63 neither exhaust memory nor escape as other errors."""
    path = with_section_field(
        tmp_path, ELF_DIR / "libfixture-stripped.so", section, field, 2**63 - 8
    )
    with pytest.raises(NotElfError):
        function_names(path)


@pytest.mark.parametrize("fixture", ["mylogin", "libfixture-stripped.so", "mylogin.debug"])
def test_mangled_files_raise_symbol_errors_only(tmp_path, fixture):
    path = tmp_path / "mangled"
    for data in mangled_copies(ELF_DIR / fixture, count=150, seed=len(fixture)):
        path.write_bytes(data)
        for call in (
            lambda: resolve_function(path, "check_password"),
            lambda: resolve_function(ELF_DIR / "mylogin-stripped", "check_password", path),
            lambda: function_names(path),
            lambda: check_elf_executable(path),
        ):
            try:
                call()
            except SymbolError as error:
                assert_message_style(error)


# --- The mylogin fixture behaves as documented --------------------------------------------

run_fixture = pytest.mark.skipif(not CAN_RUN_FIXTURES, reason="fixtures are x86-64 Linux programs")


@pytest.fixture
def login_files(tmp_path: Path) -> dict[str, str]:
    passwd = tmp_path / "passwd"
    shadow = tmp_path / "shadow"
    passwd.write_text("root:x:0:0::/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\n")
    shadow.write_text("root:*:19000::::::\nalice:!:19000::::::\n")
    return {"MYLOGIN_PASSWD": str(passwd), "MYLOGIN_SHADOW": str(shadow)}


def run_mylogin(program: Path, env: dict[str, str], *args: str) -> tuple[int, list[str]]:
    result = subprocess.run(
        [str(program), *args], env={**os.environ, **env}, capture_output=True, text=True
    )
    return result.returncode, result.stdout.splitlines()


@run_fixture
@pytest.mark.parametrize("program", ["mylogin", "mylogin-nopie", "mylogin-stripped"])
def test_mylogin_check(elf_dir, login_files, program):
    passwd, shadow = login_files["MYLOGIN_PASSWD"], login_files["MYLOGIN_SHADOW"]
    status, lines = run_mylogin(elf_dir / program, login_files, "check", "alice")
    assert (status, lines) == (0, [f"read {passwd}: ok", f"read {shadow}: ok"])
    status, _ = run_mylogin(elf_dir / program, login_files, "check", "mallory")
    assert status == 1


@run_fixture
def test_mylogin_add_appends_to_both_files(elf_dir, login_files):
    passwd, shadow = login_files["MYLOGIN_PASSWD"], login_files["MYLOGIN_SHADOW"]
    status, lines = run_mylogin(elf_dir / "mylogin", login_files, "add", "bob")
    assert (status, lines) == (0, [f"append {passwd}: ok", f"append {shadow}: ok"])
    assert Path(passwd).read_text().endswith("bob:x:1000:1000::/home/bob:/bin/sh\n")
    assert Path(shadow).read_text().endswith("bob:!:19000:0:99999:7:::\n")


@run_fixture
def test_mylogin_peek_reads_shadow_only(elf_dir, login_files):
    status, lines = run_mylogin(elf_dir / "mylogin", login_files, "peek")
    assert (status, lines) == (0, [f"read {login_files['MYLOGIN_SHADOW']}: ok"])


@run_fixture
def test_mylogin_reports_errno_names(elf_dir, login_files, tmp_path):
    env = {**login_files, "MYLOGIN_SHADOW": str(tmp_path / "missing")}
    status, lines = run_mylogin(elf_dir / "mylogin", env, "check", "alice")
    assert (status, lines[-1]) == (1, f"read {tmp_path / 'missing'}: ENOENT")


@run_fixture
@pytest.mark.parametrize("args", [[], ["check"], ["add", "a:b"], ["remove", "alice"]])
def test_mylogin_usage(elf_dir, login_files, args):
    status, lines = run_mylogin(elf_dir / "mylogin", login_files, *args)
    assert (status, lines) == (2, [])
