"""Behaviour that depends on the kernel's structures rather than on a hook's prototype.

Run on every kernel of the matrix (`run_in_vm.py --kernel 6.12`): the same answers on each.
"""

from __future__ import annotations

import pytest
from confined import BIN, Enforcing, probe

pytestmark = [pytest.mark.vm, pytest.mark.usefixtures("installed_tree")]

LOADER = "/lib64/ld-linux-x86-64.so.2"


@pytest.fixture(scope="module")
def session():
    with Enforcing("exec_image") as running:
        yield running


def test_exec_of_a_dynamically_linked_program_maps_its_loader_without_a_rule(session):
    # The probe itself started under the policy (its loader mapped during its exec), and it
    # executes the helper, whose loader is mapped the same way (task_struct.in_execve).
    # The helper's own line (its sleep) comes first, then the probe's for the exec.
    assert probe(f"exec-with:{BIN / 'helper'}", "sleep:1") == ["ok", "ok"]


def test_the_loader_itself_is_not_granted(session):
    assert probe(f"exec:{LOADER}", f"mmap-exec:{LOADER}") == ["EPERM", "EPERM"]
