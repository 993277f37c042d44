"""A thin ctypes layer over the system's libbpf (`libbpf.so.1`).

Only what bpfbox-run needs is bound: open an object, walk its programs and maps, patch the
read-only data before load, reuse a pinned map, load, attach (automatically or as
uprobes), pin links and maps in bpffs and open them again, read a map, poll a ring buffer.
Every failing step raises its own exception type whose message names the step, the program
or map, and the errno text, followed by what libbpf itself printed about it, so the user
sees one clear error instead of a C-level code.

libbpf 1.x reports errors by returning NULL (or a negative int) and setting errno; the
library is therefore loaded with ctypes' errno capture and every pointer result is checked.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import os
import platform
import re
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from bpfbox.compiler import btf
from bpfbox.contract import abi
from bpfbox.contract.errors import BpfboxError

LIBBPF_SONAME = "libbpf.so.1"

# libbpf_print_level values.
PRINT_WARN = 0
PRINT_INFO = 1
PRINT_DEBUG = 2

# Kernel enum values the probes in kernel.py use (include/uapi/linux/bpf.h, btf.h).
PROG_TYPE_TRACING = 26
PROG_TYPE_LSM = 29
ATTACH_TRACE_FENTRY = 24
ATTACH_LSM_MAC = 27
MAP_TYPE_RINGBUF = 27
MAP_TYPE_TASK_STORAGE = 29
BTF_KIND_FUNC = abi.BTF_KIND_FUNC

# libbpf prints a failed program's verifier log between these markers.
_VERIFIER_LOG = re.compile(
    r"prog '(?P<prog>[^']*)': -- BEGIN PROG LOAD LOG --\n(?P<log>.*?)-- END PROG LOAD LOG --",
    re.S,
)


class LibbpfError(BpfboxError):
    """A libbpf step failed; `help` says what the user can do about it."""

    exit_code = 1
    help = "run with a kernel that passes `bpfbox-run --check-kernel` and report the message"


class LibbpfUnavailable(LibbpfError):
    """libbpf.so.1 cannot be loaded at all: an environment problem, not a load failure."""

    exit_code = 2
    help = "install libbpf 1.x (Debian/Ubuntu: apt-get install libbpf1)"


class OpenError(LibbpfError):
    """bpf_object__open_file failed: the file is not a usable BPF object."""

    help = "rebuild the object with bpfboxc and clang; a truncated or foreign file cannot load"


class ConfigError(LibbpfError):
    """The object lacks something the runtime must configure (a map, a variable)."""

    help = "rebuild the object with the bpfboxc that matches this bpfbox-run"


class LoadError(LibbpfError):
    """bpf_object__load failed for a reason other than the verifier (maps, BTF, CO-RE)."""


class VerifierError(LoadError):
    """The kernel's verifier rejected a program; carries the full verifier log."""

    def __init__(self, message: str, program: str, log: str, summary: str) -> None:
        super().__init__(message)
        self.program = program
        self.log = log
        self.summary = summary


class AttachError(LibbpfError):
    """Attaching a loaded program (LSM, fentry or uprobe) failed."""


class MapError(LibbpfError):
    """Reading a map failed."""


class RingBufferError(LibbpfError):
    """Creating or polling the event ring buffer failed."""


class PinError(LibbpfError):
    """Pinning an object in bpffs, opening a pinned one, or reusing a pinned map failed."""

    help = "check that /sys/fs/bpf is a bpf file system mounted read-write, and run as root"


class ProbeError(LibbpfError):
    """A feature probe could not even run (as opposed to the feature being absent)."""


def errno_text(err: int) -> str:
    """`EPERM (Operation not permitted)` for an errno value; negative values are accepted."""
    err = abs(err)
    return f"{errno.errorcode.get(err, f'errno {err}')} ({os.strerror(err)})"


class _Messages:
    """Collects what libbpf prints, so errors can quote it instead of spamming stderr."""

    def __init__(self) -> None:
        self.lines: list[tuple[int, str]] = []

    def add(self, level: int, text: str) -> None:
        self.lines.append((level, text))

    def take(self) -> list[tuple[int, str]]:
        """Return everything collected since the last call and start afresh."""
        lines, self.lines = self.lines, []
        return lines


