"""Reading the files both CLIs are given: regular files only, and never more than a bound.

A FIFO or a terminal given as an input would block the reader forever and `/dev/zero` would
fill its memory, so every input (policy, include, `--btf`, `--symbols`, a profile object or
source, its metadata) is opened without blocking, checked to be a regular file on the open
descriptor (no race with a rename), and read up to a size limit.  Errors name the input.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

KIB = 1024
MIB = 1024 * KIB
#: A policy file or an include fragment: far beyond any real policy.
MAX_POLICY_BYTES = 1 * MIB
#: Kernel BTF (a 6.x vmlinux has 5-6 MiB of it).
MAX_BTF_BYTES = 256 * MIB
#: A generated .bpf.c file: a policy of 10,000 path rules makes 45 MiB (its automaton's
#: tables as string literals); this leaves room for several times that.
MAX_SOURCE_BYTES = 256 * MIB


class InputFileError(OSError):
    """An input cannot be read as a regular file of bounded size.

    str() is the whole message ("policy `x` is a FIFO, not a regular file"); `reason` is
    its last part ("a FIFO, not a regular file"), for messages that name the input already.
    """

    def __init__(self, message: str, reason: str, error: int | None = errno.EINVAL) -> None:
        super().__init__(error, message)
        self.message = message
        self.reason = reason

    def __str__(self) -> str:
        return self.message


def open_regular(path: Path | str, what: str) -> int:
    """An O_RDONLY descriptor of `path` if it is a regular file; InputFileError otherwise.

    `what` names the input in messages ("policy", "--btf file", ...).  The descriptor is opened
    with O_NONBLOCK, so a FIFO does not wait for a writer before it is refused.
    """
    name = os.fsdecode(path)
    if "\0" in name:
        reason = "its name contains a NUL character"
        raise InputFileError(f"cannot read {what} `{name!r}`: {reason}", reason)
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    except OSError as error:
        reason = (error.strerror or str(error)).lower()
        raise InputFileError(
            f"cannot read {what} `{name}`: {reason}", reason, error.errno
        ) from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        reason = f"{_kind(mode)}, not a regular file"
        raise InputFileError(f"{what} `{name}` is {reason}", f"it is {reason}")
    os.set_blocking(fd, True)
    return fd


def read_regular(path: Path | str, what: str, limit: int) -> bytes:
    """The contents of the regular file `path`, refusing files larger than `limit` bytes."""
    fd = open_regular(path, what)
    with os.fdopen(fd, "rb") as stream:
        try:
            data = stream.read(limit + 1)
        except OSError as error:
            reason = (error.strerror or str(error)).lower()
            raise InputFileError(
                f"cannot read {what} `{path}`: {reason}", reason, error.errno
            ) from None
    if len(data) > limit:
        reason = f"larger than the limit of {describe_size(limit)}"
        raise InputFileError(f"{what} `{path}` is {reason}", f"it is {reason}", errno.EFBIG)
    return data


def describe_size(size: int) -> str:
    return f"{size // MIB} MiB" if size % MIB == 0 else f"{size} bytes"


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"
