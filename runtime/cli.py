"""`bpfbox-run`: enforce compiled bpfbox profiles, around one command or until stopped.

Exit status: 0 when all went well (or the command's own status when one is run; 128+N if
it was killed by signal N; 127 if it could not be started), 1 when a profile failed to
load or attach, 2 for usage and environment problems (not root, unsuitable kernel, clang
or libbpf missing, a PROFILE that is not a readable regular file), 70 for an internal error.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import TextIO

import click
from bpfbox.runtime import build, kernel, libbpf, loader, metadata
from bpfbox.runtime.events import Reporter
from bpfbox.runtime.loader import Session

PROG = "bpfbox-run"
EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
#: sysexits.h EX_SOFTWARE: bpfbox-run itself failed, which is a bug whatever the input.
EXIT_INTERNAL = 70
EXIT_NOT_STARTED = 127
EXIT_INTERRUPTED = 128 + signal.SIGINT

#: Signals passed on to the command; without a command, those that stop enforcement.
FORWARDED = (
    signal.SIGINT,
    signal.SIGTERM,
    signal.SIGHUP,
    signal.SIGQUIT,
    signal.SIGUSR1,
    signal.SIGUSR2,
)
STOPPING = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)
#: How long one wait for events lasts; bounds how late signals and the command's exit are seen.
POLL_MS = 100
#: siginfo si_code of signals the kernel generated (a terminal's ^C reaches the whole group).
SI_KERNEL = 0x80
PR_SET_PDEATHSIG = 1

#: Exceptions that carry a user-facing message, `help` and `exit_code`.
EXPECTED_ERRORS = (
    build.BuildError,
    metadata.MetadataError,
    libbpf.LibbpfError,
    kernel.KernelError,
    loader.LoadFailure,
)

HELP = """Enforce compiled bpfbox profiles (PROFILE: the .bpf.c that bpfboxc wrote, or a
.bpf.o built from it; C is compiled once and cached).

With `-- COMMAND`, the profiles are enforced while COMMAND runs; bpfbox-run passes
SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 on to it and exits with its status
(128+N if a signal N killed it).  Should bpfbox-run itself die, COMMAND is killed too, so
it never runs on unconfined.  Without a command, the profiles are enforced until
bpfbox-run receives SIGINT or SIGTERM.  Either way nothing stays loaded afterwards.

Only processes started after the profiles are loaded are confined.

\b
--log-format json writes one object per line with the fields time, event (deny,
complain, audit, taint, lost), profile, policy, pid, tid, comm, rule_kind, access,
object, target_pid, family, reason, rule {id, line, column, action, text, contexts}
and message; "lost" records carry lost and total instead of the event fields.

\b
Examples:
  bpfboxc mylogin.bpfbox -o mylogin.bpf.c
  sudo bpfbox-run --check-kernel              # can this kernel enforce profiles?
  sudo bpfbox-run mylogin.bpf.c               # enforce until Ctrl-C
  sudo bpfbox-run --complain mylogin.bpf.c    # only report what would be denied
  sudo bpfbox-run mylogin.bpf.c -- /sbin/mylogin alice
  sudo bpfbox-run a.bpf.c b.bpf.c --log ev.jsonl --log-format json -- ./server

