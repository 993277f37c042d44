"""The compiler pipeline: one tuple of passes, run in order, stopping after the first pass
that reports an error.

Each pass is a function `(Compilation) -> None` that reads what earlier passes left in the
compilation and adds its own product (and diagnostics).  Their inputs and outputs are listed
in PASSES and docs/architecture.md.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from . import ast, ir
from .check import check_policy
from .codegen import generate
from .diagnostics import Diagnostics
from .includes import expand_includes
from .lint import lint
from .lower import lower
from .parse import parse_source
from .resolve import ElfResolver, Resolved, resolve_symbols
from .source import SourceFile, SourceMap


@dataclass
class Compilation:
    """Everything one run of the compiler knows, filled in pass by pass."""

    source: SourceFile
    resolver: ElfResolver
    sources: SourceMap = field(default_factory=SourceMap)
    diagnostics: Diagnostics = field(default_factory=Diagnostics)
    policy: ast.Policy | None = None
    resolved: Resolved | None = None
    program: ir.Program | None = None
    c_source: str | None = None

    def __post_init__(self) -> None:
        self.sources.add(self.source)


_Product = TypeVar("_Product")


def produced(product: _Product | None, what: str) -> _Product:
    """A product of an earlier pass, for a later one: a pass runs only when the ones before it
    reported no error, and each leaves its product unless it reports one."""
    if product is None:
        raise RuntimeError(f"no {what}: a pass ran without the pass that produces it")
    return product


def parse_pass(c: Compilation) -> None:
    """source -> policy (AST of the main file)"""
    c.policy = parse_source(c.source, c.diagnostics)


def include_pass(c: Compilation) -> None:
    """policy -> policy with fragments spliced in"""
    c.policy = expand_includes(produced(c.policy, "policy"), c.sources, c.diagnostics)


def check_pass(c: Compilation) -> None:
    """policy -> diagnostics (names, types, paths, placement)"""
    check_policy(produced(c.policy, "policy"), c.diagnostics)


def resolve_pass(c: Compilation) -> None:
    """policy -> resolved (profile program, function offsets, kernel functions)"""
    c.resolved = resolve_symbols(produced(c.policy, "policy"), c.resolver, c.diagnostics)


def lower_pass(c: Compilation) -> None:
    """policy + resolved -> program (IR)"""
    c.program = lower(
        produced(c.policy, "policy"), produced(c.resolved, "resolved symbols"), c.diagnostics
    )


def lint_pass(c: Compilation) -> None:
    """program -> warnings"""
    lint(produced(c.program, "program"), c.diagnostics)


def codegen_pass(c: Compilation) -> None:
    """program -> c_source"""
    c.c_source = generate(produced(c.program, "program"))


Pass = Callable[[Compilation], None]

#: The passes that turn a policy into an IR program, in order.
FRONT_END: tuple[Pass, ...] = (
    parse_pass,
    include_pass,
    check_pass,
    resolve_pass,
    lower_pass,
    lint_pass,
)
#: Every pass, for a C file.
PASSES: tuple[Pass, ...] = (*FRONT_END, codegen_pass)


def run(compilation: Compilation, passes: tuple[Pass, ...] = PASSES) -> Compilation:
    """Run `passes` in order; stop after the first one that reported an error."""
    for compiler_pass in passes:
        compiler_pass(compilation)
        if compilation.diagnostics.error_count():
            break
    return compilation