_messages = _Messages()


def take_messages() -> list[tuple[int, str]]:
    """What libbpf printed since the last call, as (level, text) pairs."""
    return _messages.take()


def _warnings(lines: list[tuple[int, str]]) -> str:
    """The warning-level part of libbpf's output, indented for an error message."""
    text = "".join(t for level, t in lines if level == PRINT_WARN).rstrip()
    return "\n" + "\n".join("  " + line for line in text.splitlines()) if text else ""


_PRINT_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p)
_SAMPLE_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t)

# On x86-64 a va_list is an array of one 24-byte struct, so copying those bytes is va_copy.
# Elsewhere the message is formatted once into a fixed buffer and may be truncated.
_VA_LIST_SIZE = 24 if platform.machine() in ("x86_64", "AMD64") else 0
_FIXED_MESSAGE_SIZE = 1 << 16


class _Library:
    """libbpf.so.1 and libc with the prototypes bpfbox uses."""

    def __init__(self) -> None:
        try:
            self.bpf = ctypes.CDLL(LIBBPF_SONAME, use_errno=True)
        except OSError as err:
            raise LibbpfUnavailable(f"cannot load {LIBBPF_SONAME}: {err}") from None
        self.libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        self._declare()
        # Kept referenced: libbpf calls it for the lifetime of the process.
        self._print_cb = _PRINT_FN(self._on_print)
        self.bpf.libbpf_set_print(self._print_cb)

    def _declare(self) -> None:
        p, i, u, s, sz = (
            ctypes.c_void_p,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_char_p,
            ctypes.c_size_t,
        )
        protos = {
            "libbpf_set_print": (p, [_PRINT_FN]),
            "bpf_object__open_file": (p, [s, p]),
            "bpf_object__load": (i, [p]),
            "bpf_object__close": (None, [p]),
            "bpf_object__next_program": (p, [p, p]),
            "bpf_object__next_map": (p, [p, p]),
            "bpf_program__name": (s, [p]),
            "bpf_program__section_name": (s, [p]),
            "bpf_program__attach": (p, [p]),
            "bpf_program__set_autoload": (i, [p, ctypes.c_bool]),
            "bpf_program__autoload": (ctypes.c_bool, [p]),
            "bpf_program__attach_uprobe": (p, [p, ctypes.c_bool, i, s, sz]),
            "bpf_link__destroy": (i, [p]),
            "bpf_link__fd": (i, [p]),
            "bpf_link__disconnect": (None, [p]),
            "bpf_obj_pin": (i, [i, s]),
            "bpf_obj_get": (i, [s]),
            "bpf_obj_get_info_by_fd": (i, [i, p, ctypes.POINTER(ctypes.c_uint32)]),
            "bpf_map__reuse_fd": (i, [p, i]),
            "bpf_map__type": (i, [p]),
            "bpf_map__key_size": (ctypes.c_uint32, [p]),
            "bpf_map__value_size": (ctypes.c_uint32, [p]),
            "bpf_map__max_entries": (ctypes.c_uint32, [p]),
            "bpf_map__set_max_entries": (i, [p, ctypes.c_uint32]),
            "bpf_map__name": (s, [p]),
            "bpf_map__fd": (i, [p]),
            "bpf_map__initial_value": (p, [p, ctypes.POINTER(sz)]),
            "bpf_map_lookup_elem": (i, [i, p, p]),
            "bpf_map_get_next_key": (i, [i, p, p]),
            "bpf_map_lookup_and_delete_elem": (i, [i, p, p]),
            "ring_buffer__new": (p, [i, _SAMPLE_FN, p, p]),
            "ring_buffer__add": (i, [p, i, _SAMPLE_FN, p]),
            "ring_buffer__poll": (i, [p, i]),
            "ring_buffer__consume": (i, [p]),
            "ring_buffer__free": (None, [p]),
            "btf__load_vmlinux_btf": (p, []),
            "btf__parse_raw": (p, [s]),
            "btf__find_by_name_kind": (i, [p, s, u]),
            "btf__type_cnt": (u, [p]),
            "btf__type_by_id": (p, [p, u]),
            "btf__name_by_offset": (s, [p, u]),
            "btf__free": (None, [p]),
            "bpf_prog_load": (i, [i, s, s, p, sz, p]),
            "libbpf_probe_bpf_map_type": (i, [i, p]),
        }
        for name, (restype, argtypes) in protos.items():
            fn = getattr(self.bpf, name)
            fn.restype, fn.argtypes = restype, argtypes
        vsnprintf = self.libc.vsnprintf
        vsnprintf.restype = ctypes.c_int
        vsnprintf.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_void_p]

    def _on_print(self, level: int, fmt: bytes, args: int) -> int:
        # An exception escaping a ctypes callback would only be printed, never raised.
        try:
            _messages.add(level, self._format(fmt, args))
        except Exception as err:
            _messages.add(PRINT_WARN, f"(unprintable libbpf message: {err})\n")
        return 0

    def _format(self, fmt: bytes, args: int) -> str:
        size = _FIXED_MESSAGE_SIZE
        if _VA_LIST_SIZE:
            copy = ctypes.create_string_buffer(ctypes.string_at(args, _VA_LIST_SIZE))
            size = self.libc.vsnprintf(None, 0, fmt, ctypes.addressof(copy)) + 1
        buf = ctypes.create_string_buffer(size)
        self.libc.vsnprintf(buf, size, fmt, args)
        return buf.value.decode(errors="replace")


