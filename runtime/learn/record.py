"""The learning run (`bpfbox-learn record`): run a command under a profile that denies nothing
and append every access of its process tree to a learning log (format: log.py).

The learning profile is the program's profile with no rule (`#![profile "P"]`), compiled by
bpfboxc and loaded in learning mode (abi.CFG_LEARN, which implies complain mode): every access
of a confined task is then a "would deny" event that names its whole object, and carries the
acting task's executable and user stack (bpf_get_task_stack with BPF_F_USER_STACK |
BPF_F_USER_BUILD_ID), and a copy of the stack's top that scan.py looks for return addresses
into the profile's program in.  `access_record` turns such an event into an `access` record;
the run ends with an `end` record counting what could not be recorded or was lost.
"""

from __future__ import annotations

import contextlib
import errno
import json
import shutil
import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

import click
from bpfbox.compiler.diagnostics import render_all
from bpfbox.compiler.lower import profile_name
from bpfbox.compiler.pipeline import Compilation, run
from bpfbox.compiler.resolve import ElfResolver
from bpfbox.compiler.source import SourceFile
from bpfbox.compiler.symbols import ExecutableText, SymbolError, executable_text
from bpfbox.contract import abi
from bpfbox.contract.errors import BpfboxError
from bpfbox.runtime import cli, loader, pins
from bpfbox.runtime.events import (
    Event,
    Learned,
    StackFrame,
    access_names,
    family_name,
    timestamp,
)
from bpfbox.runtime.metadata import Metadata

from .log import LOGGED_KINDS, RECORD_ACCESS, RECORD_END, RECORD_RUN, TARGETED_KINDS, VERSION
from .policy import quote
from .scan import return_addresses

PROG = "bpfbox-learn"


class RecordError(BpfboxError):
    """A learning run that cannot start (exit status 2, or `exit_code`)."""

    def __init__(self, message: str, help: str, exit_code: int = cli.EXIT_USAGE) -> None:
        super().__init__(message, help)
        self.exit_code = exit_code


def record(command: list[str], output: Path, append: bool, program: str | None) -> int:
    """One learning run of `command` appended to `output`; its exit status, never raises
    (the statuses of bpfbox-run: the command's, 127, 1, 2 and 70)."""
    try:
        return _record(command, output, append, program)
    except BpfboxError as err:
        return cli.fail(PROG, str(err), err.help, err.exit_code)
    except Exception as err:  # the user must never see a traceback
        return cli.fail(
            PROG,
            f"internal error: {type(err).__name__}: {err}",
            f"this is a bug in {PROG}; please report it with the command line used",
            cli.EXIT_INTERNAL,
        )


def _record(command: list[str], output: Path, append: bool, program: str | None) -> int:
    profile = resolve_program(program or command[0], "--profile" if program else "the command")
    name = profile_name(profile)
    if pins.is_pinned(name):
        raise RecordError(
            f"a profile named {name} is loaded (`bpfbox list`): a learning run of {profile} "
            "would replace it, and deny nothing in its place",
            f"wait for the learning run in progress to end, or `bpfbox unload {name}` first",
        )
    created = not output.exists()
    stream = _open_log(output, append)
    try:
        with tempfile.TemporaryDirectory(prefix="bpfbox-learn-") as directory:
            c_file = build_learning_profile(profile, Path(directory))
            records = loader.load([str(c_file)], warn=_warn, mode=pins.MODE_COMMAND, learn=True)
    except BaseException:
        stream.close()
        if created:
            output.unlink(missing_ok=True)
        raise
    recorder = Recorder(stream, _warn, _profile_text(profile))
    try:
        with stream, loader.Session([name], recorder.event, recorder.on_lost, _warn) as session:
            recorder.write(run_record(profile, command, datetime.now()))
            status, finished = cli.supervise(session, command)
            session.poll(0)
            recorder.end(status)
    except BaseException:
        loader.release(records)
        raise
    if finished:
        loader.release(records)
    _summary(recorder, profile, output)
    return status


