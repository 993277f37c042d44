"""Tests of compiler/btf.py: kernel function names from raw BTF, and "did you mean".

Raw BTF records carry no length, so a reader that sizes one kind wrong loses every record
after it.  The hand-made blobs below put a FUNC record after one record of every kind, each
written from the layout of its kernel struct, so a wrong size for any kind loses a name.
bpfbox-run asks libbpf the same questions (runtime/libbpf.LibbpfTypes); both readers must
answer alike.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from bpfbox.compiler.btf import BtfError, KernelTypes, kernel_function_names, nearest_names
from bpfbox.runtime import hooks, kernel, libbpf

BTF_FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "btf"
TINY = BTF_FIXTURES / "tiny.btf"
TINY_FUNCTIONS = frozenset({"vfs_read", "vfs_write", "do_sys_openat2", "security_file_open"})
VMLINUX = Path("/sys/kernel/btf/vmlinux")
ELF_FILE = Path(__file__).resolve().parents[1] / "fixtures" / "elf" / "mylogin"

# Kind numbers from include/uapi/linux/btf.h.
INT, PTR, ARRAY, STRUCT, UNION, ENUM, FWD, TYPEDEF = 1, 2, 3, 4, 5, 6, 7, 8
VOLATILE, CONST, RESTRICT, FUNC, FUNC_PROTO, VAR, DATASEC = 9, 10, 11, 12, 13, 14, 15
FLOAT, DECL_TAG, TYPE_TAG, ENUM64 = 16, 17, 18, 19


class BtfWriter:
    """Writes raw BTF by hand: one `struct btf_type` plus its trailing structs per record."""

    def __init__(self, order: str = "<") -> None:
        self.order = order
        self.types = bytearray()
        self.strings = bytearray(b"\0")

    def name(self, text: str) -> int:
        offset = len(self.strings)
        self.strings += text.encode() + b"\0"
        return offset

    def pack(self, layout: str, *values: int) -> bytes:
        return struct.pack(self.order + layout, *values)

    def add(
        self, kind: int, name: str = "", vlen: int = 0, size_or_type: int = 0, *trailer: bytes
    ) -> None:
        name_off = self.name(name) if name else 0
        self.types += self.pack("III", name_off, (kind << 24) | vlen, size_or_type)
        self.types += b"".join(trailer)

    def blob(self) -> bytes:
        types_len, str_len = len(self.types), len(self.strings)
        header = self.pack("HBBIIIII", 0xEB9F, 1, 0, 24, 0, types_len, types_len, str_len)
        return header + bytes(self.types) + bytes(self.strings)


def one_of_each_kind(writer: BtfWriter) -> set[str]:
    """Add a record of every kind, each followed by a FUNC; return the FUNC names."""
    w = writer
    records = {
        "int": lambda: w.add(INT, "int", 0, 4, w.pack("I", 0x01000020)),
        "ptr": lambda: w.add(PTR, "", 0, 1),
        "array": lambda: w.add(ARRAY, "", 0, 0, w.pack("III", 1, 1, 16)),
        "struct": lambda: w.add(
            STRUCT, "s", 2, 8, w.pack("III", w.name("a"), 1, 0), w.pack("III", w.name("b"), 1, 32)
        ),
        "union": lambda: w.add(UNION, "u", 1, 4, w.pack("III", w.name("c"), 1, 0)),
        "enum": lambda: w.add(
            ENUM, "e", 3, 4, *(w.pack("Ii", w.name(f"E{i}"), i) for i in range(3))
        ),
        "fwd": lambda: w.add(FWD, "f", 0, 0),
        "typedef": lambda: w.add(TYPEDEF, "t", 0, 1),
        "volatile": lambda: w.add(VOLATILE, "", 0, 1),
        "const": lambda: w.add(CONST, "", 0, 1),
        "restrict": lambda: w.add(RESTRICT, "", 0, 2),
        "func_proto": lambda: w.add(
            FUNC_PROTO, "", 2, 1, w.pack("II", w.name("x"), 1), w.pack("II", 0, 1)
        ),
        "var": lambda: w.add(VAR, "v", 0, 1, w.pack("I", 1)),
        "datasec": lambda: w.add(
            DATASEC, ".data", 2, 8, w.pack("III", 1, 0, 4), w.pack("III", 1, 4, 4)
        ),
        "float": lambda: w.add(FLOAT, "float", 0, 4),
        "decl_tag": lambda: w.add(DECL_TAG, "tag", 0, 1, w.pack("i", -1)),
        "type_tag": lambda: w.add(TYPE_TAG, "user", 0, 1),
        "enum64": lambda: w.add(
            ENUM64, "e64", 2, 8, w.pack("III", w.name("A"), 1, 2), w.pack("III", w.name("B"), 3, 4)
        ),
    }
    names = set()
    for label, add_record in records.items():
        add_record()
        # vlen 1 is the "global" linkage of a FUNC, not a count of anything.
        w.add(FUNC, f"after_{label}", 1, 1)
        names.add(f"after_{label}")
    return names


def write(tmp_path: Path, data: bytes, name: str = "blob.btf") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def assert_message_style(error: Exception) -> None:
    message = str(error)
    assert message and not message[0].isupper() and not message.endswith(".")


# --- Real blobs ---------------------------------------------------------------------------


def test_tiny_fixture_holds_exactly_its_four_functions():
    assert kernel_function_names(TINY) == TINY_FUNCTIONS


def test_path_may_be_a_string():
    assert kernel_function_names(str(TINY)) == TINY_FUNCTIONS


@pytest.mark.skipif(not VMLINUX.exists(), reason="the kernel has no /sys/kernel/btf/vmlinux")
def test_running_kernel_btf():
    names = kernel_function_names()
    assert {"vfs_read", "security_file_open"} <= names
    assert "bpfbox_no_such_kernel_function" not in names
    assert 10_000 < len(names) < 1_000_000


@pytest.mark.skipif(
    not (shutil.which("clang") and shutil.which("llvm-objcopy")),
    reason="needs clang and llvm-objcopy",
)
def test_tiny_fixture_rebuilds_from_its_source(tmp_path):
    subprocess.run(
        ["sh", str(BTF_FIXTURES / "build.sh"), str(tmp_path)], check=True, capture_output=True
    )
    assert kernel_function_names(tmp_path / "tiny.btf") == TINY_FUNCTIONS


# --- Hand-made blobs: every kind sized right ----------------------------------------------


@pytest.mark.parametrize("order", ["<", ">"], ids=["little-endian", "big-endian"])
def test_every_kind_is_sized_right(tmp_path, order):
    writer = BtfWriter(order)
    expected = one_of_each_kind(writer)
    assert kernel_function_names(write(tmp_path, writer.blob())) == frozenset(expected)


def test_header_may_be_longer_than_the_known_fields(tmp_path):
    writer = BtfWriter()
    writer.add(FUNC, "grown_header", 1, 0)
    blob = writer.blob()
    # hdr_len 28: four unknown header bytes before the sections, which count from its end.
    grown = blob[:4] + struct.pack("<I", 28) + blob[8:24] + b"\0" * 4 + blob[24:]
    assert kernel_function_names(write(tmp_path, grown)) == {"grown_header"}


def test_empty_type_section(tmp_path):
    assert kernel_function_names(write(tmp_path, BtfWriter().blob())) == frozenset()


# --- Corrupt input ------------------------------------------------------------------------


def corrupt_cases() -> dict[str, bytes]:
    tiny = TINY.read_bytes()
    writer = BtfWriter()
    writer.add(FUNC, "f", 1, 0)
    writer.add(INT, "int", 0, 4, writer.pack("I", 32))
    types_len = len(writer.types)

    def with_types(types: bytes, strings: bytes = bytes(writer.strings)) -> bytes:
        header = struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(types), len(types), len(strings))
        return header + types + strings

    return {
        "empty": b"",
        "bad magic": b"\0\0" + tiny[2:],
        "text": b"this is not btf at all\n",
        "short header": tiny[:10],
        "sections past the end": tiny[:-1],
        "version 2": tiny[:2] + b"\x02" + tiny[3:],
        "header length too small": tiny[:4] + struct.pack("<I", 8) + tiny[8:],
        "record cut inside its trailer": with_types(bytes(writer.types[: types_len - 4])),
        "record cut inside its fixed part": with_types(bytes(writer.types[: types_len - 10])),
        "unknown kind": with_types(writer.pack("III", 0, 20 << 24, 0)),
        "kind zero": with_types(writer.pack("III", 0, 0, 0)),
        "name offset out of range": with_types(writer.pack("III", 999, FUNC << 24, 0)),
        "name not utf-8": with_types(writer.pack("III", 1, FUNC << 24, 0), b"\0\xff\xfe\0"),
    }


@pytest.mark.parametrize("case", sorted(corrupt_cases()))
def test_corrupt_btf_raises_btf_error(tmp_path, case):
    path = write(tmp_path, corrupt_cases()[case])
    with pytest.raises(BtfError) as caught:
        kernel_function_names(path)
    assert_message_style(caught.value)
    assert f"`{path}`" in str(caught.value)


def test_missing_file(tmp_path):
    with pytest.raises(BtfError, match="cannot read BTF file .*no such file") as caught:
        kernel_function_names(tmp_path / "absent.btf")
    assert_message_style(caught.value)


def test_directory(tmp_path):
    with pytest.raises(BtfError, match="BTF file .* is a directory, not a regular file"):
        kernel_function_names(tmp_path)


def test_elf_file_gets_a_hint_about_the_btf_section():
    with pytest.raises(BtfError, match=r"ELF file, not raw BTF.*`\.BTF`") as caught:
        kernel_function_names(ELF_FILE)
    assert_message_style(caught.value)


# --- nearest_names ------------------------------------------------------------------------


def test_nearest_name_first():
    assert nearest_names("vfs_raed", TINY_FUNCTIONS)[0] == "vfs_read"


def test_nearest_names_respects_the_limit():
    names = [f"vfs_read{i}" for i in range(10)]
    assert len(nearest_names("vfs_read", names)) == 3
    assert len(nearest_names("vfs_read", names, limit=1)) == 1
    assert nearest_names("vfs_read", names, limit=0) == []


def test_nothing_similar_means_no_suggestion():
    assert nearest_names("completely_unrelated", TINY_FUNCTIONS) == []


def test_the_name_itself_is_not_suggested():
    assert "vfs_read" not in nearest_names("vfs_read", TINY_FUNCTIONS)


def test_suggestions_do_not_depend_on_input_order():
    names = ["check_pass", "check_passwd", "chek_password", "check_passwords", "checkpassword"]
    expected = nearest_names("check_password", names)
    assert nearest_names("check_password", reversed(names)) == expected
    assert nearest_names("check_password", frozenset(names)) == expected


# --- The same questions, read by libbpf (bpfbox-run's reader) ------------------------------

LSM_FIXTURES = [TINY.parent / name for name in ("lsm_6_1.btf", "lsm_6_12.btf", "tiny.btf")]


@pytest.mark.parametrize(
    "path",
    [*LSM_FIXTURES, *([VMLINUX] if VMLINUX.exists() else [])],
    ids=lambda path: path.name,
)
def test_libbpf_reads_the_prototypes_and_enums_this_parser_reads(path):
    functions = [hooks.LSM_FUNC_PREFIX + hook for hook in kernel.library_hooks()]
    functions += ["bpfbox_no_such_function", *sorted(kernel_function_names(path))[:50]]
    ours = KernelTypes(path)
    with libbpf.LibbpfTypes(str(path)) as theirs:
        for function in functions:
            assert theirs.parameter_types(function) == ours.parameter_types(function), function
        for enum in ("bpf_func_id", "bpf_prog_type", "bpfbox_no_such_enum"):
            assert theirs.enum_names(enum) == ours.enum_names(enum), enum


@pytest.mark.parametrize("case", ["empty", "bad magic", "text", "short header"])
def test_libbpf_refuses_what_is_not_btf_naming_the_file(tmp_path, case):
    path = write(tmp_path, corrupt_cases()[case])
    with pytest.raises(BtfError) as caught:
        libbpf.LibbpfTypes(str(path))
    assert_message_style(caught.value)
    assert f"`{path}`" in str(caught.value)