_lib: _Library | None = None


def library() -> _Library:
    """The loaded library, loaded on first use so that import never fails."""
    global _lib
    if _lib is None:
        _lib = _Library()
    return _lib


def _errno() -> int:
    return ctypes.get_errno() or errno.EINVAL


class Program:
    """One program of an opened object."""

    def __init__(self, ptr: int) -> None:
        self._ptr = ptr
        lib = library().bpf
        self.name: str = lib.bpf_program__name(ptr).decode()
        self.section: str = lib.bpf_program__section_name(ptr).decode()

    @property
    def autoload(self) -> bool:
        """Whether the object's load loads this program."""
        return bool(library().bpf.bpf_program__autoload(self._ptr))

    def disable(self) -> None:
        """Leave the program out of the object's load (before the load only)."""
        rc = library().bpf.bpf_program__set_autoload(self._ptr, False)
        if rc < 0:
            raise ConfigError(f"disabling program '{self.name}' failed: {errno_text(rc)}")

    def attach(self) -> Link:
        """Attach as the section name says (lsm/, fentry/, fexit/ ...)."""
        take_messages()
        ptr = library().bpf.bpf_program__attach(self._ptr)
        if not ptr:
            err = _errno()
            raise AttachError(
                f"attaching program '{self.name}' ({self.section}) failed: {errno_text(err)}"
                + _warnings(take_messages())
            )
        return Link(ptr, f"{self.name} ({self.section})")

    def attach_uprobe(self, binary: str, offset: int, retprobe: bool) -> Link:
        """Attach as a uprobe (or uretprobe) at `offset` in `binary`, for every process."""
        take_messages()
        ptr = library().bpf.bpf_program__attach_uprobe(
            self._ptr, retprobe, -1, binary.encode(), offset
        )
        kind = "uretprobe" if retprobe else "uprobe"
        if not ptr:
            err = _errno()
            raise AttachError(
                f"attaching program '{self.name}' as {kind} to {binary}+{offset:#x} failed: "
                f"{errno_text(err)}" + _warnings(take_messages()),
                help=f"check that {binary} exists and is the binary the policy was compiled for",
            )
        return Link(ptr, f"{self.name} ({kind} {binary}+{offset:#x})")


