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
import time
from collections.abc import Callable, Iterator
from typing import Any, TextIO

import click
from bpfbox.contract.errors import BpfboxError
from bpfbox.runtime import kernel, loader, pins, service
from bpfbox.runtime.events import Reporter
from bpfbox.runtime.loader import Session, WarningHandler

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
#: How long after the command's exit a wait for confined tasks is announced.
ANNOUNCE_AFTER_S = 10.0
#: How long one wait for events lasts; bounds how late signals and the command's exit are seen.
POLL_MS = 100
#: siginfo si_code of signals the kernel generated (a terminal's ^C reaches the whole group).
SI_KERNEL = 0x80
PR_SET_CHILD_SUBREAPER = 36


HELP = """Enforce compiled bpfbox profiles (PROFILE: the .bpf.c that bpfboxc wrote, or a
.bpf.o built from it; C is compiled once and cached).

Loaded profiles are pinned under /sys/fs/bpf/bpfbox/NAME: they live in the kernel, not in
bpfbox-run, so no crash, kill or signal of any process unloads them; `bpfbox list` shows
them and `bpfbox unload NAME` removes them.  Loading a profile whose NAME is loaded already
replaces it with no unenforced moment, keeping the state of the processes it confines.

\b
Lifetime rules, one per mode:
  -- COMMAND     the profiles stay loaded until COMMAND and every process they confine
                 have exited (bpfbox-run adopts COMMAND's orphans), then are unloaded.
  (no command)   the profiles stay loaded until bpfbox-run gets SIGINT or SIGTERM.
  --detach       the profiles stay loaded until `bpfbox unload`; bpfbox-run exits at once.
  --service DIR  every *.bpf.o (or *.bpf.c without one) in DIR stays loaded until `bpfbox
                 unload`; SIGHUP reloads DIR (replacing, adding, unloading what was removed).
  A killed bpfbox-run unloads nothing: its profiles stay until `bpfbox unload`.

With `-- COMMAND`, bpfbox-run passes SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2
on to COMMAND and exits with its status (128+N if a signal N killed it).  COMMAND is not
killed when bpfbox-run dies: it runs on, still confined.  Only processes started after the
profiles are loaded are confined.

A failed write of the event log (full disk, closed stderr) is reported once and counted;
enforcement never depends on it.

With --reduce-repeats, an event the same as one reported less than a second before (by any
process of the profile) is counted in the kernel instead of reported: its next report says
how many were left out, and the reader that stops (bpfbox-run, `bpfbox events`) reports
the counts still pending.  A loop of accesses then costs a line a second, not a line each.

\b
--log-format json writes one object per line with the fields time, event (deny,
complain, audit, taint, lost), profile, policy, pid, tid, comm, rule_kind, access,
object, target_pid, family, reason, rule {id, line, column, action, text, contexts},
repeats (only when not 0) and message; "lost" records carry lost and total instead of
the event fields.

\b
Examples:
  bpfboxc mylogin.bpfbox -o mylogin.bpf.o     # or -o mylogin.bpf.c
  sudo bpfbox-run --check-kernel              # can this kernel enforce profiles?
  sudo bpfbox-run mylogin.bpf.o               # enforce until Ctrl-C
  sudo bpfbox-run --complain mylogin.bpf.c    # only report what would be denied
  sudo bpfbox-run mylogin.bpf.c -- /sbin/mylogin alice
  sudo bpfbox-run a.bpf.c b.bpf.c --log ev.jsonl --log-format json -- ./server
  sudo bpfbox-run --detach mylogin.bpf.o      # load, pin, exit
  sudo bpfbox-run --service /etc/bpfbox.d     # what bpfbox.service runs

\b
Exit status: the command's when one is run (127: it could not be started);
otherwise 0; 1 if a profile failed to load or attach (bad or tampered metadata
included); 2 for usage or environment problems (not root, unsuitable kernel, clang
or libbpf missing, a PROFILE that is not a readable regular file); 70 for an
internal error (a bug in bpfbox-run: please report it).
"""


class UsageProblem(BpfboxError):
    """A command-line or setup problem found after parsing (exit status 2)."""

    exit_code = EXIT_USAGE


def main() -> None:
    """Console entry point: `bpfbox-run [OPTIONS] PROFILE... [-- COMMAND...]`."""
    sys.exit(run_cli(sys.argv[1:]))


def run_cli(argv: list[str]) -> int:
    """Run bpfbox-run with `argv` and return its exit status; never raises."""
    options, command = _split_command(argv)
    if command == [] and "--" in argv:
        return fail(PROG, "nothing follows `--`", "name the command to run: `-- COMMAND [ARGS...]`")
    return run_click(bpfbox_run, PROG, options, {"command": command})


