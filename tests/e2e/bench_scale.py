#!/usr/bin/env python3
"""The cost of a policy's size: compile and load policies of N generated fs rules.

    bench_scale.py compile [--counts 2,100,1000,10000] [--contexts]    (host)
    bench_scale.py load                                                (VM, as root)

`compile` writes the policies of tests/e2e/many_rules.py under build/bench-scale, runs
bpfboxc and clang on each (after tests/e2e/prepare.py: the profile programs come from its
sysroot) and records the DFA's size, the C's size, both CPU times and the object's size.
`load` runs in the test VM (tests/vm/run_in_vm.py; the build folder is shared read-only) and
loads each object as bpfbox-run would (the hook variants of the running kernel), then reads
from the kernel, per program, the instructions the verifier processed (`verified_insns`,
Linux 5.16+) and the translated size; it prints one table with both halves.

A benchmark, not a test: times under the VM's software emulation are only comparable with
each other, and nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import re
import resource
import struct
import subprocess
import sys
import time
from pathlib import Path

import many_rules

REPO = Path(__file__).resolve().parents[2]
SYSROOT = REPO / "build" / "e2e" / "root"
RESULTS = "results.json"
#: struct bpf_prog_info (include/uapi/linux/bpf.h): the offsets of the fields read here.
PROG_INFO_SIZE = 232
JITED_LEN, XLATED_LEN, VERIFIED_INSNS = 16, 20, 216
#: The program the table shows alone: the one the issue measured (every file open).
SHOWN = "bpfbox_file_open"


def compile_all(out: Path, counts: list[int], contexts: bool) -> None:
    if not SYSROOT.is_dir():
        sys.exit(f"{SYSROOT} is missing: run `python3 tests/e2e/prepare.py` first")
    out.mkdir(parents=True, exist_ok=True)
    results = []
    for count in counts:
        name = f"rules{count}" + ("-ctx" if contexts else "")
        source = out / f"{name}.bpfbox"
        source.write_text(many_rules.policy(count, contexts))
        c_file, o_file = out / f"{name}.bpf.c", out / f"{name}.bpf.o"
        row: dict = {"name": name, "rules": count}
        compiled, row["bpfboxc_s"] = _timed(
            [sys.executable, "-m", "bpfbox.compiler", str(source), "-o", str(c_file)]
            + ["--sysroot", str(SYSROOT)]
        )
        if compiled.returncode != 0:
            row["error"] = _first_line(compiled.stderr)
            results.append(row)
            print(f"{name}: bpfboxc failed: {row['error']}")
            continue
        text = c_file.read_text()
        dfa = re.search(r"DFA of the file path globs: (\d+) states, \d+ byte classes, (\d+)", text)
        row["states"], row["stored_rows"] = (int(n) for n in dfa.groups()) if dfa else (None, None)
        row["c_kib"] = len(text.encode()) / 1024
        row["c_lines"] = text.count("\n")
        from bpfbox.contract.abi import CLANG_FLAGS

        built, row["clang_s"] = _timed(
            ["clang", *CLANG_FLAGS, "-c", str(c_file), "-o", str(o_file)]
        )
        if built.returncode != 0:
            row["error"] = "clang: " + _first_line(built.stderr)
        else:
            row["object_kib"] = o_file.stat().st_size / 1024
        results.append(row)
        print(f"{name}: {json.dumps(row)}", flush=True)
    (out / RESULTS).write_text(json.dumps(results, indent=1))


def _timed(command: list[str]) -> tuple[subprocess.CompletedProcess[str], float]:
    """Run `command`; its CPU seconds (user and system): on a shared host they vary far less
    than the time on the clock."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = subprocess.run(command, capture_output=True, text=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return result, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _first_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return next((line for line in lines if "error" in line), lines[0] if lines else "?")


