"""Replacing a loaded profile shares its task state only with a program that lays it out the
same way (the kernel side, map shapes, is tested in the VM: tests/e2e/test_lifetime.py)."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from bpfbox.contract import abi
from bpfbox.runtime import loader, metadata, pins

from .test_runtime_metadata import VALID


def pinned(layout: int) -> pins.Record:
    return pins.Record(
        name="mylogin",
        policy="mylogin.bpfbox",
        program="/sbin/mylogin",
        source="/x/mylogin.bpf.o",
        mode="detached",
        loaded_since="2026-11-29T00:00:00Z",
        owner="1-1",
        task_state_layout=layout,
    )


def test_the_same_layout_is_shared():
    meta = metadata.parse(VALID, "new.bpf.o")
    loader.check_layout(pinned(abi.TASK_STATE_LAYOUT), meta, "new.bpf.o")


@pytest.mark.parametrize(("layout", "said"), [(abi.TASK_STATE_LAYOUT + 1, None), (0, "unknown")])
def test_another_or_an_unknown_layout_is_refused(layout, said):
    meta = metadata.parse(VALID, "new.bpf.o")
    with pytest.raises(loader.LoadFailure) as failure:
        loader.check_layout(pinned(layout), meta, "new.bpf.o")
    message = str(failure.value)
    assert message == (
        f"cannot replace the loaded profile mylogin: its per-task state has layout version "
        f"{said or layout}, new.bpf.o's has {abi.TASK_STATE_LAYOUT}"
    )
    assert "bpfbox unload mylogin" in failure.value.help


def test_records_carry_the_layout_and_older_records_read_as_unknown():
    record = pinned(abi.TASK_STATE_LAYOUT)
    assert pins.Record.from_json(record.to_json()) == record
    fields = json.loads(record.to_json())
    del fields["task_state_layout"]
    assert pins.Record.from_json(json.dumps(fields)) == replace(record, task_state_layout=0)
