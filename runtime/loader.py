"""Load compiled profiles into the kernel, attach them, and take them out again.

One call, `load()`, goes through every step for every profile: kernel checks, build,
open, configure the read-only identity of the confined program, load (the verifier runs
here), attach each program.  It returns a Session that polls the profiles' events and
detaches everything on close.  Should any step fail, everything made so far is destroyed
before the error propagates: bpfbox-run never leaves a program behind, and never pins one,
so once it exits nothing of it remains in the kernel.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from bpfbox.contract import abi
from bpfbox.runtime import build, kernel, libbpf, metadata
from bpfbox.runtime.events import Event, EventError, decode
from bpfbox.runtime.metadata import Metadata

#: Section prefixes libbpf attaches by itself (`bpf_program__attach`).
AUTO_ATTACH = tuple(p for p, feature in metadata.SECTION_FEATURES.items() if feature != "uprobe")

EventHandler = Callable[[Metadata, Event], None]
LostHandler = Callable[[Metadata, int, int], None]
WarningHandler = Callable[[str], None]


class LoadFailure(Exception):
    """A profile could not be loaded or attached (exit status 1)."""

    exit_code = 1

    def __init__(self, message: str, help: str) -> None:
        super().__init__(message)
        self.help = help


class ProfileProgramMissing(LoadFailure):
    """The program a profile confines is not installed here: an environment problem."""

    exit_code = 2


@dataclass(frozen=True)
class Identity:
    """The confined program's file as the kernel sees it."""

    ino: int
    #: The kernel's encoding of the device (sb->s_dev): major << 20 | minor.
    dev: int
    #: The same device as userspace encodes it (st_dev), for matching /proc/*/exe.
    st_dev: int
    #: The path with every symlink resolved, as the program checks it on overlayfs.
    path: str


@dataclass
class LoadedProfile:
    """One profile in the kernel: its object and how many lost events were reported."""

    meta: Metadata
    identity: Identity
    obj: libbpf.BpfObject
    lost_seen: int = 0

    def lost_total(self) -> int:
        """Events the programs could not put into the ring buffer, since load."""
        return self.obj.map(abi.STATS_MAP).lookup_u64(abi.STAT_LOST_EVENTS)


class Session:
    """Loaded profiles: `poll` delivers their events, `close` unloads every one of them."""

    def __init__(self, on_event: EventHandler, on_lost: LostHandler, warn: WarningHandler):
        self.profiles: list[LoadedProfile] = []
        self._on_event = on_event
        self._on_lost = on_lost
        self._warn = warn
        self._cleanup = contextlib.ExitStack()
        self._ring = libbpf.RingBuffer()
        self._pending: list[tuple[Metadata, bytes]] = []

    def add(self, profile: LoadedProfile) -> None:
        """Take over `profile` and start reading its events."""
        self.profiles.append(profile)

        def queue(data: bytes) -> None:
            # Runs inside libbpf's poll: only queue, decode after it returns.
            self._pending.append((profile.meta, data))

        self._ring.add(profile.obj.map(abi.EVENTS_MAP), queue)

    @property
    def cleanup(self) -> contextlib.ExitStack:
        """Where every created kernel object registers its destruction."""
        return self._cleanup

    def poll(self, timeout_ms: int) -> None:
        """Wait up to `timeout_ms` for events, report them and any newly lost ones."""
        self._ring.poll(timeout_ms)
        pending, self._pending = self._pending, []
        for meta, data in pending:
            try:
                self._on_event(meta, decode(data))
            except EventError as err:
                self._warn(f"ignoring a malformed event from {meta.name}: {err}")
        for profile in self.profiles:
            total = profile.lost_total()
            if total > profile.lost_seen:
                self._on_lost(profile.meta, total - profile.lost_seen, total)
                profile.lost_seen = total

    def close(self) -> None:
        """Detach every program and unload every object; idempotent."""
        self._ring.free()
        self._cleanup.close()
        self.profiles.clear()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def load(
    paths: Iterable[str],
    on_event: EventHandler,
    on_lost: LostHandler,
    warn: WarningHandler,
    complain: bool = False,
) -> Session:
    """Check, build, open, configure, load and attach every profile in `paths`.

    Raises the failing step's exception (with `help` and `exit_code`) after undoing all
    earlier steps.
    """
    kernel.require_privileges()
    objects = [(path, metadata.read(path)) for path in map(build.object_for, paths)]
    kernel.require(set().union(*(meta.features for _, meta in objects)))
    session = Session(on_event, on_lost, warn)
    try:
        for path, meta in objects:
            session.add(_load_one(path, meta, complain, session.cleanup))
    except BaseException:
        session.close()
        raise
    for profile in session.profiles:
        _warn_unconfined(profile, warn)
    return session


