"""Small helpers the unit tests share: compile policy text through the real pipeline."""

from __future__ import annotations

from pathlib import Path

from bpfbox.compiler.pipeline import FRONT_END, PASSES, Compilation, run
from bpfbox.compiler.resolve import ElfResolver
from bpfbox.compiler.source import SourceFile

TESTS = Path(__file__).resolve().parent.parent
GOLDEN_ROOT = TESTS / "golden" / "root"
TINY_BTF = TESTS / "fixtures" / "btf" / "tiny.btf"


def compile_text(text: str, passes=PASSES, name: str = "test.bpfbox") -> Compilation:
    """Run `passes` over `text` with the golden fixture root and BTF."""
    resolver = ElfResolver(btf_path=TINY_BTF, sysroot=GOLDEN_ROOT)
    return run(Compilation(SourceFile(name, None, text), resolver), passes)


def front_end(text: str) -> Compilation:
    return compile_text(text, FRONT_END)


def codes(compilation: Compilation) -> list[str]:
    return [d.code for d in compilation.diagnostics.sorted()]
