#!/usr/bin/env python3
"""What bpfbox-run's log writer costs per event, on the host: decoding a ring-buffer sample
and writing its line, as text and as JSON, to /dev/null.

    bench_reader.py [--events 20000] [--distinct 1]

Complain mode reports every access: this is the reader's share of each.  `--distinct N`
cycles through N different paths (N=1: a loop's accesses, which the Reporter describes once;
N above events.DESCRIPTIONS_KEPT: a description worked out for every event).  The events
are those of the bench's complain profile (base only: no rule allows the file).

A benchmark, not a test: it prints CPU microseconds per event and asserts nothing.
"""

from __future__ import annotations

import argparse
import time

from bpfbox.contract import abi, kinds
from bpfbox.runtime import events, metadata

#: The complain profile's metadata as far as these events need it: no rule names the file.
META = metadata.parse(
    {
        "version": abi.METADATA_VERSION,
        "policy": "bench_complain.bpfbox",
        "profile": "/mnt/e2e/bin/bench",
        "name": "bench",
        "task_state_layout": abi.TASK_STATE_LAYOUT,
        "contexts": [],
        "rules": [],
        "hooks": [],
    },
    "bench_complain.bpf.o",
)


def sample(path: str) -> bytes:
    """A would-be denial of reading `path`, as the program sends it."""
    values = {f.name: 0 for f in abi.EVENT_FIELDS}
    values.update(
        kind=abi.EventKind.COMPLAIN,
        rule_kind=kinds.REGISTRY["fs"].number,
        pid=4242,
        tgid=4242,
        flags=abi.FS_FLAGS["read"],
        rule=abi.NO_RULE,
        reason=abi.Reason.NO_RULE,
        comm=b"bench",
        object=path.encode(),
    )
    return abi.EVENT_STRUCT.pack(*(values[f.name] for f in abi.EVENT_FIELDS))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--distinct", type=int, default=1)
    args = parser.parse_args(argv)
    samples = [sample(f"/mnt/e2e/bench/file{n}") for n in range(args.distinct)]
    with open("/dev/null", "w") as sink:
        for json_lines in (False, True):
            reporter = events.Reporter(sink, json_lines=json_lines)
            started = time.process_time()
            for n in range(args.events):
                reporter.event(META, events.decode(samples[n % len(samples)]))
            per_event = (time.process_time() - started) / args.events * 1e6
            print(f"{'json' if json_lines else 'text'}: {per_event:.1f} µs per event")


if __name__ == "__main__":
    main()