\b
Exit status: the command's when one is run (127: it could not be started);
otherwise 0; 1 if a profile failed to load or attach (bad or tampered metadata
included); 2 for usage or environment problems (not root, unsuitable kernel, clang
or libbpf missing, a PROFILE that is not a readable regular file); 70 for an
internal error (a bug in bpfbox-run: please report it).
"""


class UsageProblem(Exception):
    """A command-line or setup problem found after parsing (exit status 2)."""

    exit_code = EXIT_USAGE

    def __init__(self, message: str, help: str) -> None:
        super().__init__(message)
        self.help = help


def main() -> None:
    """Console entry point: `bpfbox-run [OPTIONS] PROFILE... [-- COMMAND...]`."""
    sys.exit(run_cli(sys.argv[1:]))


def run_cli(argv: list[str]) -> int:
    """Run bpfbox-run with `argv` and return its exit status; never raises."""
    options, command = _split_command(argv)
    if command == [] and "--" in argv:
        return _fail("nothing follows `--`", "name the command to run: `-- COMMAND [ARGS...]`")
    try:
        status = bpfbox_run.main(
            args=options, prog_name=PROG, standalone_mode=False, obj={"command": command}
        )
    except click.UsageError as err:
        return _fail(err.format_message(), f"see `{PROG} --help` for usage and examples")
    except click.ClickException as err:
        return _fail(err.format_message(), f"see `{PROG} --help`", err.exit_code)
    except (click.Abort, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    except (*EXPECTED_ERRORS, UsageProblem) as err:
        return _fail(str(err), err.help, err.exit_code)
    except Exception as err:  # the user must never see a traceback
        return _fail(
            f"internal error: {type(err).__name__}: {err}",
            "this is a bug in bpfbox-run; please report it with the command line used",
            EXIT_INTERNAL,
        )
    return status if isinstance(status, int) else EXIT_OK


def _split_command(argv: list[str]) -> tuple[list[str], list[str]]:
    """Options and profiles before `--`, the command after it."""
    if "--" not in argv:
        return argv, []
    split = argv.index("--")
    return argv[:split], argv[split + 1 :]


def _fail(message: str, help: str, code: int = EXIT_USAGE) -> int:
    click.echo(f"{PROG}: error: {message}", err=True)
    click.echo(f"help: {help}", err=True)
    return code


def _warn(message: str) -> None:
    click.echo(f"{PROG}: warning: {message}", err=True)


@click.command(name=PROG, help=HELP, context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("profiles", nargs=-1, metavar="PROFILE... [-- COMMAND [ARGS...]]")
@click.option("--complain", is_flag=True, help="Report what would be denied; deny nothing.")
@click.option(
    "--log",
    "log_path",
    metavar="FILE",
    help="Append events to FILE instead of writing them to stderr.",
)
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="Text lines, or one JSON object per line (fields listed above).",
)
@click.option(
    "--check-kernel", is_flag=True, help="Check whether this kernel can enforce profiles; exit."
)
@click.pass_context
def bpfbox_run(
    ctx: click.Context,
    profiles: tuple[str, ...],
    complain: bool,
    log_path: str | None,
    log_format: str,
    check_kernel: bool,
) -> int:
    """Parse, then check the kernel or enforce (see HELP)."""
    command: list[str] = ctx.obj["command"]
    if check_kernel:
        if profiles or command:
            raise click.UsageError("--check-kernel takes no profiles and no command")
        return _check_kernel()
    if not profiles:
        raise click.UsageError("no PROFILE given")
    with _log_stream(log_path) as stream:
        reporter = Reporter(stream, json_lines=log_format == "json")
        session = loader.load(
            profiles,
            on_event=reporter.event,
            on_lost=reporter.lost,
            warn=_warn,
            complain=complain,
        )
        with session:
            status = _supervise(session, command) if command else _enforce(session)
            _finish(session, reporter)
        return status


def _check_kernel() -> int:
    checks = kernel.run_checks()
    click.echo(kernel.report(checks))
    failed = [c for c in checks if c.failed]
    if failed:
        click.echo(f"{PROG}: {len(failed)} check(s) failed; this kernel cannot enforce profiles")
        return EXIT_USAGE
    click.echo(f"{PROG}: this kernel can enforce bpfbox profiles")
    return EXIT_OK


@contextlib.contextmanager
def _log_stream(path: str | None) -> Iterator[TextIO]:
    """stderr, or FILE opened for appending; a FILE that cannot be opened is a usage problem."""
    if path is None:
        yield sys.stderr
        return
    try:
        stream = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed below
    except OSError as err:
        raise UsageProblem(
            f"cannot open log file {path}: {err.strerror}", "pass a writable path to --log"
        ) from None
    with stream:
        yield stream


def _enforce(session: Session) -> int:
    """Enforce until SIGINT, SIGTERM, SIGHUP or SIGQUIT."""
    signal.pthread_sigmask(signal.SIG_BLOCK, STOPPING)
    click.echo(f"{PROG}: enforcing {_names(session)}; stop with Ctrl-C", err=True)
    while signal.sigtimedwait(STOPPING, 0) is None:
        session.poll(POLL_MS)
    return EXIT_OK


def _supervise(session: Session, command: list[str]) -> int:
    """Run `command` under the loaded profiles, forwarding signals; return its status."""
    signal.pthread_sigmask(signal.SIG_BLOCK, FORWARDED)
    # Looked up before forking: the child may only make async-signal-safe calls.
    prctl, parent = ctypes.CDLL(None, use_errno=True).prctl, os.getpid()
    try:
        child = subprocess.Popen(command, preexec_fn=lambda: _prepare_child(parent, prctl))
    except OSError as err:
        click.echo(f"{PROG}: error: cannot run {command[0]}: {err.strerror}", err=True)
        return EXIT_NOT_STARTED
    while child.poll() is None:
        session.poll(POLL_MS)
        _forward_pending(child)
    return child.returncode if child.returncode >= 0 else 128 - child.returncode


def _prepare_child(parent: int, prctl: Callable[..., int]) -> None:
    """In the child before exec: normal signals, and death if bpfbox-run dies first."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, FORWARDED)
    # An orphaned command would run on unconfined once bpfbox-run's links are gone.
    prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(EXIT_NOT_STARTED)


def _forward_pending(child: subprocess.Popen[bytes]) -> None:
    while (info := signal.sigtimedwait(FORWARDED, 0)) is not None:
        # A terminal's ^C already reached the command, which shares our process group.
        if info.si_code != SI_KERNEL:
            child.send_signal(info.si_signo)


def _finish(session: Session, reporter: Reporter) -> None:
    """Report the last events, and the total of lost ones if any were."""
    session.poll(0)
    for profile in session.profiles:
        if profile.lost_seen:
            reporter.lost(profile.meta, 0, profile.lost_seen, final=True)


def _names(session: Session) -> str:
    return ", ".join(f"{p.meta.name} ({p.meta.profile})" for p in session.profiles)


if __name__ == "__main__":
    main()