def _load_one(
    path: str, meta: Metadata, complain: bool, cleanup: contextlib.ExitStack
) -> LoadedProfile:
    identity = identity_of(meta)
    obj = libbpf.BpfObject(path)
    cleanup.callback(obj.close)
    configure(obj, meta, identity, complain)
    _load(obj, meta)
    for link in attach_all(obj, meta):
        cleanup.callback(link.destroy)
    return LoadedProfile(meta, identity, obj)


def identity_of(meta: Metadata) -> Identity:
    """Inode and device of the profile's program, following symlinks as exec does."""
    try:
        st = os.stat(meta.profile)
    except OSError as err:
        raise ProfileProgramMissing(
            f"cannot stat {meta.profile}, the program profile {meta.name} confines: "
            f"{err.strerror}",
            f"install {meta.profile}, or fix the profile path in {meta.policy} and recompile",
        ) from None
    return Identity(
        ino=st.st_ino,
        dev=kernel_dev(st.st_dev),
        st_dev=st.st_dev,
        path=os.path.realpath(meta.profile),
    )


def kernel_dev(st_dev: int) -> int:
    """The kernel's encoding of a device number (sb->s_dev): major << 20 | minor."""
    return os.major(st_dev) << 20 | os.minor(st_dev)


def configure(obj: libbpf.BpfObject, meta: Metadata, identity: Identity, complain: bool) -> None:
    """Write the profile's identity (and complain mode) into the object's read-only data.

    The inode and device are required; the resolved path and its name length are written
    when the object has them (objects that do not check paths need not carry them).
    """
    path = identity.path.encode()
    values: dict[str, int | bytes] = {
        abi.CFG_PROFILE_INO: identity.ino,
        abi.CFG_PROFILE_DEV: identity.dev,
    }
    if complain:
        values[abi.CFG_COMPLAIN] = 1
    optional: dict[str, int | bytes] = {
        abi.CFG_PROFILE_PATH: path,
        abi.CFG_PROFILE_NAME_LEN: len(os.path.basename(path)),
    }
    values.update({k: v for k, v in optional.items() if k in meta.rodata})
    data = _rodata(obj).initial_value()
    for name, value in values.items():
        _write_variable(obj.path, meta, data, name, value)


def _write_variable(
    path: str, meta: Metadata, data: memoryview, name: str, value: int | bytes
) -> None:
    if name not in meta.rodata:
        raise libbpf.ConfigError(
            f"{path} has no read-only variable {name}", help=_missing_variable_help(name)
        )
    offset, size = meta.rodata[name]
    if offset + size > len(data):
        raise libbpf.ConfigError(
            f"{path}: read-only variable {name} ({size} bytes at offset {offset}) lies outside "
            f".rodata ({len(data)} bytes)"
        )
    if isinstance(value, bytes):
        if len(value) >= size:
            raise libbpf.ConfigError(
                f"{name}: {value.decode(errors='replace')} is longer than the {size - 1} bytes "
                f"{path} has room for",
                help="install the program at a shorter path",
            )
        encoded = value.ljust(size, b"\0")
    elif size in (4, 8):
        encoded = value.to_bytes(size, "little")
    else:
        raise libbpf.ConfigError(f"{path}: read-only variable {name} is {size} bytes, not 4 or 8")
    data[offset : offset + size] = encoded