def load_all(out: Path) -> None:
    from bpfbox.runtime import hooks, libbpf, metadata

    lib = libbpf.library().bpf
    lib.bpf_program__fd.restype, lib.bpf_program__fd.argtypes = ctypes.c_int, [ctypes.c_void_p]
    rows = json.loads((out / RESULTS).read_text())
    for row in rows:
        if "error" in row:
            continue
        path = str(out / f"{row['name']}.bpf.o")
        meta = metadata.read(path)
        disabled = hooks.for_running_kernel(meta.hooks).disabled
        obj = libbpf.BpfObject(path)
        try:
            for program in obj.programs():
                if program.name in disabled:
                    program.disable()
            started = time.monotonic()
            try:
                obj.load()
            except libbpf.LoadError as err:
                row["load_error"] = str(err).splitlines()[0][:160]
                if isinstance(err, libbpf.VerifierError):
                    print("\n".join(err.log.splitlines()[-40:]), flush=True)
                continue
            finally:
                row["load_s"] = time.monotonic() - started
            infos = {
                p.name: _prog_info(lib.bpf_program__fd(p._ptr))
                for p in obj.programs()
                if p.autoload
            }
        finally:
            obj.close()
        row["programs"] = len(infos)
        row["verified_total"] = sum(v for v, _ in infos.values())
        row["verified_max"] = max(v for v, _ in infos.values())
        row["verified_shown"], row["xlated_shown"] = infos.get(SHOWN, (0, 0))
        print(f"{row['name']}: loaded", flush=True)
    print_table(rows)


def _prog_info(fd: int) -> tuple[int, int]:
    """(verified instructions, translated bytes) of the loaded program `fd`."""
    from bpfbox.runtime import libbpf

    buffer = ctypes.create_string_buffer(PROG_INFO_SIZE)
    size = ctypes.c_uint32(PROG_INFO_SIZE)
    rc = libbpf.library().bpf.bpf_obj_get_info_by_fd(fd, buffer, ctypes.byref(size))
    if rc != 0:
        raise OSError(-rc, f"bpf_obj_get_info_by_fd: {libbpf.errno_text(rc)}")
    (verified,) = struct.unpack_from("<I", buffer, VERIFIED_INSNS)
    (xlated,) = struct.unpack_from("<I", buffer, XLATED_LEN)
    return verified, xlated


def print_table(rows: list[dict]) -> None:
    columns = (
        ("rules", "rules", "{}"),
        ("DFA states", "states", "{}"),
        ("stored rows", "stored_rows", "{}"),
        ("C KiB", "c_kib", "{:.0f}"),
        ("bpfboxc CPU s", "bpfboxc_s", "{:.2f}"),
        ("clang CPU s", "clang_s", "{:.2f}"),
        (".o KiB", "object_kib", "{:.0f}"),
        ("load s", "load_s", "{:.1f}"),
        (f"{SHOWN[7:]} verified", "verified_shown", "{}"),
        (f"{SHOWN[7:]} xlated B", "xlated_shown", "{}"),
        ("max verified", "verified_max", "{}"),
        ("all verified", "verified_total", "{}"),
    )
    print("| " + " | ".join(title for title, _, _ in columns) + " |")
    print("|" + "---:|" * len(columns))
    for row in rows:
        cells = [fmt.format(row[key]) if key in row else "-" for _, key, fmt in columns]
        print("| " + " | ".join(cells) + " |")
        for problem in ("error", "load_error"):
            if problem in row:
                print(f"|   {row['name']}: {row[problem]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("step", choices=("compile", "load", "table"))
    parser.add_argument("--counts", default="2,100,1000,10000")
    parser.add_argument("--contexts", action="store_true", help="some rules in a #[func]")
    parser.add_argument("--out", type=Path, default=REPO / "build" / "bench-scale")
    args = parser.parse_args()
    if args.step == "compile":
        compile_all(args.out, [int(n) for n in args.counts.split(",")], args.contexts)
        print_table(json.loads((args.out / RESULTS).read_text()))
    elif args.step == "load":
        load_all(args.out)
    else:
        print_table(json.loads((args.out / RESULTS).read_text()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