def run_click(
    command: click.Command, prog: str, argv: list[str], obj: dict[str, Any] | None = None
) -> int:
    """Run a click command; every failure becomes a one-line error, a help line and a status."""
    try:
        status = command.main(args=argv, prog_name=prog, standalone_mode=False, obj=obj)
    except click.UsageError as err:
        return fail(prog, err.format_message(), f"see `{prog} --help` for usage and examples")
    except click.ClickException as err:
        return fail(prog, err.format_message(), f"see `{prog} --help`", err.exit_code)
    except (click.Abort, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    except BpfboxError as err:
        return fail(prog, str(err), err.help, err.exit_code)
    except Exception as err:  # the user must never see a traceback
        return fail(
            prog,
            f"internal error: {type(err).__name__}: {err}",
            f"this is a bug in {prog}; please report it with the command line used",
            EXIT_INTERNAL,
        )
    return status if isinstance(status, int) else EXIT_OK


def _split_command(argv: list[str]) -> tuple[list[str], list[str]]:
    """Options and profiles before `--`, the command after it."""
    if "--" not in argv:
        return argv, []
    split = argv.index("--")
    return argv[:split], argv[split + 1 :]


def fail(prog: str, message: str, help: str, code: int = EXIT_USAGE) -> int:
    """Print `PROG: error: MESSAGE` and `help: HELP`; return `code`."""
    with contextlib.suppress(OSError, ValueError):
        click.echo(f"{prog}: error: {message}", err=True)
        click.echo(f"help: {help}", err=True)
    return code


def _warn(message: str) -> None:
    # stderr may be closed or broken: a warning must never stop enforcement.
    with contextlib.suppress(OSError, ValueError):
        click.echo(f"{PROG}: warning: {message}", err=True)


def _note(message: str) -> None:
    with contextlib.suppress(OSError, ValueError):
        click.echo(f"{PROG}: {message}", err=True)


def log_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """--log and --log-format, shared by bpfbox-run and `bpfbox events`."""
    command = click.option(
        "--log-format",
        type=click.Choice(["text", "json"]),
        default="text",
        show_default=True,
        help="Text lines, or one JSON object per line (fields listed above).",
    )(command)
    return click.option(
        "--log",
        "log_path",
        metavar="FILE",
        help="Append events to FILE instead of writing them to stderr.",
    )(command)


@click.command(name=PROG, help=HELP, context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("profiles", nargs=-1, metavar="PROFILE... [-- COMMAND [ARGS...]]")
@click.option("--complain", is_flag=True, help="Report what would be denied; deny nothing.")
@click.option(
    "--reduce-repeats",
    is_flag=True,
    help="Count an event seen in the last second instead of reporting it again.",
)
@log_options
@click.option(
    "--check-kernel", is_flag=True, help="Check whether this kernel can enforce profiles; exit."
)
@click.option(
    "--detach", is_flag=True, help="Load and pin the profiles, then exit (until `bpfbox unload`)."
)
@click.option(
    "--service",
    "service_dir",
    metavar="DIR",
    help="Load every profile in DIR and keep them loaded; SIGHUP reloads DIR.",
)
@click.pass_context
def bpfbox_run(
    ctx: click.Context,
    profiles: tuple[str, ...],
    complain: bool,
    reduce_repeats: bool,
    log_path: str | None,
    log_format: str,
    check_kernel: bool,
    detach: bool,
    service_dir: str | None,
) -> int:
    """Parse, then check the kernel or enforce (see HELP)."""
    command: list[str] = ctx.obj["command"]
    if check_kernel:
        if profiles or command or detach or service_dir:
            raise click.UsageError("--check-kernel takes no profiles and no command")
        return _check_kernel()
    if service_dir is not None:
        if profiles or command or detach:
            raise click.UsageError("--service DIR takes no profiles, no command and no --detach")
        with log_stream(log_path) as stream:
            reporter = Reporter(stream, json_lines=log_format == "json")
            return _serve(service_dir, reporter, complain, reduce_repeats)
    if not profiles:
        raise click.UsageError("no PROFILE given")
    if detach:
        if command or log_path:
            raise click.UsageError(
                "--detach takes no command and no --log; follow events with `bpfbox events NAME`"
            )
        detached = loader.load(
            profiles,
            warn=_warn,
            mode=pins.MODE_DETACHED,
            complain=complain,
            reduce_repeats=reduce_repeats,
        )
        for rec in detached:
            _note(f"loaded {rec.name} ({rec.program}); remove it with `bpfbox unload {rec.name}`")
        return EXIT_OK
    mode = pins.MODE_COMMAND if command else pins.MODE_FOREGROUND
    with log_stream(log_path) as stream:
        reporter = Reporter(stream, json_lines=log_format == "json")
        records = loader.load(
            profiles, warn=_warn, mode=mode, complain=complain, reduce_repeats=reduce_repeats
        )
        names = [rec.name for rec in records]
        with loader.Session(names, reporter.event, reporter.lost, _warn) as session:
            if command:
                status, finished = supervise(session, command)
            else:
                status, finished = _enforce(session), True
            _finish(session, reporter)
        if finished:
            loader.release(records)
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
def log_stream(path: str | None) -> Iterator[TextIO]:
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
    try:
        yield stream
    finally:
        # Closing flushes; a full disk must not turn the end of a run into an error.
        with contextlib.suppress(OSError):
            stream.close()


def _wait(session: Session, signals: tuple[signal.Signals, ...]) -> int | None:
    """Deliver events for up to POLL_MS; the number of a pending signal of `signals`, if any."""
    if session.profiles:
        session.poll(POLL_MS)
        info = signal.sigtimedwait(signals, 0)
    else:
        info = signal.sigtimedwait(signals, POLL_MS / 1000)
    return info.si_signo if info is not None else None


def _enforce(session: Session) -> int:
    """Enforce until SIGINT, SIGTERM, SIGHUP or SIGQUIT."""
    signal.pthread_sigmask(signal.SIG_BLOCK, STOPPING)
    _note(f"enforcing {_names(session)}; stop with Ctrl-C")
    while _wait(session, STOPPING) is None:
        pass
    return EXIT_OK


def supervise(session: Session, command: list[str]) -> tuple[int, bool]:
    """Run `command` under the loaded profiles, forwarding signals, then outlive what it left.

    Returns the command's status, and whether every process the profiles confine has exited
    (so that they may be unloaded).
    """
    signal.pthread_sigmask(signal.SIG_BLOCK, FORWARDED)
    # Orphans of the command become our children: we see when the whole tree has exited.
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    try:
        child = subprocess.Popen(command, preexec_fn=_prepare_child)
    except OSError as err:
        _note(f"error: cannot run {command[0]}: {err.strerror}")
        return EXIT_NOT_STARTED, True
    while child.poll() is None:
        session.poll(POLL_MS)
        _forward_pending(child)
    status = child.returncode if child.returncode >= 0 else 128 - child.returncode
    return status, _outlive(session)


def _prepare_child() -> None:
    """In the child before exec: normal signals."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, FORWARDED)


def _forward_pending(child: subprocess.Popen[bytes]) -> None:
    while (info := signal.sigtimedwait(FORWARDED, 0)) is not None:
        # A terminal's ^C already reached the command, which shares our process group.
        if info.si_code != SI_KERNEL:
            child.send_signal(info.si_signo)


def _outlive(session: Session) -> bool:
    """Wait until the command's whole tree and every confined task have exited.

    True once they have; False if a stop signal came first (the profiles then stay loaded:
    a confined process must never run on with nothing enforced).
    """
    announced = False
    started = time.monotonic()
    while True:
        # Both every time: _children_left also reaps what exited.
        children, live = _children_left(), session.confined_tasks()
        if not children and live == 0:
            return True
        # The kernel frees an exited task a moment after it is reaped: only a wait that
        # outlasts that moment, or orphans still running, is worth a word.
        if not announced and (children or time.monotonic() - started > ANNOUNCE_AFTER_S):
            _note(
                f"the command exited; {_names(session)} stay loaded until the processes it "
                "left and every confined process have exited"
            )
            announced = True
        if _wait(session, STOPPING) is not None:
            _warn(
                f"stopped while {live} confined task(s) may live: the profiles stay loaded; "
                "remove them with `bpfbox unload NAME`"
            )
            return False


def _children_left() -> bool:
    """Reap exited children (orphans we adopted); whether any child is still running."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return False
        if pid == 0:
            return True


def _serve(directory: str, reporter: Reporter, complain: bool, reduce_repeats: bool) -> int:
    """Keep the profiles of `directory` loaded and report their events; SIGHUP reloads it."""
    directory = os.path.abspath(directory)
    signals = (*STOPPING, signal.SIGHUP)
    signal.pthread_sigmask(signal.SIG_BLOCK, signals)
    names = service.sync(directory, _warn, complain, reduce_repeats)
    while True:
        with loader.Session(names, reporter.event, reporter.lost, _warn) as session:
            _note(f"service: enforcing {_names(session) or 'no profile'} from {directory}")
            while (signo := _wait(session, signals)) is None:
                pass
            _finish(session, reporter)
        if signo != signal.SIGHUP:
            _note("service: stopping; the profiles stay loaded (`bpfbox unload --all`)")
            return EXIT_OK
        try:
            names = service.sync(directory, _warn, complain, reduce_repeats)
        except BpfboxError as err:
            _warn(f"reloading {directory} failed, the loaded profiles stay as they were: {err}")
            names = [name for name in names if pins.is_pinned(name)]


def _finish(session: Session, reporter: Reporter) -> None:
    """Report the last events, the counts of repeats still pending, the total of lost ones,
    and failed log writes if any were."""
    session.poll(0)
    report_pending(session, reporter, _warn)
    for profile in session.profiles:
        if profile.lost_seen:
            reporter.lost(profile.meta, 0, profile.lost_seen, final=True)
    if reporter.failed_writes:
        _warn(f"{reporter.failed_writes} event(s) could not be written to the log")


def report_pending(session: Session, reporter: Reporter, warn: WarningHandler) -> None:
    """Report the counts of repeats not reported yet (--reduce-repeats); a map that cannot be
    read only costs those counts."""
    try:
        pending = session.take_repeats()
    except BpfboxError as err:
        warn(f"the counts of repeated events could not be read: {err}")
        return
    for meta, event in pending:
        reporter.pending(meta, event)


def _names(session: Session) -> str:
    return ", ".join(f"{p.meta.name} ({p.meta.profile})" for p in session.profiles)


if __name__ == "__main__":
    main()