class Map:
    """One map of an opened object."""

    def __init__(self, ptr: int) -> None:
        self._ptr = ptr
        self.name: str = library().bpf.bpf_map__name(ptr).decode()

    def initial_value(self) -> memoryview:
        """The map's initial data, writable until the object is loaded (global variables)."""
        size = ctypes.c_size_t()
        ptr = library().bpf.bpf_map__initial_value(self._ptr, ctypes.byref(size))
        if not ptr:
            raise ConfigError(f"map '{self.name}' has no initial value to configure")
        return memoryview((ctypes.c_char * size.value).from_address(ptr)).cast("B")

    def fd(self) -> int:
        """The map's file descriptor (valid after load)."""
        fd = library().bpf.bpf_map__fd(self._ptr)
        if fd < 0:
            raise MapError(f"map '{self.name}' has no file descriptor: {errno_text(fd)}")
        return int(fd)

    def lookup_u64(self, key: int) -> int:
        """The u64 value at u32 `key` of an array map."""
        return lookup_u64(self.fd(), key, self.name)

    def shape(self) -> MapShape:
        """Type, key and value sizes and capacity, as declared in the object."""
        lib = library().bpf
        return MapShape(
            lib.bpf_map__type(self._ptr),
            lib.bpf_map__key_size(self._ptr),
            lib.bpf_map__value_size(self._ptr),
            lib.bpf_map__max_entries(self._ptr),
        )

    def set_max_entries(self, entries: int) -> None:
        """Resize the map before load (a ring buffer's size in bytes)."""
        rc = library().bpf.bpf_map__set_max_entries(self._ptr, entries)
        if rc < 0:
            raise ConfigError(f"resizing map '{self.name}' to {entries} failed: {errno_text(rc)}")

    def reuse_fd(self, fd: int) -> None:
        """Use the existing map `fd` instead of creating this one at load (before load)."""
        rc = library().bpf.bpf_map__reuse_fd(self._ptr, fd)
        if rc < 0:
            raise PinError(f"reusing a pinned map as '{self.name}' failed: {errno_text(rc)}")


@dataclass(frozen=True)
class MapShape:
    """What decides whether a pinned map can stand in for an object's map."""

    type: int
    key_size: int
    value_size: int
    max_entries: int

    def describe(self) -> str:
        """`type 29, key 4 B, value 8500 B, 0 entries`, for messages."""
        return (
            f"type {self.type}, key {self.key_size} B, value {self.value_size} B, "
            f"{self.max_entries} entries"
        )


class _MapInfo(ctypes.Structure):
    """The head of the kernel's struct bpf_map_info (the kernel fills what fits)."""

    _fields_ = [
        ("type", ctypes.c_uint32),
        ("id", ctypes.c_uint32),
        ("key_size", ctypes.c_uint32),
        ("value_size", ctypes.c_uint32),
        ("max_entries", ctypes.c_uint32),
    ]


def lookup_u64(fd: int, key: int, name: str) -> int:
    """The u64 value at u32 `key` of the array map `fd` (called `name` in messages)."""
    k, v = ctypes.c_uint32(key), ctypes.c_uint64()
    if library().bpf.bpf_map_lookup_elem(fd, ctypes.byref(k), ctypes.byref(v)) < 0:
        raise MapError(f"reading key {key} of map '{name}' failed: {errno_text(_errno())}")
    return v.value


def take_entries(fd: int, key_size: int, value_size: int, name: str) -> list[tuple[bytes, bytes]]:
    """Every (key, value) of the hash map `fd` (called `name` in messages), each deleted as it
    is read.  The keys are listed first: a deleted key cannot lead the walk to the next one."""
    bpf = library().bpf
    keys: list[bytes] = []
    key, value = ctypes.create_string_buffer(key_size), ctypes.create_string_buffer(value_size)
    previous = None
    # A map being filled while it is walked could go on for ever: no more than its size.
    limit = map_shape(fd, name).max_entries
    while len(keys) < limit:
        if bpf.bpf_map_get_next_key(fd, previous, key) != 0:
            if _errno() != errno.ENOENT:
                raise MapError(f"listing the keys of map '{name}' failed: {errno_text(_errno())}")
            break
        keys.append(key.raw)
        previous = ctypes.create_string_buffer(key.raw, key_size)
    taken = []
    for raw in keys:
        key = ctypes.create_string_buffer(raw, key_size)
        if bpf.bpf_map_lookup_and_delete_elem(fd, key, value) == 0:
            taken.append((raw, value.raw))
        elif _errno() != errno.ENOENT:
            raise MapError(f"taking an entry of map '{name}' failed: {errno_text(_errno())}")
    return taken


def pin(fd: int, path: str) -> None:
    """Pin the map, program or link `fd` at `path` in bpffs."""
    if library().bpf.bpf_obj_pin(fd, path.encode()) < 0:
        raise PinError(f"pinning at {path} failed: {errno_text(_errno())}")


