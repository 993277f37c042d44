"""What bpfboxc must do with any input, checked: the fuzzer's oracle.

`Oracle.check(text)` compiles `text` with bpfboxc in-process (the real CLI's click command,
with the golden sysroot and BTF fixture) and asserts, raising `Violation` otherwise:

- the exit status is 0, 1 or 2 (70 is a crash: a bug), and no traceback was printed;
- an input under 100 KB compiles in under 2 s of CPU time (the machine may be busy), in a
  fresh process (a time over the limit measured here is confirmed in one);
- a second run gives the same status and byte-identical output;
- accepted output compiles with clang (`contract.abi.CLANG_FLAGS`).  Each distinct output
  is checked once: clang's front end (`-fsyntax-only`, everything the pasted text can break)
  on every one, and the full build on every `full_build_every`-th, chosen by hash so that
  runs are reproducible.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from bpfbox.compiler.cli import main
from bpfbox.runtime.build import CLANG_FLAGS

from .policies import GOLDEN, MAX_INPUT_BYTES, workspace

FIXTURE_BTF = GOLDEN.parent / "fixtures" / "btf" / "tiny.btf"
TIME_LIMIT_S = 2.0
ALLOWED_STATUSES = (0, 1, 2)


#: Runs bpfboxc once with the arguments given and prints the CPU time the compile took.
_TIMED_RUN = """
import os, sys, time
from bpfbox.compiler.cli import main
sys.stdout = open(os.devnull, "w")  # the program bpfboxc prints: only the time is read
start = time.process_time()
try:
    main(sys.argv[1:], standalone_mode=False)
except SystemExit:
    pass
print(time.process_time() - start, file=sys.__stdout__)
"""


class Violation(AssertionError):
    """bpfboxc broke one of the oracle's rules for an input."""


@dataclass
class Run:
    status: int
    stdout: str
    stderr: str
    seconds: float


@dataclass
class Oracle:
    """Checks inputs in `directory` (which gets the fragments includes name)."""

    directory: Path
    full_build_every: int = 20
    # Standard output and error of the in-process runs: the same two objects every time.
    # click caches a wrapper for each sys.stdout object it writes to and never drops it, so a
    # new pair per run (as click.testing.CliRunner makes) keeps every run's output alive:
    # gigabytes over a long fuzz run.
    stdout: io.StringIO = field(default_factory=io.StringIO)
    stderr: io.StringIO = field(default_factory=io.StringIO)
    checked_outputs: set[str] = field(default_factory=set)
    statuses: dict[int, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        workspace(self.directory)
        self.policy = self.directory / "fuzz.bpfbox"

    def check(self, text: str) -> int:
        """Check one input; return bpfboxc's exit status."""
        self.policy.write_bytes(text.encode("utf-8", errors="surrogatepass"))
        first = self._run()
        size = self.policy.stat().st_size
        if size < MAX_INPUT_BYTES and first.seconds > TIME_LIMIT_S:
            seconds = self._seconds_in_a_fresh_process()
            if seconds > TIME_LIMIT_S:
                raise Violation(f"{size}-byte input took {seconds:.2f} s of CPU time")
        second = self._run()
        if (second.status, second.stdout, second.stderr) != (
            first.status,
            first.stdout,
            first.stderr,
        ):
            raise Violation("a second run gave a different result")
        if first.status == 0:
            self._clang(first.stdout)
        self.statuses[first.status] = self.statuses.get(first.status, 0) + 1
        return first.status

    def _run(self) -> Run:
        arguments = self._arguments()
        for stream in (self.stdout, self.stderr):
            stream.seek(0)
            stream.truncate()
        # CPU time, not wall time: the machine may be busy with other work.
        start = time.process_time()
        status = None
        with contextlib.redirect_stdout(self.stdout), contextlib.redirect_stderr(self.stderr):
            try:
                main.main([*arguments, str(self.policy)], prog_name="bpfboxc")
            except SystemExit as exit_:
                status = exit_.code
            except Exception as error:
                raise Violation(f"bpfboxc raised {error!r}") from error
        seconds = time.process_time() - start
        run = Run(status, self.stdout.getvalue(), self.stderr.getvalue(), seconds)
        for stream in (run.stdout, run.stderr):
            if "Traceback" in stream or "internal error" in stream:
                raise Violation(f"bpfboxc crashed:\n{run.stderr}")
        if run.status not in ALLOWED_STATUSES:
            raise Violation(f"exit status {run.status}:\n{run.stderr}")
        return run

    def _seconds_in_a_fresh_process(self) -> float:
        """bpfboxc's CPU time on the current input, as a command run alone would spend it.

        The in-process time is a screen: after thousands of inputs this process has a large
        heap, whose garbage collections can bill a compile several times its own cost."""
        result = subprocess.run(
            [sys.executable, "-c", _TIMED_RUN, *self._arguments(), str(self.policy)],
            capture_output=True,
            text=True,
            check=True,
        )
        return float(result.stdout)

    def _arguments(self) -> list[str]:
        return ["--emit", "c", "--sysroot", str(GOLDEN / "root"), "--btf", str(FIXTURE_BTF)]

    def _clang(self, c_source: str) -> None:
        digest = hashlib.sha256(c_source.encode()).hexdigest()
        if digest in self.checked_outputs:
            return
        self.checked_outputs.add(digest)
        source = self.directory / "fuzz.bpf.c"
        source.write_text(c_source)
        full = int(digest[:8], 16) % self.full_build_every == 0
        mode = ["-c", "-o", str(self.directory / "fuzz.bpf.o")] if full else ["-fsyntax-only"]
        result = subprocess.run(
            ["clang", *CLANG_FLAGS, "-Werror", *mode, str(source)],
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise Violation(f"clang rejected the output:\n{result.stderr[:4000]}")
