"""`bpfbox-learn`: draft a policy from learning logs; turn denials into policy edits."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import click
from bpfbox.compiler.diagnostics import shorten_long_words
from bpfbox.compiler.files import InputFileError
from bpfbox.compiler.resolve import ElfResolver

from . import draft as drafting
from . import record as recording
from . import suggest as suggesting
from .log import LogError, read_logs
from .policy import PolicyProblem, compile_text

PROG = "bpfbox-learn"
EXIT_OK, EXIT_INPUT, EXIT_USAGE = 0, 1, 2

HELP = """Write bpfbox policies from what programs do.

\b
  sudo bpfbox-learn record -o app.log -- CMD   a learning run: every access, with stacks
  bpfbox-learn draft LOG... -o app.bpfbox      a draft policy from learning runs
  bpfbox-learn suggest --log ev.jsonl POLICY   denials of bpfbox-run -> policy edits

The learning log format is documented in docs/writing-policies.md.

\b
Exit status of draft and suggest: 0 done; 1 a log or policy is wrong (the message
says where); 2 usage or environment problem (unreadable file, missing program).
record exits with the command's status (see `bpfbox-learn record --help`).
"""

RECORD_HELP = """Run COMMAND under a learning profile and append what its process tree does
to the learning log LOG (-o), one run per call.

The learning profile confines the program COMMAND runs (or --profile PROGRAM, another
program of the tree, such as the one a wrapper script starts) with no rule, in complain
mode: it denies nothing, and the kernel reports every access the policy language can
express, with the acting thread's user stack (unwound by frame pointers, so build the
program with -fno-omit-frame-pointer, and scanned for return addresses into the program).
Processes the program starts stay confined and are recorded too.  Run each thing the
program does in its own run, appended to one log (--append), then `bpfbox-learn draft LOG`.
Needs root, like bpfbox-run.

Accesses the kernel could not queue (a full ring buffer) are reported on standard error and
counted in the run's `end` record; the draft says so.

\b
Exit status: the command's (128+N if signal N killed it; 127: it could not be
started); 1 the learning profile failed to load; 2 usage or environment problem (not
root, unsuitable kernel, LOG exists without --append, a profile of the program is
loaded); 70 internal error (a bug: please report it).
"""

DRAFT_HELP = """Draft a policy from the learning logs LOG... (several runs merge).

