"""`bpfboxc`: compile a bpfbox policy into a BPF C program."""

from __future__ import annotations

import contextlib
import functools
import gc
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NoReturn, ParamSpec

import click
from bpfbox.compiler import clang

from . import ast, files, ir
from .diagnostics import render_all
from .pipeline import STAGES, Compilation, produced, run
from .resolve import DEFAULT_BTF, ElfResolver, EnvironmentProblem
from .source import read_policy

EXIT_OK, EXIT_POLICY, EXIT_USAGE = 0, 1, 2
#: sysexits.h EX_SOFTWARE: bpfboxc itself failed, which is a bug whatever the input.
EXIT_INTERNAL = 70
_Options = ParamSpec("_Options")
#: An output named like this is compiled with clang into a BPF object instead of written as C.
OBJECT_SUFFIX = ".bpf.o"

HELP = """Compile the bpfbox policy POLICY into a BPF C program.

\b
A policy confines one program.  For example, mylogin.bpfbox:
    #![profile "/sbin/mylogin"]
    #[func "check_password"]
    #[allow] {
        fs("/etc/passwd", read)
        fs("/etc/shadow", read)
    }

\b
Typical uses:
    bpfboxc mylogin.bpfbox -o mylogin.bpf.c   compile; load it with `bpfbox-run mylogin.bpf.c`
    bpfboxc mylogin.bpfbox -o mylogin.bpf.o   compile and build the object with clang here,
                                              so the enforcing host needs only libbpf
    bpfboxc --check mylogin.bpfbox            report errors and warnings only
    bpfboxc --emit ir mylogin.bpfbox          show what each hook will decide

\b
Exit status: 0 compiled, 1 the policy has errors, 2 usage or environment problem
(an unreadable, oversized or non-regular input file included), 70 internal error
(a bug in bpfboxc: please report it).
The language is described in docs/language.md.
"""


def _reporting_bugs(command: Callable[_Options, None]) -> Callable[_Options, None]:
    """`command` with any exception but click's turned into an internal-error report: the user
    must never see a traceback."""

    @functools.wraps(command)
    def guarded(*args: _Options.args, **kwargs: _Options.kwargs) -> None:
        try:
            command(*args, **kwargs)
        except click.ClickException:
            raise
        except Exception as error:
            _fail(
                f"internal error: {type(error).__name__}: {error}\n"
                "this is a bug in bpfboxc; please report it with the policy and the command line",
                EXIT_INTERNAL,
            )

    return guarded


@click.command(help=HELP, context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("policy", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the result: OUT.bpf.c, or OUT.bpf.o to build the object with clang "
    "(for --emit: default standard output).",
)
@click.option("--check", is_flag=True, help="Only report diagnostics; write nothing.")
@click.option(
    "--emit",
    type=click.Choice(["ast", "ir", "c"]),
    help="Print the AST, the IR or the C program instead of writing OUT.bpf.c.",
)
@click.option(
    "--btf",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help=f"Kernel BTF to check #[kfunc] names against (default {DEFAULT_BTF}).",
)
@click.option(
    "--symbols",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Separate debug symbols of the profile program, for a stripped binary.",
)
@click.option(
    "--sysroot",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=Path("/"),
    show_default=True,
    help="Look the profile program and libraries up under this root (e.g. a container image).",
)
@_reporting_bugs
def main(
    policy: Path,
    output: Path | None,
    check: bool,
    emit: str | None,
    btf: Path | None,
    symbols: Path | None,
    sysroot: Path,
) -> None:
    if check and (emit or output):
        raise click.UsageError("--check writes nothing; drop --emit and -o")
    if not (check or emit or output):
        raise click.UsageError("say where the program goes: -o OUT.bpf.c (or use --check, --emit)")
    for option, path in (("--btf", btf), ("--symbols", symbols)):
        if path is not None:
            _check_regular_file(path, f"{option} file")
    try:
        source = read_policy(policy)
    except files.InputFileError as error:
        _fail(str(error), EXIT_USAGE)
    except OSError as error:
        _fail(f"cannot read `{policy}`: {error.strerror}", EXIT_USAGE)
    resolver = ElfResolver(btf_path=btf or DEFAULT_BTF, symbols_file=symbols, sysroot=sysroot)
    compilation = Compilation(source, resolver)
    try:
        with _cycle_collector_paused():
            run(compilation, STAGES[emit or ("ir" if check else "c")])
    except EnvironmentProblem as problem:
        _fail(str(problem), EXIT_USAGE)
    report = render_all(compilation.diagnostics, compilation.sources)
    if report:
        click.echo(report, err=True, nl=False)
    if compilation.diagnostics.error_count():
        sys.exit(EXIT_POLICY)
    if check:
        return
    text = {
        "ast": lambda: ast.format_ast(produced(compilation.policy, "policy")),
        "ir": lambda: ir.format_ir(produced(compilation.program, "program")),
    }.get(emit or "c", lambda: produced(compilation.c_source, "C source"))()
    if output and not emit and output.name.endswith(OBJECT_SUFFIX):
        _write_object(output, text)
    elif output:
        _write_atomically(output, text)
    else:
        click.echo(text, nl=False)


@contextlib.contextmanager
def _cycle_collector_paused() -> Iterator[None]:
    """The automaton of a large policy is millions of small objects, alive until the passes
    end: the cycle collector would traverse them again and again and find nothing (half of
    bpfboxc's time at 10,000 rules).  Reference counting still frees what a pass drops.
    What is left then goes to the oldest generation (gc.freeze, then gc.unfreeze): enabled
    again, the collector would otherwise traverse all of it at the next allocation, to find
    it alive; a full collection, rare, still frees the cycles among it (for callers that
    compile in-process: the tests, the fuzzer)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.freeze()
            gc.unfreeze()
            gc.enable()


def _check_regular_file(path: Path, what: str) -> None:
    """Refuse a FIFO, device or directory given as an input file now, with its option's name,
    rather than as a policy error when a pass first reads it."""
    try:
        os.close(files.open_regular(path, what))
    except files.InputFileError as error:
        _fail(str(error), EXIT_USAGE)


def _write_atomically(path: Path, text: str) -> None:
    """Write the whole file or nothing: a failed run never leaves half a program behind."""
    directory = path.parent if str(path.parent) else Path(".")
    try:
        fd, temporary = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "w") as stream:
            stream.write(text)
        os.replace(temporary, path)
    except OSError as error:
        _fail(f"cannot write `{path}`: {error.strerror}", EXIT_USAGE)


def _write_object(path: Path, c_source: str) -> None:
    """Compile the C with clang (compiler/clang.py) straight into the object `path`."""
    with tempfile.TemporaryDirectory(prefix="bpfboxc-") as scratch:
        source = Path(scratch) / (path.name[: -len(OBJECT_SUFFIX)] + ".bpf.c")
        source.write_text(c_source)
        try:
            clang.compile_object(source, path)
        except clang.BuildError as error:
            click.echo(f"bpfboxc: error: {error}", err=True)
            click.echo(f"help: {error.help}", err=True)
            sys.exit(error.exit_code)


def _fail(message: str, status: int) -> NoReturn:
    click.echo(f"bpfboxc: error: {message}", err=True)
    sys.exit(status)
