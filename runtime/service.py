"""Service mode: the profiles of a policy directory, kept loaded (`bpfbox-run --service DIR`).

DIR holds compiled profiles: every `NAME.bpf.o`, and every `NAME.bpf.c` that has no
`NAME.bpf.o` beside it (compiled with clang at load, then cached).  Policies themselves
(`.bpfbox`) are compiled on a build host with `bpfboxc -o NAME.bpf.o`, so a production host
needs only libbpf.  `sync` makes the pinned profiles match DIR: it loads (replacing, with no
unenforced moment) every profile found, and unloads those an earlier sync of the same
directory loaded whose files are gone.
"""

from __future__ import annotations

import os

from bpfbox.runtime import loader, pins
from bpfbox.runtime.loader import WarningHandler

OBJECT_SUFFIX = ".bpf.o"
SOURCE_SUFFIX = ".bpf.c"


class ServiceDirectoryError(pins.PinStoreError):
    """The policy directory cannot be read."""

    exit_code = 2
    help = "pass a readable directory of .bpf.o (or .bpf.c) profiles to --service"


def profiles_in(directory: str) -> list[str]:
    """The profile files of `directory`, sorted: objects, and sources without an object."""
    try:
        entries = set(os.listdir(directory))
    except OSError as err:
        raise ServiceDirectoryError(
            f"cannot read the policy directory {directory}: {err.strerror}"
        ) from None
    chosen = [e for e in entries if e.endswith(OBJECT_SUFFIX)]
    chosen += [
        e
        for e in entries
        if e.endswith(SOURCE_SUFFIX) and e[: -len(SOURCE_SUFFIX)] + OBJECT_SUFFIX not in entries
    ]
    return [os.path.join(directory, e) for e in sorted(chosen)]


def sync(
    directory: str, warn: WarningHandler, complain: bool = False, reduce_repeats: bool = False
) -> list[str]:
    """Load every profile of `directory` and unload the ones it no longer has; their names."""
    records = loader.load(
        profiles_in(directory),
        warn=warn,
        mode=pins.MODE_SERVICE,
        complain=complain,
        service_dir=directory,
        reduce_repeats=reduce_repeats,
    )
    names = [rec.name for rec in records]
    with pins.locked():
        for name in pins.names():
            rec = pins.record(name)
            if rec and rec.service_dir == directory and name not in names:
                pins.unload(name)
    return names