The draft includes `base` instead of the loader, library and locale accesses it covers,
collapses per-run and many-sibling paths into globs, merges flags per path, comments every
rule with how often it was seen, and puts accesses that only ever happened inside one
function of the program in a `#[func]` block.  It is compiled with bpfboxc's front end
before it is written: it compiles without warnings and allows every recorded access.
"""

SUGGEST_HELP = """Propose, for every distinct denial in the bpfbox-run event log
(`--log-format json`), the smallest edit of POLICY that allows it, as a unified diff
(`patch -p1` applies it in POLICY's folder).  With --apply, ask y/n for each edit on
standard input and write the accepted ones to POLICY.
"""


def main() -> None:
    """Console entry point."""
    sys.exit(run_cli(sys.argv[1:]))


def run_cli(argv: list[str]) -> int:
    """Run bpfbox-learn with `argv`; return its exit status, never raise."""
    if not argv:
        click.echo(learn.get_help(click.Context(learn, info_name=PROG)), err=True)
        return EXIT_USAGE
    try:
        status = learn.main(args=argv, prog_name=PROG, standalone_mode=False)
    except click.UsageError as error:
        return _fail(error.format_message(), EXIT_USAGE, f"see `{PROG} --help`")
    except click.ClickException as error:
        return _fail(error.format_message(), EXIT_USAGE)
    except (click.Abort, KeyboardInterrupt):
        return EXIT_USAGE
    except (LogError, suggesting.SuggestError, PolicyProblem) as error:
        return _fail(str(error), EXIT_INPUT)
    except drafting.LearnError as error:
        return _fail(str(error), EXIT_USAGE)
    except InputFileError as error:
        return _fail(str(error), EXIT_USAGE)
    except OSError as error:
        return _fail(f"{error.filename}: {error.strerror}", EXIT_USAGE)
    except Exception as error:  # the user must never see a traceback
        return _fail(
            f"internal error: {type(error).__name__}: {error}",
            EXIT_INPUT,
            f"this is a bug in {PROG}; please report it with the inputs used",
        )
    return status if isinstance(status, int) else EXIT_OK


def _fail(message: str, status: int, help: str | None = None) -> int:
    # A log's field quoted in a message may be a megabyte long.
    click.echo(f"{PROG}: error: {shorten_long_words(message)}", err=True)
    if help:
        click.echo(f"help: {help}", err=True)
    return status


_existing_file = click.Path(exists=True, dir_okay=False, path_type=Path)
_sysroot = click.option(
    "--sysroot",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=Path("/"),
    show_default=True,
    help="Look the profile program up under this root (as bpfboxc --sysroot).",
)
_symbols = click.option(
    "--symbols",
    type=_existing_file,
    default=None,
    help="Separate debug symbols of a stripped profile program (as bpfboxc --symbols).",
)


@click.group(name=PROG, help=HELP, context_settings={"help_option_names": ["-h", "--help"]})
def learn() -> None:
    """The command group; see HELP."""


@learn.command(help=DRAFT_HELP)
@click.argument("logs", nargs=-1, required=True, type=_existing_file)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the draft here (default: standard output).",
)
@click.option("--profile", help="The program to draft for, when the runs confined several.")
@click.option("--no-base", is_flag=True, help='Do not `#![include "base"]`: list everything.')
@_sysroot
@_symbols
def draft(
    logs: tuple[Path, ...],
    output: Path | None,
    profile: str | None,
    no_base: bool,
    sysroot: Path,
    symbols: Path | None,
) -> int:
    runs, accesses = read_logs(list(logs))
    text = drafting.draft(
        runs,
        accesses,
        ElfResolver(symbols_file=symbols, sysroot=sysroot),
        profile=profile,
        include_base=not no_base,
        output_name=output.name if output else "draft.bpfbox",
        log_names=tuple(log.name for log in logs),
    )
    if output is None:
        click.echo(text, nl=False)
    else:
        _write_atomically(output, text)
    return EXIT_OK


@learn.command(help=SUGGEST_HELP)
@click.argument("policy", type=_existing_file)
@click.option("--log", "log", required=True, type=_existing_file, help="bpfbox-run's JSON log.")
@click.option("--apply", is_flag=True, help="Ask y/n for each edit and write the accepted ones.")
@_sysroot
@_symbols
def suggest(policy: Path, log: Path, apply: bool, sysroot: Path, symbols: Path | None) -> int:
    resolver = ElfResolver(symbols_file=symbols, sysroot=sysroot)
    text = policy.read_bytes().decode("utf-8", errors="replace")  # the parser refuses U+FFFD
    profile = compile_text(text, policy.name, policy, resolver, warnings_ok=True).program.profile
    denials = suggesting.read_denials(log, policy.name, profile, resolver)
    found = suggesting.suggest(text, policy, resolver, denials)
    for denial, why in found.skipped:
        click.echo(f"{PROG}: no edit for `{denial.message}`: {why}", err=True)
    if not found.changes:
        click.echo(f"{PROG}: no edit to propose ({len(denials)} distinct denials)", err=True)
        return EXIT_OK
    accepted: list[suggesting.Change] = []
    for number, change in enumerate(found.changes, start=1):
        before = suggesting.apply_changes(text, accepted) if apply else text
        after = suggesting.apply_changes(text, [*accepted, change] if apply else [change])
        click.echo(f"# edit {number} of {len(found.changes)}: {change.where}, for:")
        for denial in change.denials:
            times = f" ({denial.count} times)" if denial.count > 1 else ""
            click.echo(f"#   {denial.message}{times}")
        click.echo(suggesting.diff(before, after, policy.name), nl=False)
        if apply and _ask(f"Apply edit {number} to {policy}?"):
            accepted.append(change)
            _write_atomically(policy, after)
    if apply:
        click.echo(f"{PROG}: applied {len(accepted)} of {len(found.changes)} edits to {policy}")
    return EXIT_OK


@learn.command(help=RECORD_HELP)
@click.argument("command", nargs=-1, required=True, metavar="-- COMMAND [ARGS...]")
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The learning log (JSON lines).",
)
@click.option("--append", is_flag=True, help="Add this run to an existing LOG.")
@click.option(
    "--profile",
    "program",
    metavar="PROGRAM",
    help="Confine this program instead of COMMAND's (it must run in COMMAND's tree).",
)
def record(command: tuple[str, ...], output: Path, append: bool, program: str | None) -> int:
    return recording.record(list(command), output, append, program)


def _ask(question: str) -> bool:
    """y or n from standard input; the end of the input means no."""
    while True:
        click.echo(f"{question} [y/n] ", nl=False)
        answer = sys.stdin.readline()
        if not answer:
            click.echo("")
            return False
        if answer.strip().lower() in ("y", "yes"):
            return True
        if answer.strip().lower() in ("n", "no"):
            return False
        click.echo("please answer y or n")


def _write_atomically(path: Path, text: str) -> None:
    """The whole file or nothing, so an interrupted run never leaves half a policy."""
    directory = path.parent if str(path.parent) else Path(".")
    fd, temporary = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.replace(temporary, path)
    except OSError:
        os.unlink(temporary)
        raise


if __name__ == "__main__":
    main()
