"""`bpfbox`: list, follow and unload the profiles pinned in the kernel.

Exit status: 0 when all went well; 1 when a named profile is not loaded or could not be
read; 2 for usage and environment problems (not root, no bpf file system).
"""

from __future__ import annotations

import json
import signal
import sys

import click
from bpfbox.contract import abi
from bpfbox.runtime import kernel, pins
from bpfbox.runtime.cli import (
    EXIT_OK,
    POLL_MS,
    STOPPING,
    fail,
    log_options,
    log_stream,
    report_pending,
    run_click,
)
from bpfbox.runtime.events import Reporter
from bpfbox.runtime.loader import Session

PROG = "bpfbox"

HELP = """Manage the bpfbox profiles loaded in the kernel.

A loaded profile is pinned under /sys/fs/bpf/bpfbox/NAME and stays enforced, whatever
happens to the process that loaded it, until `bpfbox unload NAME` (profiles that
`bpfbox-run -- COMMAND` loaded are unloaded by it once every process they confine has
exited).  Load profiles with bpfbox-run (`bpfbox-run --detach PROFILE...` loads and exits).

\b
Examples:
  sudo bpfbox list
  sudo bpfbox events mylogin --log-format json
  sudo bpfbox unload mylogin
  sudo bpfbox unload --all

\b
Exit status: 0 success; 1 a named profile is not loaded; 2 usage or environment problems
(not root, no bpf file system).
"""


def main() -> None:
    """Console entry point: `bpfbox COMMAND [ARGS]`."""
    sys.exit(run_cli(sys.argv[1:]))


def run_cli(argv: list[str]) -> int:
    """Run bpfbox with `argv`; return its exit status, never raise."""
    return run_click(bpfbox, PROG, argv)


@click.group(name=PROG, help=HELP, context_settings={"help_option_names": ["-h", "--help"]})
def bpfbox() -> None:
    """The command group; see HELP."""


@bpfbox.command(name="list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per profile and line.")
def list_profiles(as_json: bool) -> int:
    """Show the loaded profiles: name, mode, since when, denials, confined tasks, policy."""
    kernel.require_privileges()
    rows = [_row(name) for name in pins.names()]
    if as_json:
        for row in rows:
            click.echo(json.dumps(row))
        return EXIT_OK
    if not rows:
        click.echo("no bpfbox profile is loaded")
        return EXIT_OK
    columns = ("name", "mode", "loaded_since", "denials", "confined", "policy", "program")
    table = [[c.upper().replace("_", " ") for c in columns]]
    table += [["-" if row[c] is None else str(row[c]) for c in columns] for row in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(columns) - 1)]
    for line in table:
        click.echo(
            "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=False))
            + "  "
            + line[-1]
        )
    return EXIT_OK


def _row(name: str) -> dict[str, object]:
    rec = pins.record(name)
    return {
        "name": name,
        "mode": rec.mode if rec else None,
        "loaded_since": rec.loaded_since if rec else None,
        "denials": pins.counter(name, abi.STAT_DENIALS),
        "confined": pins.counter(name, abi.STAT_CONFINED_TASKS),
        "lost_events": pins.counter(name, abi.STAT_LOST_EVENTS),
        "policy": rec.policy if rec else None,
        "program": rec.program if rec else None,
        "source": rec.source if rec else None,
    }


@bpfbox.command()
@click.argument("names", nargs=-1, metavar="NAME...")
@click.option("--all", "everything", is_flag=True, help="Unload every bpfbox profile.")
def unload(names: tuple[str, ...], everything: bool) -> int:
    """Unload profiles: the processes they confine are no longer confined."""
    if everything == bool(names):
        raise click.UsageError("name the profiles to unload, or pass --all (not both)")
    kernel.require_privileges()
    status = EXIT_OK
    with pins.locked():
        for name in pins.names() if everything else names:
            if not pins.is_pinned(name):
                status = fail(PROG, f"no profile named {name} is loaded", pins.NotLoaded.help, 1)
                continue
            pins.unload(name)
            click.echo(f"unloaded {name}")
        if everything:
            for entry in pins.leftovers():
                pins.remove_leftover(entry)
    return status


@bpfbox.command()
@click.argument("names", nargs=-1, required=True, metavar="NAME...")
@log_options
def events(names: tuple[str, ...], log_path: str | None, log_format: str) -> int:
    """Follow the events of loaded profiles until Ctrl-C or until they are unloaded.

    A profile's ring buffer has one read position: while bpfbox-run also reads it (-- COMMAND
    and foreground modes), each event reaches one of the two readers.
    """
    kernel.require_privileges()
    for name in names:
        if not pins.is_pinned(name):
            raise pins.NotLoaded(f"no profile named {name} is loaded")
    signal.pthread_sigmask(signal.SIG_BLOCK, STOPPING)
    with log_stream(log_path) as stream:
        reporter = Reporter(stream, json_lines=log_format == "json")
        with Session(names, reporter.event, reporter.lost, _warn) as session:
            click.echo(f"{PROG}: following {', '.join(names)}; stop with Ctrl-C", err=True)
            while signal.sigtimedwait(STOPPING, 0) is None:
                if not all(pins.is_pinned(name) for name in names):
                    session.poll(0)
                    click.echo(f"{PROG}: a followed profile was unloaded", err=True)
                    break
                session.poll(POLL_MS)
            report_pending(session, reporter, _warn)
    return EXIT_OK


def _warn(message: str) -> None:
    click.echo(f"{PROG}: warning: {message}", err=True)


if __name__ == "__main__":
    main()