def _open_log(output: Path, append: bool) -> TextIO:
    if not append and output.exists() and output.stat().st_size:
        raise RecordError(
            f"{output} exists: a learning log is not overwritten",
            "pass --append to add this run to it, or another -o",
        )
    try:
        return open(output, "a", encoding="utf-8")  # noqa: SIM115 - closed by _record
    except OSError as err:
        raise RecordError(
            f"cannot open the learning log {output}: {err.strerror}", "pass a writable -o"
        ) from None


def _profile_text(profile: str) -> ExecutableText | None:
    """The profile program's code, which stacks are scanned for; None (with a warning) if it
    cannot be read, and then only the kernel's frame-pointer frames are recorded."""
    try:
        return executable_text(profile)
    except SymbolError as error:
        _warn(f"stacks will not be scanned for {profile}'s functions: {error}")
        return None


def _warn(message: str) -> None:
    with contextlib.suppress(OSError, ValueError):
        click.echo(f"{PROG}: warning: {message}", err=True)


def _summary(recorder: Recorder, profile: str, output: Path) -> None:
    with contextlib.suppress(OSError, ValueError):
        click.echo(
            f"{PROG}: recorded {recorder.recorded} accesses of {profile}'s tree to {output} "
            f"({recorder.repeated} repeated ones left out)",
            err=True,
        )
        for why, count in sorted(recorder.unrecorded.items()):
            click.echo(f"{PROG}: not recorded: {count} {why}", err=True)
    if not recorder.recorded:
        _warn(f"no access recorded: {profile} did not run in the command's tree")
    if recorder.lost:
        _warn(
            f"{recorder.lost} accesses were LOST (the kernel's ring buffer was full): the "
            "draft may miss rules; record this run again"
        )


def learning_policy(profile: str) -> str:
    """The learning profile's policy: the program, no rule, so every access is reported."""
    return (
        "// Written by bpfbox-learn record: no rule, loaded in learning mode.\n"
        f"#![profile {quote(profile)}]\n"
    )


def build_learning_profile(profile: str, directory: Path) -> Path:
    """Compile the learning profile of `profile` into `directory`; the .bpf.c's path.

    Its name is stable (learn-NAME.bpf.c, the same text for the same program), so the
    runtime's build cache compiles it once per program, kernel and clang.
    """
    name = profile_name(profile)
    source = SourceFile(f"learn-{name}.bpfbox", None, learning_policy(profile))
    compilation = run(Compilation(source, ElfResolver()))
    if compilation.diagnostics.error_count():
        report = render_all(compilation.diagnostics, compilation.sources).rstrip()
        raise RecordError(
            f"{profile} cannot be confined:\n{report}",
            "name an ELF executable (the command, or --profile PROGRAM)",
        )
    c_file = directory / f"learn-{name}.bpf.c"
    c_file.write_text(compilation.c_source or "", encoding="utf-8")
    return c_file


def resolve_program(name: str, what: str) -> str:
    """The absolute, symlink-free path of the program `name` (looked up in PATH like exec).

    A command that cannot be found exits 127, as a shell's would."""
    found = shutil.which(name) if "/" not in name else name
    if found is None or not Path(found).is_file():
        raise RecordError(
            f"{what} `{name}` is not an executable file"
            + ("" if "/" in name else " found in PATH"),
            "name an installed program (an absolute path works too)",
            cli.EXIT_NOT_STARTED,
        )
    return str(Path(found).resolve())


def run_record(profile: str, command: list[str], started: datetime) -> dict[str, Any]:
    """The `run` record that starts a run."""
    return {
        "record": RECORD_RUN,
        "version": VERSION,
        "profile": profile,
        "command": command,
        "started": timestamp(started),
    }


