"""Load compiled profiles into the kernel, attach them, pin them, and take them out again.

One call, `load()`, goes through every step for every profile: kernel checks, build,
open, configure the read-only identity of the confined program, reuse the maps of a profile
of the same name that is already pinned, load (the verifier runs here), attach each program
and pin the links and maps (runtime/pins.py).  Only when every profile got that far are they
put in place, each replacing the pinned profile of its name; should any step fail, everything
made so far is destroyed and the profiles pinned before stay as they were.

From then on the profiles live in the kernel, not in a process: `Session` follows the events
of pinned profiles, and `release` unpins the temporary ones a bpfbox-run loaded itself.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

from bpfbox.contract import abi
from bpfbox.contract.errors import BpfboxError
from bpfbox.runtime import build, hooks, kernel, libbpf, metadata, pins
from bpfbox.runtime.events import Event, EventError, decode
from bpfbox.runtime.metadata import Metadata
from bpfbox.runtime.pins import Record

#: Section prefixes libbpf attaches by itself (`bpf_program__attach`).
AUTO_ATTACH = tuple(p for p, feature in metadata.SECTION_FEATURES.items() if feature != "uprobe")

EventHandler = Callable[[Metadata, Event], None]
LostHandler = Callable[[Metadata, int, int], None]
WarningHandler = Callable[[str], None]


class LoadFailure(BpfboxError):
    """A profile could not be loaded or attached (exit status 1)."""

    exit_code = 1


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
class Followed:
    """One pinned profile whose events a Session reads."""

    meta: Metadata
    events_fd: int
    stats_fd: int
    repeats_fd: int
    lost_seen: int = 0

    def counter(self, key: int) -> int:
        """Stats slot `key`; 0 for objects whose stats map is shorter (older contracts)."""
        return pins.read_counter(self.stats_fd, key, self.meta.name) or 0


class Session:
    """Follows pinned profiles: `poll` delivers their events; closing lets go of the maps only."""

    def __init__(
        self,
        names: Iterable[str],
        on_event: EventHandler,
        on_lost: LostHandler,
        warn: WarningHandler,
    ) -> None:
        self.profiles: list[Followed] = []
        self._on_event = on_event
        self._on_lost = on_lost
        self._warn = warn
        self._ring = libbpf.RingBuffer()
        self._pending: list[tuple[Metadata, bytes]] = []
        try:
            for name in names:
                self._follow(name)
        except BaseException:
            self.close()
            raise

    def _follow(self, name: str) -> None:
        meta = metadata.read(pins.object_copy(name))
        fds: list[int] = []
        try:
            for role in ("events", "stats", "repeats"):
                fds.append(pins.open_map(name, role))
        except BaseException:
            for fd in fds:
                os.close(fd)
            raise
        profile = Followed(meta, *fds)
        self.profiles.append(profile)
        profile.lost_seen = profile.counter(abi.STAT_LOST_EVENTS)

        def queue(data: bytes) -> None:
            # Runs inside libbpf's poll: only queue, decode after it returns.
            self._pending.append((meta, data))

        self._ring.add(profile.events_fd, f"{name}/events", queue)

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
            total = profile.counter(abi.STAT_LOST_EVENTS)
            if total > profile.lost_seen:
                self._on_lost(profile.meta, total - profile.lost_seen, total)
                profile.lost_seen = total

    def take_repeats(self) -> list[tuple[Metadata, Event]]:
        """The events counted and not reported yet (bpfbox-run --reduce-repeats), each with
        its count in `repeats` and no acting task; the counts are taken out of the kernel's
        map, so no reader reports them twice."""
        taken = []
        for profile in self.profiles:
            entries = libbpf.take_entries(
                profile.repeats_fd,
                abi.EVENT_STRUCT.size,
                abi.REPEAT_COUNT_STRUCT.size,
                f"{profile.meta.name}/repeats",
            )
            for key, value in entries:
                _, repeats = abi.REPEAT_COUNT_STRUCT.unpack(value)
                if repeats:
                    taken.append((profile.meta, decode(key)._replace(repeats=repeats)))
        return taken

    def confined_tasks(self) -> int:
        """Tasks the followed profiles confine right now (the live-task counters)."""
        return sum(p.counter(abi.STAT_CONFINED_TASKS) for p in self.profiles)

    def close(self) -> None:
        """Stop reading; the profiles stay loaded.  Idempotent."""
        self._ring.free()
        for profile in self.profiles:
            for fd in (profile.events_fd, profile.stats_fd, profile.repeats_fd):
                os.close(fd)
        self.profiles.clear()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class _Staged:
    """A profile loaded, attached and pinned in its staging directory, not yet live."""

    record: Record
    obj_path: str
    identity: Identity
    staging: pins.Staging
    obj: libbpf.BpfObject
    links: list[libbpf.Link]

    def release(self) -> None:
        """Let go of the object and links; the pins keep what was committed."""
        for link in self.links:
            link.release()
        self.obj.close()

    def destroy(self) -> None:
        """Undo everything (a failure before commit)."""
        for link in reversed(self.links):
            link.destroy()
        self.staging.discard()
        self.obj.close()


def load(
    paths: Iterable[str],
    warn: WarningHandler,
    mode: str,
    complain: bool = False,
    service_dir: str | None = None,
    learn: bool = False,
    reduce_repeats: bool = False,
) -> list[Record]:
    """Check, build, open, configure, load, attach and pin every profile in `paths`.

    `learn`: a learning run (bpfbox-learn record): complain mode, events with the acting
    task's executable and user stack (abi.CFG_LEARN), a ring buffer of abi.LEARN_RING_BYTES.
    `reduce_repeats`: an event the same as one reported in the last second is counted, not
    reported (abi.CFG_REDUCE_REPEATS).

    Every profile replaces the pinned profile of its name, if any, with no unenforced moment.
    Raises the failing step's exception (with `help` and `exit_code`) after undoing all
    earlier steps; the profiles pinned before are then untouched.
    """
    kernel.require_privileges()
    objects = [
        (path, built, metadata.read(built)) for path in paths for built in [build.object_for(path)]
    ]
    _refuse_duplicates([meta for _, _, meta in objects])
    kernel.require(set().union(*(meta.features for _, _, meta in objects)))
    owner = pins.owner_token()
    staged: list[_Staged] = []
    with pins.locked():
        try:
            for source, built, meta in objects:
                rec = _record(meta, source, mode, owner, service_dir)
                staged.append(_stage(built, meta, rec, complain, learn, reduce_repeats))
        except BaseException:
            for item in reversed(staged):
                item.destroy()
            raise
        for item in staged:
            item.staging.commit(item.record, item.obj_path)
            item.release()
    for item in staged:
        _warn_unconfined(item.record, item.identity, warn)
    if not kernel.overlayfs_registered():
        warn(
            "overlayfs is not loaded: the profiles loaded now take the work of an overlay "
            "mounted later (copying a changed file up, its lookups) for the confined "
            "process's own and refuse it; load it first (`modprobe overlay`), then the profiles"
        )
    return [item.record for item in staged]


def _refuse_duplicates(metas: list[Metadata]) -> None:
    seen: dict[str, str] = {}
    for meta in metas:
        if meta.name in seen:
            raise LoadFailure(
                f"two profiles are named {meta.name} ({seen[meta.name]} and {meta.policy})",
                "load one of them, or rename one policy file (its name names the profile)",
            )
        seen[meta.name] = meta.policy


def _record(meta: Metadata, source: str, mode: str, owner: str, service_dir: str | None) -> Record:
    rec = Record(
        name=meta.name,
        policy=meta.policy,
        program=meta.profile,
        source=os.path.abspath(source),
        mode=mode,
        loaded_since=pins.now(),
        owner=owner,
        service_dir=service_dir,
        task_state_layout=meta.task_state_layout,
    )
    previous = pins.record(meta.name) if pins.is_pinned(meta.name) else None
    if previous is not None and previous.persistent and not rec.persistent:
        # A temporary run never turns an administrator's persistent profile into one it
        # would unload when done.
        rec = replace(rec, mode=previous.mode, service_dir=previous.service_dir)
    return rec


def _stage(
    path: str, meta: Metadata, rec: Record, complain: bool, learn: bool, reduce_repeats: bool
) -> _Staged:
    identity = identity_of(meta)
    selection = hooks.for_running_kernel(meta.hooks)
    obj = libbpf.BpfObject(path)
    try:
        for program in obj.programs():
            if program.name in selection.disabled:
                program.disable()
        configure(obj, meta, identity, complain, learn, reduce_repeats)
        if pins.is_pinned(meta.name):
            _reuse_pinned_maps(obj, meta)
        _load(obj, meta)
        links = attach_all(obj, meta)
    except BaseException:
        obj.close()
        raise
    staging: pins.Staging | None = None
    try:
        staging = pins.Staging(meta.name)
        for link, program_name in zip(links, _link_programs(obj, meta), strict=True):
            staging.pin_link(link, program_name)
        for role, map_name in pins.PINNED_MAPS.items():
            staging.pin_map(role, obj.map(map_name).fd())
    except BaseException:
        for link in reversed(links):
            link.destroy()
        if staging is not None:
            staging.discard()
        obj.close()
        raise
    return _Staged(rec, path, identity, staging, obj, links)


_OTHER_SHAPE_HELP = (
    "the loaded profile's maps were made for other options (--complain and --reduce-repeats "
    "change them) or by another version of bpfbox: load it with the options it was loaded "
    "with, or run `bpfbox unload {name}` first (processes it confines lose their confinement)"
)
_INCOMPATIBLE_HELP = (
    "the per-task state of the two versions is not compatible; run `bpfbox unload {name}` "
    "first (processes it confines lose their confinement), then load the new version"
)


def _reuse_pinned_maps(obj: libbpf.BpfObject, meta: Metadata) -> None:
    """Share the pinned profile's task state, counters and events with the replacement.

    Confined tasks stay confined (their state is in the task storage map), the live-task
    counter keeps counting them, and `bpfbox events` followers keep reading.  Maps of another
    shape, or task state of another layout version (the same size, read differently), cannot
    be shared: the replacement is refused rather than loaded with fresh state.
    """
    check_layout(pins.record(meta.name), meta, obj.path)
    for role, map_name in pins.PINNED_MAPS.items():
        new = obj.map(map_name)
        fd = pins.open_map(meta.name, role)
        try:
            pinned = libbpf.map_shape(fd, f"{meta.name}/{role}")
            if pinned != new.shape():
                raise LoadFailure(
                    f"cannot replace the loaded profile {meta.name}: its {role} map "
                    f"({pinned.describe()}) differs from {obj.path}'s "
                    f"({new.shape().describe()})",
                    (_INCOMPATIBLE_HELP if role == "tasks" else _OTHER_SHAPE_HELP).format(
                        name=meta.name
                    ),
                )
            new.reuse_fd(fd)
        finally:
            os.close(fd)


def check_layout(pinned: Record | None, meta: Metadata, path: str) -> None:
    """Refuse to share the pinned profile's task state with a program that lays it out
    differently (0, or no record: a version that is not known, which is not trusted either)."""
    layout = pinned.task_state_layout if pinned else 0
    if layout != meta.task_state_layout:
        raise LoadFailure(
            f"cannot replace the loaded profile {meta.name}: its per-task state has layout "
            f"version {layout or 'unknown'}, {path}'s has "
            f"{meta.task_state_layout}",
            _INCOMPATIBLE_HELP.format(name=meta.name),
        )


def release(records: Iterable[Record]) -> list[str]:
    """Unload the temporary profiles of `records` still owned by their loader; their names.

    A profile that another bpfbox-run replaced since, or that is pinned persistently, is left
    for its new owner or the administrator.
    """
    unloaded = []
    with pins.locked():
        for rec in records:
            current = pins.record(rec.name) if pins.is_pinned(rec.name) else None
            if current and current.owner == rec.owner and not current.persistent:
                pins.unload(rec.name)
                unloaded.append(rec.name)
    return unloaded


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


def configure(
    obj: libbpf.BpfObject,
    meta: Metadata,
    identity: Identity,
    complain: bool,
    learn: bool = False,
    reduce_repeats: bool = False,
) -> None:
    """Write the profile's identity (and complain, learning or reduced-repeats mode) into
    the object's read-only data.  Learning implies complain mode (a learning run denies
    nothing); both take a ring buffer of abi.LEARN_RING_BYTES.  Learning reports every
    event (each has its own stack): it cannot reduce repeats.

    The inode and device are required; the resolved path and its name length are written
    when the object has them (objects that do not check paths need not carry them).
    """
    path = identity.path.encode()
    values: dict[str, int | bytes] = {
        abi.CFG_PROFILE_INO: identity.ino,
        abi.CFG_PROFILE_DEV: identity.dev,
    }
    if complain or learn:
        values[abi.CFG_COMPLAIN] = 1
    if learn:
        values[abi.CFG_LEARN] = 1
    if reduce_repeats:
        if learn:
            raise ValueError("a learning run reports every event: it cannot reduce repeats")
        values[abi.CFG_REDUCE_REPEATS] = 1
    else:
        # Nothing is counted: the map need not hold more (its shape is part of a pinned
        # profile's, which a replacement must share).
        obj.map(abi.REPEATS_MAP).set_max_entries(1)
    optional: dict[str, int | bytes] = {
        abi.CFG_PROFILE_PATH: path,
        abi.CFG_PROFILE_NAME_LEN: len(os.path.basename(path)),
    }
    values.update({k: v for k, v in optional.items() if k in meta.rodata})
    data = _rodata(obj).initial_value()
    for name, value in values.items():
        _write_variable(obj.path, meta, data, name, value)
    if complain or learn:
        # Every access may be an event (learning events are five times larger), and a lost
        # one is a rule the draft or the user misses.
        obj.map(abi.EVENTS_MAP).set_max_entries(abi.LEARN_RING_BYTES)


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
    if name == abi.CFG_LEARN:
        return "this profile was compiled by an older bpfboxc without learning mode"
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
    programs = _loaded_programs(obj)
    names = {p.name for p in programs}
    for program_name in probes:
        if program_name not in names:
            raise libbpf.ConfigError(
                f"{obj.path} lacks program '{program_name}' the metadata names"
            )
    links: list[libbpf.Link] = []
    try:
        for program in _attach_order(programs, probes):
            links.append(_attach(program, probes, obj.path))
    except BaseException:
        for link in reversed(links):
            link.destroy()
        raise
    return links


def _attach_order(
    programs: list[libbpf.Program], probes: dict[str, tuple[str, int, bool]]
) -> list[libbpf.Program]:
    return sorted(programs, key=lambda p: p.name not in probes)


def _loaded_programs(obj: libbpf.BpfObject) -> list[libbpf.Program]:
    """The programs the load loaded: all but the variants for other kernels' hook ABIs."""
    return [p for p in obj.programs() if p.autoload]


def _link_programs(obj: libbpf.BpfObject, meta: Metadata) -> list[str]:
    """The program names of `attach_all`'s links, in the same order."""
    return [p.name for p in _attach_order(_loaded_programs(obj), _uprobe_targets(meta))]


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


def _warn_unconfined(rec: Record, identity: Identity, warn: WarningHandler) -> None:
    pids = running_instances(identity)
    if pids:
        listed = ", ".join(map(str, pids[:10])) + (", ..." if len(pids) > 10 else "")
        warn(
            f"{rec.program} is already running (pid {listed}); processes started "
            f"before the profile was loaded are NOT confined by {rec.name}: restart them"
        )
