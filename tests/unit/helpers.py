"""Small helpers the unit tests share: compile policy text through the real pipeline, find
where a function lies in an ELF file."""

from __future__ import annotations

import shlex
from pathlib import Path

from bpfbox.compiler.pipeline import FRONT_END, PASSES, Compilation, run
from bpfbox.compiler.resolve import ElfResolver
from bpfbox.compiler.source import SourceFile
from elftools.elf.elffile import ELFFile

TESTS = Path(__file__).resolve().parent.parent
GOLDEN_ROOT = TESTS / "golden" / "root"
TINY_BTF = TESTS / "fixtures" / "btf" / "tiny.btf"


def compile_text(
    text: str,
    passes=PASSES,
    name: str = "test.bpfbox",
    symbols_file: Path | None = None,
    path: Path | None = None,
) -> Compilation:
    """Run `passes` over `text` with the golden fixture root and BTF; `path`, where the text
    comes from a file, is where its includes are looked up."""
    resolver = ElfResolver(btf_path=TINY_BTF, sysroot=GOLDEN_ROOT, symbols_file=symbols_file)
    return run(Compilation(SourceFile(name, path, text), resolver), passes)


def front_end(text: str) -> Compilation:
    return compile_text(text, FRONT_END)


def codes(compilation: Compilation) -> list[str]:
    return [d.code for d in compilation.diagnostics.sorted()]


def golden_arguments(policy: Path) -> dict[str, Path]:
    """compile_text's arguments for a golden policy's `// bpfboxc: --symbols FILE` line."""
    first = policy.read_text(errors="replace").split("\n", 1)[0]
    words = (
        shlex.split(first.removeprefix("// bpfboxc:")) if first.startswith("// bpfboxc:") else []
    )
    if words[:1] == ["--symbols"]:
        return {"symbols_file": policy.parent / words[1]}
    assert not words, f"{policy.name}: golden arguments compile_text does not know: {words}"
    return {}


def file_offset(binary: Path, symbol: str, table: str = ".symtab") -> int:
    """Where `symbol`'s code lies in the file (`.dynsym` for a library's exports), which is
    what a uprobe attaches to."""
    with binary.open("rb") as f:
        elf = ELFFile(f)
        address = elf.get_section_by_name(table).get_symbol_by_name(symbol)[0]["st_value"]
        for segment in elf.iter_segments():
            start = segment["p_vaddr"]
            if segment["p_type"] == "PT_LOAD" and start <= address < start + segment["p_memsz"]:
                return address - start + segment["p_offset"]
    raise AssertionError(f"{symbol} is not in a loadable segment of {binary}")
