"""Profiles pinned in bpffs: enforcement that does not depend on any process.

A loaded profile is a directory of pins, which keep its programs attached and its maps
alive whatever happens to the process that loaded it:

    /sys/fs/bpf/bpfbox/NAME/link-PROGRAM    one per attached program
    /sys/fs/bpf/bpfbox/NAME/events          the event ring buffer (`bpfbox events NAME`)
    /sys/fs/bpf/bpfbox/NAME/stats           lost events, live confined tasks, denials
    /sys/fs/bpf/bpfbox/NAME/tasks           per-task state, reused when NAME is replaced
    /sys/fs/bpf/bpfbox/NAME/repeats         events counted, not reported (--reduce-repeats)

bpffs holds only BPF objects, so what `bpfbox list` shows beside them lives in
/run/bpfbox/NAME/: record.json (policy, program, mode, since when) and a copy of the object,
whose metadata decodes the events.  The pins are the truth: a profile is loaded exactly as
long as its pin directory exists.

A new or replacing profile is pinned into a staging directory first, with its programs
already attached; `commit` then renames it into place and only afterwards unpins the old
one, so a replaced profile never leaves a moment in which nothing is enforced.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import json
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import datetime, timezone

from bpfbox.contract import abi
from bpfbox.runtime import libbpf

#: Where bpffs is (mounted there if it is not); the environment may name another mount of
#: it (host tests use a private one), and another state directory.
BPFFS = os.environ.get("BPFBOX_BPFFS", "/sys/fs/bpf")
ROOT = os.path.join(BPFFS, "bpfbox")
STATE = os.environ.get("BPFBOX_STATE_DIR", "/run/bpfbox")
#: Pinned map file name -> the map's name in the object.
PINNED_MAPS = {
    "events": abi.EVENTS_MAP,
    "stats": abi.STATS_MAP,
    "tasks": abi.TASKS_MAP,
    "repeats": abi.REPEATS_MAP,
}
LINK_PREFIX = "link-"
RECORD = "record.json"
OBJECT = "profile.bpf.o"
#: bpffs refuses names with a dot: profiles being staged or retired live in a sibling
#: directory, on the same file system so that a rename moves them.
WORK = os.path.join(BPFFS, "bpfbox-work")
STAGING_PREFIX = "staging-"
RETIRED_PREFIX = "retired-"

#: How a profile was loaded; the persistent ones stay until `bpfbox unload`.
MODE_DETACHED = "detached"
MODE_SERVICE = "service"
MODE_COMMAND = "command"
MODE_FOREGROUND = "foreground"
PERSISTENT_MODES = (MODE_DETACHED, MODE_SERVICE)


class PinStoreError(libbpf.PinError):
    """The pin directory or the state directory cannot be used."""


class NotLoaded(PinStoreError):
    """No profile of that name is pinned."""

    help = "`bpfbox list` shows the loaded profiles"


@dataclass
class Record:
    """What `bpfbox list` shows about one pinned profile."""

    name: str
    policy: str
    program: str
    #: The file bpfbox-run was given (.bpf.c or .bpf.o).
    source: str
    mode: str
    loaded_since: str
    #: Who loaded it last ("PID-NANOSECONDS"): a temporary profile is unloaded only by it.
    owner: str
    #: The policy directory of a service-mode profile.
    service_dir: str | None = None
    #: The layout version of its per-task state (abi.TASK_STATE_LAYOUT when compiled); 0 in
    #: records of a bpfbox that did not write it.
    task_state_layout: int = 0

    @property
    def persistent(self) -> bool:
        return self.mode in PERSISTENT_MODES

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    @classmethod
    def from_json(cls, text: str) -> Record:
        return cls(**json.loads(text))


def owner_token() -> str:
    """A token naming this process uniquely, even after its pid is reused."""
    return f"{os.getpid()}-{time.time_ns()}"


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def profile_dir(name: str) -> str:
    return os.path.join(ROOT, name)


def state_dir(name: str) -> str:
    return os.path.join(STATE, name)


def ensure_bpffs() -> None:
    """Mount bpffs on /sys/fs/bpf if nothing is mounted there, and create the pin root."""
    if not _bpffs_mounted():
        libc = libbpf.library().libc
        if libc.mount(b"bpf", BPFFS.encode(), b"bpf", 0, None) != 0:
            err = ctypes.get_errno()
            raise PinStoreError(
                f"cannot mount the bpf file system on {BPFFS}: {libbpf.errno_text(err)}",
                help=f"mount it yourself: mount -t bpf bpf {BPFFS}",
            )
    for directory in (ROOT, WORK, STATE):
        try:
            os.makedirs(directory, mode=0o700, exist_ok=True)
        except OSError as err:
            raise PinStoreError(f"cannot create {directory}: {err.strerror}") from None


def _bpffs_mounted() -> bool:
    with open("/proc/self/mounts") as mounts:
        return any(
            fields[1] == BPFFS and fields[2] == "bpf"
            for fields in (line.split() for line in mounts)
        )


@contextlib.contextmanager
def locked() -> Iterator[None]:
    """Serialise changes to the pin store between bpfbox processes."""
    ensure_bpffs()
    with open(os.path.join(STATE, ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def names() -> list[str]:
    """The names of every pinned profile, sorted."""
    try:
        entries = os.listdir(ROOT)
    except FileNotFoundError:
        return []
    return sorted(entries)


def is_pinned(name: str) -> bool:
    return os.path.isdir(profile_dir(name))


def record(name: str) -> Record | None:
    """The record of a pinned profile; None when it is missing or unreadable."""
    try:
        with open(os.path.join(state_dir(name), RECORD)) as f:
            return Record.from_json(f.read())
    except (OSError, ValueError, TypeError):
        return None


def object_copy(name: str) -> str:
    return os.path.join(state_dir(name), OBJECT)


def open_map(name: str, role: str) -> int:
    """A file descriptor of pinned map `role` (a PINNED_MAPS key) of profile NAME."""
    path = os.path.join(profile_dir(name), role)
    if not os.path.exists(path):
        if not is_pinned(name):
            raise NotLoaded(f"no profile named {name} is loaded")
        raise PinStoreError(f"{path} is missing: profile {name} is incomplete")
    return libbpf.open_pinned(path)


def counter(name: str, key: int) -> int | None:
    """Stats slot `key` of a pinned profile; None when its stats map has no such slot."""
    fd = open_map(name, "stats")
    try:
        return read_counter(fd, key, name)
    finally:
        os.close(fd)


def read_counter(stats_fd: int, key: int, name: str) -> int | None:
    """Slot `key` of profile NAME's stats map `stats_fd`; None for objects whose stats map
    is shorter (built before that counter existed)."""
    if key >= libbpf.map_shape(stats_fd, f"{name}/stats").max_entries:
        return None
    return libbpf.lookup_u64(stats_fd, key, f"{name}/stats")


class Staging:
    """A profile's pins before they go live; `commit` puts them in place, `discard` drops them."""

    def __init__(self, name: str) -> None:
        self.name = name
        if "." in name or "/" in name:
            raise PinStoreError(
                f"profile name {name} cannot be pinned: bpffs names have no '.' or '/'",
                help="rename the policy file (its name names the profile) and recompile",
            )
        self.path = os.path.join(WORK, f"{STAGING_PREFIX}{name}-{os.getpid()}")
        _remove_tree(self.path)
        try:
            os.mkdir(self.path, 0o700)
        except OSError as err:
            raise PinStoreError(f"cannot create {self.path}: {err.strerror}") from None

    def pin_link(self, link: libbpf.Link, program: str) -> None:
        link.pin(os.path.join(self.path, LINK_PREFIX + program))

    def pin_map(self, role: str, fd: int) -> None:
        libbpf.pin(fd, os.path.join(self.path, role))

    def commit(self, rec: Record, obj_path: str) -> None:
        """Replace the live profile of this name (if any) with the staged one, then record it.

        The staged links are attached already, so the old ones are unpinned only once the new
        ones are in place: the programs of both run for a moment, never neither.
        """
        live = profile_dir(self.name)
        retired = None
        if os.path.exists(live):
            retired = os.path.join(WORK, f"{RETIRED_PREFIX}{self.name}-{os.getpid()}")
            os.rename(live, retired)
        os.rename(self.path, live)
        if retired:
            _remove_tree(retired)
        state = state_dir(self.name)
        os.makedirs(state, mode=0o700, exist_ok=True)
        shutil.copyfile(obj_path, object_copy(self.name) + ".new")
        os.replace(object_copy(self.name) + ".new", object_copy(self.name))
        _write_atomically(os.path.join(state, RECORD), rec.to_json())

    def discard(self) -> None:
        _remove_tree(self.path)


def unload(name: str) -> None:
    """Unpin profile NAME (its programs detach once nothing else holds them) and its record."""
    if not is_pinned(name):
        raise NotLoaded(f"no profile named {name} is loaded")
    _remove_tree(profile_dir(name))
    shutil.rmtree(state_dir(name), ignore_errors=True)


def leftovers() -> list[str]:
    """Staging and retired directories a killed loader left behind."""
    try:
        return sorted(os.listdir(WORK))
    except FileNotFoundError:
        return []


def remove_leftover(entry: str) -> None:
    _remove_tree(os.path.join(WORK, entry))


def _remove_tree(path: str) -> None:
    """Unpin every file of a pin directory and remove it; a missing one is fine."""
    try:
        entries = os.listdir(path)
    except FileNotFoundError:
        return
    for entry in entries:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(path, entry))
    try:
        os.rmdir(path)
    except OSError as err:
        if err.errno != errno.ENOENT:
            raise PinStoreError(f"cannot remove {path}: {err.strerror}") from None


def _write_atomically(path: str, text: str) -> None:
    partial = path + ".new"
    with open(partial, "w") as f:
        f.write(text)
    os.replace(partial, path)
