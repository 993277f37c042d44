"""The compiler pipeline: one tuple of passes, run in order, stopping after the first pass
that reports an error.

Each pass is a function `(Compilation) -> None` that reads what earlier passes left in the
compilation and adds its own product (and diagnostics).  It declares both, as fields of
Compilation (`@compiler_pass(reads=..., produces=...)`), and a pipeline whose pass reads what
no earlier pass produces is refused when it is built: for FRONT_END and PASSES, at import (as
bpftrace's PassManager does).  docs/architecture.md shows the same table.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
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


#: What a compilation starts with, before any pass.
INPUTS = frozenset({"source", "resolver", "sources", "diagnostics"})
_FIELDS = frozenset(f.name for f in fields(Compilation))


class PipelineError(Exception):
    """A pipeline whose passes do not fit together: a programming error, found at import."""


@dataclass(frozen=True)
class Pass:
    """A compiler pass with what it reads from the compilation and what it adds to it."""

    name: str
    run: Callable[[Compilation], None]
    reads: frozenset[str]
    produces: frozenset[str]


def compiler_pass(
    reads: str, produces: str = ""
) -> Callable[[Callable[[Compilation], None]], Pass]:
    """Declare a pass: `reads` and `produces` are space-separated fields of Compilation."""

    def declare(function: Callable[[Compilation], None]) -> Pass:
        declared = Pass(
            function.__name__, function, frozenset(reads.split()), frozenset(produces.split())
        )
        unknown = sorted((declared.reads | declared.produces) - _FIELDS)
        if unknown:
            raise PipelineError(f"pass {declared.name} names {unknown}: not Compilation fields")
        return declared

    return declare


def pipeline(*passes: Pass) -> tuple[Pass, ...]:
    """`passes` in order, refused if one reads what neither the inputs nor an earlier pass
    produce."""
    available = set(INPUTS)
    for each in passes:
        missing = sorted(each.reads - available)
        if missing:
            raise PipelineError(
                f"pass {each.name} reads {', '.join(missing)}, which no earlier pass produces"
            )
        available |= each.produces
    return passes


_Product = TypeVar("_Product")


def produced(product: _Product | None, what: str) -> _Product:
    """A product of an earlier pass, for a later one: a pass runs only when the ones before it
    reported no error, and each leaves its product unless it reports one."""
    if product is None:
        raise RuntimeError(f"no {what}: a pass ran without the pass that produces it")
    return product


@compiler_pass(reads="source", produces="policy")
def parse_pass(c: Compilation) -> None:
    """source -> policy (AST of the main file)"""
    c.policy = parse_source(c.source, c.diagnostics)


@compiler_pass(reads="policy sources", produces="policy")
def include_pass(c: Compilation) -> None:
    """policy -> policy with fragments spliced in"""
    c.policy = expand_includes(produced(c.policy, "policy"), c.sources, c.diagnostics)


@compiler_pass(reads="policy")
def check_pass(c: Compilation) -> None:
    """policy -> diagnostics (names, types, paths, placement)"""
    check_policy(produced(c.policy, "policy"), c.diagnostics)


@compiler_pass(reads="policy resolver", produces="resolved")
def resolve_pass(c: Compilation) -> None:
    """policy -> resolved (profile program, function offsets, kernel functions)"""
    c.resolved = resolve_symbols(produced(c.policy, "policy"), c.resolver, c.diagnostics)


@compiler_pass(reads="policy resolved", produces="program")
def lower_pass(c: Compilation) -> None:
    """policy + resolved -> program (IR)"""
    c.program = lower(
        produced(c.policy, "policy"), produced(c.resolved, "resolved symbols"), c.diagnostics
    )


@compiler_pass(reads="program")
def lint_pass(c: Compilation) -> None:
    """program -> warnings"""
    lint(produced(c.program, "program"), c.diagnostics)


@compiler_pass(reads="program", produces="c_source")
def codegen_pass(c: Compilation) -> None:
    """program -> c_source"""
    c.c_source = generate(produced(c.program, "program"))


#: The passes that turn a policy into an IR program, in order.
FRONT_END = pipeline(parse_pass, include_pass, check_pass, resolve_pass, lower_pass, lint_pass)
#: Every pass, for a C file.
PASSES = pipeline(*FRONT_END, codegen_pass)
#: The passes that make each stage `bpfboxc --emit` can print (`--check` stops at "ir").
STAGES = {"ast": pipeline(parse_pass, include_pass), "ir": FRONT_END, "c": PASSES}


def run(compilation: Compilation, passes: tuple[Pass, ...] = PASSES) -> Compilation:
    """Run `passes` (checked as a pipeline) in order; stop after the first one that reported
    an error."""
    for each in pipeline(*passes):
        each.run(compilation)
        if compilation.diagnostics.error_count():
            break
    return compilation
