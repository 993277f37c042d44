"""SysV IPC, POSIX message queues, keys and ioctl commands (ipc, key and ioctl rules, and fs
rules on /dev/mqueue), in a real kernel: tests/e2e/policies/ipc.bpfbox grants some of each;
mediation.bpfbox (`base` and no such rule) and cat.bpfbox show what `base` alone grants."""

from __future__ import annotations

import os
import pty
import select
import subprocess
from pathlib import Path

import pytest
from confined import BIN, Enforcing, fresh_data, install_tree, probe, remove_tree, run
from timing import scaled

pytestmark = pytest.mark.vm


@pytest.fixture(scope="module", autouse=True)
def tree():
    install_tree()
    yield
    remove_tree()


@pytest.fixture(scope="module")
def session():
    fresh_data()
    with Enforcing("ipc") as running:
        yield running


def on_terminal(*ops: str) -> tuple[list[str], bytes]:
    """The probe with a new pseudo-terminal as its controlling terminal and standard input
    (opened after setsid, so that the kernel makes it the controlling one without
    TIOCSCTTY); its results, and what the terminal echoed."""
    controller, terminal = pty.openpty()
    name = os.ttyname(terminal)
    os.close(terminal)

    def become_session_leader_on_the_terminal() -> None:
        os.setsid()
        fd = os.open(name, os.O_RDWR)
        os.dup2(fd, 0)

    try:
        result = subprocess.run(
            [str(BIN / "probe"), *ops],
            preexec_fn=become_session_leader_on_the_terminal,
            capture_output=True,
            text=True,
            timeout=scaled(60),
        )
        echoed = b""
        while select.select([controller], [], [], 0.5)[0]:
            try:
                echoed += os.read(controller, 1024)
            except OSError:
                break
        return result.stdout.splitlines(), echoed
    finally:
        os.close(controller)


def legacy_tiocsti() -> bool:
    """Does TIOCSTI work without CAP_SYS_ADMIN here (6.1 yes; 6.12 as Debian builds it no)?"""
    setting = Path("/proc/sys/dev/tty/legacy_tiocsti")
    return not setting.exists() or setting.read_text().strip() == "1"


class TestSysvIpc:
    def test_shared_memory(self, session):
        ops = ["ipc-new:shm:0", "shmat:r", "shmat:rw", "ipc-stat:shm", "ipc-rm:shm"]
        assert probe(*ops) == ["ok", "ok", "EPERM", "ok", "ok"]
        events = session.wait_for(lambda e: e["rule_kind"] == "ipc" and e["object"] == "shm")
        assert events and events[0]["access"] == ["read", "write"]

    def test_semaphores(self, session):
        ops = ["ipc-new:sem:0", "semop:zero", "semop:add", "ipc-stat:sem", "ipc-rm:sem"]
        assert probe(*ops) == ["ok", "ok", "EPERM", "ok", "EPERM"]

    def test_message_queues(self, session):
        assert run("outsider", "ipc-new:msg:4242") == ["ok"]
        ops = [
            "ipc-new:msg:0",
            "ipc-get:msg:4242",
            "msgsnd",
            "msgrcv",
            "ipc-stat:msg",
            "ipc-rm:msg",
        ]
        # A receive the policy refuses skips every message: the queue looks empty.
        assert probe(*ops) == ["EPERM", "ok", "ok", "ENOMSG", "ok", "EPERM"]
        assert run("outsider", "ipc-get:msg:4242", "msgrcv", "ipc-rm:msg") == ["ok"] * 3
        assert session.wait_for_message(r"denied probe\[\d+\] ipc msg create")


class TestPosixMessageQueues:
    def test_a_queue_the_policy_names(self, session):
        assert probe("mq-open:allowed") == ["ok"]

    def test_creating_another(self, session):
        assert probe("mq-open:other") == ["EPERM"]
        assert session.wait_for_message(r"denied probe\[\d+\] create /dev/mqueue/other")

    def test_read_only(self, session):
        assert run("outsider", "mq-create:readonly") == ["ok"]
        assert probe("mq-openro:readonly", "mq-unlink:readonly") == ["ok", "EPERM"]
        assert run("outsider", "mq-unlink:readonly") == ["ok"]


class TestKeys:
    def test_create_and_search_but_not_read(self, session):
        assert probe("add-key:bpfbox-allowed", "read-key:bpfbox-allowed") == ["ok", "EPERM"]
        assert session.wait_for_message(r"denied probe\[\d+\] key read")


class TestIoctlCommands:
    def test_base_grants_isatty_and_the_window_size_only(self, session):
        ops = ["tty:isatty", "tty:tcgets", "tty:winsz", "tty:setwinsz", "tty:fionread"]
        results, _ = on_terminal(*ops)
        assert results == ["ok", "ok", "ok", "EPERM", "EPERM"]
        assert session.wait_for_message(r"denied probe\[\d+\] ioctl tiocswinsz /dev/pts/\d+")

    def test_a_named_tiocsti(self, session):
        results, echoed = on_terminal("tty:sti")
        if legacy_tiocsti():
            assert (results, echoed) == (["ok"], b"x")
        else:
            # The kernel itself refuses it without CAP_SYS_ADMIN (which no rule grants).
            assert results == ["EIO"]


class TestWithoutRules:
    """`base` alone (mediation.bpfbox) grants no IPC object, no key, and no TIOCSTI."""

    @pytest.fixture(scope="class")
    def mediation(self):
        fresh_data()
        with Enforcing("mediation") as running:
            yield running

    def test_nothing_of_it(self, mediation):
        ops = ["ipc-new:shm:0", "ipc-new:sem:0", "ipc-new:msg:0", "mq-open:x", "add-key:k"]
        assert probe(*ops) == ["EPERM"] * 5
        results, echoed = on_terminal("tty:sti", "tty:isatty")
        assert (results, echoed) == (["EPERM", "ok"], b"")
        assert mediation.wait_for_message(r"denied probe\[\d+\] ioctl tiocsti /dev/pts/\d+")


class TestCatOnATerminal:
    """`base` is enough for a dynamically linked program writing to a terminal."""

    @pytest.fixture(scope="class")
    def cat(self):
        fresh_data({"r": "hello\n", "secret": "no"})
        with Enforcing("cat") as running:
            yield running

    def test_cat_writes_to_a_terminal_without_a_denial(self, cat):
        controller, terminal = pty.openpty()
        try:
            result = subprocess.run(
                ["/usr/bin/cat", "/mnt/e2e/data/r"],
                stdin=subprocess.DEVNULL,
                stdout=terminal,
                stderr=subprocess.PIPE,
                timeout=scaled(60),
            )
            assert result.returncode == 0, result.stderr
            assert b"hello" in os.read(controller, 1024)
        finally:
            os.close(controller)
            os.close(terminal)
        # A denial after it: once its event is in, every earlier event is too.
        subprocess.run(["/usr/bin/cat", "/mnt/e2e/data/secret"], capture_output=True)
        assert cat.wait_for_message(r"denied cat\[\d+\] read .*secret")
        denials = [e["message"] for e in cat.events() if e["event"] == "deny"]
        assert len(denials) == 1, denials