def access_record(event: Event, text: ExecutableText | None = None) -> dict[str, Any] | str:
    """The `access` record of a learning event, or why it cannot be one (a short reason).

    With `text`, the profile program's code, the stack copy of an event of that program is
    scanned for return addresses into it (`scanned`); otherwise `scanned` is null."""
    kind = event.rule_kind_name
    if event.learned is None:
        return "events without a stack (not a learning profile's)"
    if event.kind_name != "complain":
        return f"{event.kind_name} events"
    if event.rule_kind == abi.SELF_PROTECTION_KIND or event.reason_name == "self_protection":
        return "self-protection (no rule can allow it)"
    if kind not in LOGGED_KINDS:
        return f"{kind} accesses (not in the learning log's kinds yet)"
    names = access_names(event)
    if not names or any(name.startswith("0x") for name in names):
        return f"{kind} accesses no rule can name"
    targeted = kind in TARGETED_KINDS
    if (kind == "fs" or targeted) and not event.object.startswith("/"):
        return f"{kind} accesses of objects with no path"
    if not event.learned.exe.startswith("/"):
        return "accesses of tasks with no executable"
    stack, stack_error = _stack(event.learned.stack_size, event.learned.frames)
    return {
        "record": RECORD_ACCESS,
        "kind": kind,
        "object": event.object if kind == "fs" or targeted else None,
        "access": names,
        "family": family_name(event) if kind == "net" else None,
        "target_pid": event.target_pid if targeted else None,
        "pid": event.tgid,
        "tid": event.pid,
        "comm": event.comm,
        "exe": event.learned.exe,
        "stack_error": stack_error,
        "stack": stack,
        "scanned": _scanned(event.learned, text),
    }


def _scanned(learned: Learned, text: ExecutableText | None) -> list[dict[str, Any]] | None:
    if text is None or learned.exe != text.binary or not learned.window or not text.build_id:
        return None
    found = return_addresses(text, learned.window, learned.exe_entry, learned.user_sp)
    return [
        {"build_id": text.build_id, "offset": address.offset, "callee": address.callee}
        for address in found
    ]


def _stack(
    size: int, frames: tuple[StackFrame, ...]
) -> tuple[list[dict[str, Any]] | None, str | None]:
    if size < 0:
        return None, "-" + errno.errorcode.get(-size, str(-size))
    return [_frame(frame) for frame in frames], None


def _frame(frame: StackFrame) -> dict[str, Any]:
    if frame.status == abi.FrameStatus.VALID:
        return {"build_id": frame.build_id.hex(), "offset": frame.offset}
    return {"ip": frame.offset}


@dataclass
class Recorder:
    """Writes the access records of one run, each distinct record once, and counts the rest.

    A loop that reads a file chunk by chunk makes the same access from the same code many
    times: one record says all the draft needs.
    """

    stream: TextIO
    warn: Callable[[str], None]
    text: ExecutableText | None = None  # the profile program's code, for the stack scan
    recorded: int = 0
    repeated: int = 0
    lost: int = 0
    unrecorded: Counter[str] = field(default_factory=Counter)
    _seen: set[str] = field(default_factory=set)

    def write(self, record: dict[str, Any]) -> None:
        self.stream.write(json.dumps(record) + "\n")
        self.stream.flush()

    def event(self, meta: Metadata, event: Event) -> None:
        """Session callback: one event of the learning profile."""
        record = access_record(event, self.text)
        if isinstance(record, str):
            self.unrecorded[record] += 1
            return
        key = json.dumps(record, sort_keys=True)
        if key in self._seen:
            self.repeated += 1
            return
        self._seen.add(key)
        self.recorded += 1
        self.write(record)

    def on_lost(self, meta: Metadata, new: int, total: int) -> None:
        """Session callback: the ring buffer was full; every lost access may be a rule the
        draft will miss, so say so at once."""
        self.lost = total
        self.warn(
            f"{new} accesses lost ({total} in this run): the ring buffer was full; the draft "
            "may miss rules, record this run again"
        )

    def end(self, status: int) -> dict[str, Any]:
        """Write and return the `end` record of the run."""
        record = {
            "record": RECORD_END,
            "status": status,
            "recorded": self.recorded,
            "repeated": self.repeated,
            "lost": self.lost,
            "unrecorded": dict(sorted(self.unrecorded.items())),
        }
        self.write(record)
        return record