def _missing_variable_help(name: str) -> str:
    if name == abi.CFG_COMPLAIN:
        return "this profile was compiled without complain mode; run it without --complain"
    return libbpf.ConfigError.help


def _rodata(obj: libbpf.BpfObject) -> libbpf.Map:
    for candidate in obj.maps():
        if candidate.name.endswith(".rodata"):
            return candidate
    raise libbpf.ConfigError(f"{obj.path} has no .rodata section to configure")


def _load(obj: libbpf.BpfObject, meta: Metadata) -> None:
    try:
        obj.load()
    except libbpf.VerifierError as err:
        log_path = _save_log(meta, err.log)
        raise LoadFailure(
            f"the kernel's verifier rejected program '{err.program}' of profile {meta.name}: "
            f"{err.summary}\n  full verifier log: {log_path}",
            "this is a bug in the compiled profile (or a kernel older than bpfboxc targets); "
            "report it with the log file",
        ) from None


def _save_log(meta: Metadata, log: str) -> str:
    fd, path = tempfile.mkstemp(prefix=f"bpfbox-verifier-{meta.name}-", suffix=".log")
    with os.fdopen(fd, "w") as f:
        f.write(log)
    return path


def attach_all(obj: libbpf.BpfObject, meta: Metadata) -> list[libbpf.Link]:
    """Attach every program: uprobes first, so contexts are tracked once enforcement starts.

    A program that is neither auto-attachable nor named by the metadata is an error: an
    unattached program is a rule that silently would not apply.  Links made before a
    failure are destroyed before the error propagates.
    """
    probes = _uprobe_targets(meta)
    programs = list(obj.programs())
    names = {p.name for p in programs}
    for program_name in probes:
        if program_name not in names:
            raise libbpf.ConfigError(
                f"{obj.path} lacks program '{program_name}' the metadata names"
            )
    links: list[libbpf.Link] = []
    try:
        for program in sorted(programs, key=lambda p: p.name not in probes):
            links.append(_attach(program, probes, obj.path))
    except BaseException:
        for link in reversed(links):
            link.destroy()
        raise
    return links


def _uprobe_targets(meta: Metadata) -> dict[str, tuple[str, int, bool]]:
    """Program name -> (binary, offset, is-return-probe) for every function context."""
    targets: dict[str, tuple[str, int, bool]] = {}
    for context in meta.contexts:
        if context.kind != "func":
            continue
        binary, offset = context.binary or "", context.offset or 0
        targets[context.enter_program or ""] = (binary, offset, False)
        targets[context.leave_program or ""] = (binary, offset, True)
    return targets


def _attach(
    program: libbpf.Program, probes: dict[str, tuple[str, int, bool]], path: str
) -> libbpf.Link:
    if program.name in probes:
        binary, offset, retprobe = probes[program.name]
        return program.attach_uprobe(binary, offset, retprobe)
    if program.section.startswith(AUTO_ATTACH):
        return program.attach()
    raise libbpf.ConfigError(
        f"{path}: program '{program.name}' ({program.section}) is neither attachable by "
        "section name nor a uprobe named in the metadata"
    )


def running_instances(identity: Identity) -> list[int]:
    """Pids (other than ours) of processes whose executable is the profile's program."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            st = os.stat(f"/proc/{entry}/exe")
        except OSError:
            continue
        if (st.st_dev, st.st_ino) == (identity.st_dev, identity.ino):
            pids.append(int(entry))
    return sorted(pids)


def _warn_unconfined(profile: LoadedProfile, warn: WarningHandler) -> None:
    pids = running_instances(profile.identity)
    if pids:
        listed = ", ".join(map(str, pids[:10])) + (", ..." if len(pids) > 10 else "")
        warn(
            f"{profile.meta.profile} is already running (pid {listed}); processes started "
            f"before bpfbox-run are NOT confined by {profile.meta.name}: restart them"
        )