def open_pinned(path: str) -> int:
    """A new file descriptor for the object pinned at `path`; the caller closes it."""
    fd = library().bpf.bpf_obj_get(path.encode())
    if fd < 0:
        raise PinError(f"opening the pinned object {path} failed: {errno_text(_errno())}")
    return int(fd)


def map_shape(fd: int, name: str) -> MapShape:
    """What the kernel says of the map `fd` (called `name` in messages)."""
    info = _MapInfo()
    size = ctypes.c_uint32(ctypes.sizeof(info))
    if library().bpf.bpf_obj_get_info_by_fd(fd, ctypes.byref(info), ctypes.byref(size)) < 0:
        raise PinError(f"reading what map {name} is failed: {errno_text(_errno())}")
    return MapShape(info.type, info.key_size, info.value_size, info.max_entries)


class Link:
    """An attachment; destroying it detaches the program."""

    def __init__(self, ptr: int, description: str) -> None:
        self._ptr: int | None = ptr
        self.description = description

    def destroy(self) -> None:
        """Detach; safe to call twice."""
        if self._ptr:
            library().bpf.bpf_link__destroy(self._ptr)
            self._ptr = None

    def pin(self, path: str) -> None:
        """Pin the link at `path`: it stays attached after this process lets go of it."""
        if not self._ptr:
            raise PinError(f"pinning {self.description} at {path}: the link is gone")
        pin(library().bpf.bpf_link__fd(self._ptr), path)

    def release(self) -> None:
        """Let go of a pinned link without detaching it (the pin keeps it attached)."""
        if self._ptr:
            lib = library().bpf
            fd = lib.bpf_link__fd(self._ptr)
            # Disconnected, destroy only frees libbpf's memory: no detach, no perf disable.
            lib.bpf_link__disconnect(self._ptr)
            lib.bpf_link__destroy(self._ptr)
            os.close(fd)
            self._ptr = None


class BpfObject:
    """An opened (and later loaded) BPF object file."""

    def __init__(self, path: str) -> None:
        self.path = path
        take_messages()
        ptr = library().bpf.bpf_object__open_file(path.encode(), None)
        if not ptr:
            err = _errno()
            raise OpenError(
                f"opening BPF object {path} failed: {errno_text(err)}" + _warnings(take_messages())
            )
        self._ptr: int | None = ptr

    def programs(self) -> Iterator[Program]:
        """Every program in the object, in ELF order."""
        lib, ptr = library().bpf, None
        while ptr := lib.bpf_object__next_program(self._ptr, ptr):
            yield Program(ptr)

    def maps(self) -> Iterator[Map]:
        """Every map in the object, including libbpf's internal .rodata/.data/.bss maps."""
        lib, ptr = library().bpf, None
        while ptr := lib.bpf_object__next_map(self._ptr, ptr):
            yield Map(ptr)

    def map(self, name: str) -> Map:
        """The map called `name`; ConfigError if the object has none."""
        for candidate in self.maps():
            if candidate.name == name:
                return candidate
        raise ConfigError(f"{self.path} has no map '{name}'")

    def load(self) -> None:
        """Create the maps and load every program.

        A verifier rejection raises VerifierError carrying the program's complete log:
        libbpf retries a failed load with logging on and grows its own log buffer until the
        log fits, which a fixed caller-provided buffer cannot do on kernels older than 6.4.
        """
        take_messages()
        rc = library().bpf.bpf_object__load(self._ptr)
        lines = take_messages()
        output = "".join(text for _, text in lines)
        if rc == 0:
            return
        match = _VERIFIER_LOG.search(output)
        if match:
            log = match.group("log")
            summary = verifier_summary(log)
            raise VerifierError(
                f"the kernel's verifier rejected program '{match.group('prog')}' "
                f"of {self.path}: {summary}",
                program=match.group("prog"),
                log=output,
                summary=summary,
            )
        raise LoadError(f"loading {self.path} failed: {errno_text(rc)}" + _warnings(lines))

    def close(self) -> None:
        """Unload everything of the object (links must be destroyed first); idempotent."""
        if self._ptr:
            library().bpf.bpf_object__close(self._ptr)
            self._ptr = None


def verifier_summary(log: str) -> str:
    """The line of a verifier log that says why it refused: the one after the last instruction
    it checked (newer kernels add lines of advice after it, 7.3 among them), else the last one
    before the statistics."""
    statistics = ("processed ", "verification time", "stack depth")
    lines = [line.strip() for line in log.splitlines() if line.strip()]
    instructions = [i for i, line in enumerate(lines) if _INSTRUCTION.match(line)]
    if instructions and instructions[-1] + 1 < len(lines):
        after = lines[instructions[-1] + 1]
        if not after.startswith(statistics):
            return after
    for line in reversed(lines):
        if not line.startswith(statistics):
            return line
    return "no reason given (empty verifier log)"


#: An instruction line of a verifier log: `2255: (61) r4 = *(u32 *)(r0 +0)`.
_INSTRUCTION = re.compile(r"\d+: \([0-9a-f]{2}\) ")


SampleHandler = Callable[[bytes], None]


class RingBuffer:
    """Polls one or more ring-buffer maps; each sample goes to its map's handler as bytes."""

    def __init__(self) -> None:
        self._ptr: int | None = None
        # ctypes callbacks must outlive the C object that calls them.
        self._callbacks: list[object] = []

    def add(self, fd: int, name: str, handler: SampleHandler) -> None:
        """Start delivering samples of the ring-buffer map `fd` (`name`) to `handler`."""
        callback = _SAMPLE_FN(self._sample_callback(handler))
        self._callbacks.append(callback)
        lib = library().bpf
        take_messages()
        if self._ptr is None:
            ptr = lib.ring_buffer__new(fd, callback, None, None)
            if not ptr:
                err = _errno()
                raise RingBufferError(
                    f"creating the ring buffer reader for map '{name}' failed: "
                    f"{errno_text(err)}" + _warnings(take_messages())
                )
            self._ptr = ptr
            return
        rc = lib.ring_buffer__add(self._ptr, fd, callback, None)
        if rc < 0:
            raise RingBufferError(
                f"adding map '{name}' to the ring buffer reader failed: {errno_text(rc)}"
                + _warnings(take_messages())
            )

    @staticmethod
    def _sample_callback(handler: SampleHandler) -> Callable[[int, int, int], int]:
        def on_sample(_ctx: int, data: int, size: int) -> int:
            # Exceptions cannot cross the C boundary; the handler is expected to queue only.
            with contextlib.suppress(Exception):
                handler(ctypes.string_at(data, size))
            return 0

        return on_sample

    def poll(self, timeout_ms: int) -> None:
        """Wait up to `timeout_ms` for a wakeup, then deliver every sample waiting; a signal
        just ends the wait early.  The programs wake the reader only when a ring is a quarter
        full (verdict.bpf.h), so what the wait did not announce is read all the same."""
        if self._ptr is None:
            return
        bpf = library().bpf
        rc = bpf.ring_buffer__poll(self._ptr, timeout_ms)
        if rc >= 0 or rc == -errno.EINTR:
            rc = bpf.ring_buffer__consume(self._ptr)
        if rc < 0:
            raise RingBufferError(f"polling the event ring buffer failed: {errno_text(rc)}")

    def free(self) -> None:
        """Release the reader; idempotent."""
        if self._ptr is not None:
            library().bpf.ring_buffer__free(self._ptr)
            self._ptr = None


class _ProgLoadOpts(ctypes.Structure):
    """struct bpf_prog_load_opts of libbpf 1.1 (bpf.h); `sz` makes newer versions accept it."""

    _fields_ = [
        ("sz", ctypes.c_size_t),
        ("attempts", ctypes.c_int),
        ("expected_attach_type", ctypes.c_int),
        ("prog_btf_fd", ctypes.c_uint32),
        ("prog_flags", ctypes.c_uint32),
        ("prog_ifindex", ctypes.c_uint32),
        ("kern_version", ctypes.c_uint32),
        ("attach_btf_id", ctypes.c_uint32),
        ("attach_prog_fd", ctypes.c_uint32),
        ("attach_btf_obj_fd", ctypes.c_uint32),
        ("fd_array", ctypes.c_void_p),
        ("func_info", ctypes.c_void_p),
        ("func_info_cnt", ctypes.c_uint32),
        ("func_info_rec_size", ctypes.c_uint32),
        ("line_info", ctypes.c_void_p),
        ("line_info_cnt", ctypes.c_uint32),
        ("line_info_rec_size", ctypes.c_uint32),
        ("log_level", ctypes.c_uint32),
        ("log_size", ctypes.c_uint32),
        ("log_buf", ctypes.c_char_p),
    ]


# `r0 = 0; exit`: the smallest program every program type accepts.
_RETURN_ZERO = struct.pack("<BBhiBBhi", 0xB7, 0, 0, 0, 0x95, 0, 0, 0)


def vmlinux_func_btf_id(name: str) -> int:
    """The BTF id of kernel function `name`, or 0 if the kernel has no such function."""
    lib = library().bpf
    take_messages()
    btf = lib.btf__load_vmlinux_btf()
    if not btf:
        raise ProbeError(f"reading the kernel's BTF failed: {errno_text(_errno())}")
    try:
        found = lib.btf__find_by_name_kind(btf, name.encode(), BTF_KIND_FUNC)
    finally:
        lib.btf__free(btf)
    return max(int(found), 0)


class LibbpfTypes(btf.TypeReader):
    """A raw BTF file (the kernel's: /sys/kernel/btf/vmlinux) as libbpf parses it, in C:
    bpfbox-run's start asks it for the LSM hooks' prototypes and the helpers' ids, where the
    compiler's own parser (btf.KernelTypes) takes a third of a second natively and many
    seconds emulated.  Use it in a `with` block: the parsed BTF is libbpf's memory, freed at
    the end."""

    def __init__(self, path: str) -> None:
        self.path = path
        lib = library().bpf
        take_messages()
        self._btf = lib.btf__parse_raw(path.encode())
        if not self._btf:
            raise btf.BtfError(
                f"libbpf cannot read `{path}` as BTF: {errno_text(_errno())}"
                + _warnings(take_messages())
            )
        self._count = int(lib.btf__type_cnt(self._btf))

    def __enter__(self) -> LibbpfTypes:
        return self

    def __exit__(self, *exc: object) -> None:
        library().bpf.btf__free(self._btf)

    def _find(self, kind: int, name: str) -> int | None:
        found = int(library().bpf.btf__find_by_name_kind(self._btf, name.encode(), kind))
        return found if found > 0 else None

    def _record(self, type_id: int) -> btf.Record:
        if not 0 <= type_id < self._count:
            raise btf.BtfError(f"corrupt BTF in `{self.path}`: type id {type_id} is out of range")
        if type_id == 0:
            return btf.Record(0, 0, 0)
        address = library().bpf.btf__type_by_id(self._btf, type_id)
        (info,) = struct.unpack("=I", ctypes.string_at(address + 4, 4))
        # libbpf checked every record's size when it parsed the file.
        size = btf.record_size(info) or btf.TYPE_SIZE
        return btf.record_at(ctypes.string_at(address, size), 0, "=")

    def _name(self, offset: int) -> str:
        name = library().bpf.btf__name_by_offset(self._btf, offset)
        if name is None:
            raise btf.BtfError(
                f"corrupt BTF in `{self.path}`: name offset {offset} is out of range"
            )
        return bytes(name).decode(errors="replace")


def probe_attach_program(prog_type: int, attach_type: int, btf_id: int) -> int:
    """Try to load a trivial program of a BTF-attached type; 0 on success, else the errno."""
    opts = _ProgLoadOpts(
        sz=ctypes.sizeof(_ProgLoadOpts), expected_attach_type=attach_type, attach_btf_id=btf_id
    )
    insns = ctypes.create_string_buffer(_RETURN_ZERO, len(_RETURN_ZERO))
    take_messages()
    fd = library().bpf.bpf_prog_load(
        prog_type, b"bpfbox_probe", b"GPL", insns, len(_RETURN_ZERO) // 8, ctypes.byref(opts)
    )
    take_messages()
    if fd < 0:
        return -int(fd)
    os.close(fd)
    return 0


def probe_map_type(map_type: int) -> int:
    """Whether the kernel can create maps of `map_type`: 1 yes, 0 no, negative errno unknown."""
    take_messages()
    rc = library().bpf.libbpf_probe_bpf_map_type(map_type, None)
    take_messages()
    return int(rc)
