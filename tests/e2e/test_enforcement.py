"""Every rule kind and every semantic rule of docs/language.md, in a real kernel.

Each class loads one compiled policy from tests/e2e/policies with `bpfbox-run`, runs the probe
(tests/e2e/probe.c) or another program under it, and checks what the kernel answered.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
from confined import (
    BIN,
    DATA,
    E2E,
    Enforcing,
    fresh_data,
    probe,
    run,
    start_sleeping,
    start_target,
)
from timing import scaled

pytestmark = [pytest.mark.vm, pytest.mark.usefixtures("installed_tree")]


def enforcing(*names: str, files: dict | None = None, dirs: tuple = (), options: tuple = ()):
    """A class-scoped fixture: fresh data files, then the policies enforced for the class."""

    @pytest.fixture(scope="class")
    def session(self):
        fresh_data(files, dirs)
        with Enforcing(*names, options=options) as running:
            yield running

    return session


def d(name: str) -> str:
    return str(DATA / name)


class TestFsFlags:
    session = enforcing(
        "fs_flags",
        files={n: n for n in ("r", "w", "a", "rw", "g", "s", "rm1", "l", "i", "t")},
        dirs=("dir", "rmdir"),
    )

    def test_read(self, session):
        assert probe(f"open:r:{d('r')}", f"open:w:{d('r')}", f"open:r:{d('w')}") == [
            "ok",
            "EPERM",
            "EPERM",
        ]

    def test_write_implies_append_but_not_read(self, session):
        assert probe(f"open:w:{d('w')}", f"open:a:{d('w')}", f"open:rw:{d('w')}") == [
            "ok",
            "ok",
            "EPERM",
        ]

    def test_append_only(self, session):
        assert probe(f"open:a:{d('a')}", f"open:w:{d('a')}", f"open:r:{d('a')}") == [
            "ok",
            "EPERM",
            "EPERM",
        ]

    def test_read_write(self, session):
        assert probe(f"open:rw:{d('rw')}", f"open:ra:{d('rw')}") == ["ok", "ok"]

    def test_getattr_alone_and_implied_by_content_access(self, session):
        ops = [f"stat:{d('g')}", f"stat:{d('r')}", f"fstat:{d('r')}", f"stat:{d('w')}"]
        assert probe(*ops, f"stat:{d('s')}", f"open:r:{d('g')}") == [
            "ok",
            "ok",
            "ok",
            "ok",
            "EPERM",
            "EPERM",
        ]

    def test_setattr(self, session):
        ops = [f"chmod:{d('s')}:600", f"chown:{d('s')}:-1:-1", f"utime:{d('s')}"]
        ops += [f"chmod:{d('r')}:600", f"utime:{d('r')}"]
        assert probe(*ops) == ["ok", "ok", "ok", "EPERM", "EPERM"]

    def test_truncate_needs_write(self, session):
        assert probe(f"truncate:{d('w')}", f"truncate:{d('a')}") == ["ok", "EPERM"]

    def test_create(self, session):
        ops = [f"create:{d('new1')}", f"mkdir:{d('newdir')}", f"symlink:r:{d('newlink')}"]
        ops += [f"create:{d('other')}", f"mkdir:{d('otherdir')}"]
        assert probe(*ops) == ["ok", "ok", "ok", "EPERM", "EPERM"]

    def test_rm(self, session):
        ops = [f"unlink:{d('rm1')}", f"rmdir:{d('rmdir')}", f"unlink:{d('r')}"]
        assert probe(*ops) == ["ok", "ok", "EPERM"]

    def test_link(self, session):
        ops = [f"link:{d('l')}:{d('linked')}", f"link:{d('r')}:{d('new-link')}"]
        assert probe(*ops) == ["ok", "EPERM"]

    def test_ioctl(self, session):
        assert probe(f"ioctl:{d('i')}", f"ioctl:{d('r')}") == ["ok", "EPERM"]

    def test_directory_listing_is_read(self, session):
        assert probe(f"readdir:{d('dir')}", f"readdir:{DATA}") == ["ok", "EPERM"]

    def test_exec_and_executable_mappings(self, session):
        results = probe(f"exec:{BIN / 'outsider'}", f"exec-with:{BIN / 'helper'}", "sleep:1")
        assert results == ["EPERM", "ok", "ok"]
        assert probe(f"mmap-exec:{BIN / 'helper'}", f"mmap-exec:{d('r')}") == ["ok", "EPERM"]

    def test_denials_name_the_access_and_the_policy(self, session):
        probe(f"open:w:{d('r')}")
        events = session.wait_for(lambda e: e["event"] == "deny" and e["object"] == d("r"))
        assert events, session.stderr
        assert events[0]["access"] == ["write"]
        assert events[0]["reason"] == "no_rule"
        line = session.wait_for_message(rf"denied probe\[\d+\] write {re.escape(d('r'))}")
        assert "fs_flags.bpfbox" in line

    def test_processes_outside_the_profile_are_not_affected(self, session):
        assert run("outsider", f"open:w:{d('r')}", f"stat:{d('r')}") == ["ok", "ok"]


class TestDenyAndGlobs:
    session = enforcing(
        "deny_globs",
        files={"plain": "", "secret": "", "secret2": "", "both": "", "sub/x": ""},
        dirs=(),
    )

    def test_deny_overrides_allow(self, session):
        ops = [f"open:r:{d('plain')}", f"open:r:{d('sub/x')}", f"open:r:{d('secret')}"]
        assert probe(*ops, f"open:r:{d('secret2')}") == ["ok", "ok", "EPERM", "EPERM"]

    def test_deny_of_one_flag_leaves_the_others(self, session):
        assert probe(f"open:r:{d('both')}", f"open:w:{d('both')}") == ["ok", "EPERM"]
        events = session.wait_for(lambda e: e["object"] == d("both") and e["event"] == "deny")
        assert events and events[0]["reason"] == "denied_by_rule"
        assert events[0]["rule"]["line"] == 7

    def test_globs(self, session):
        glob = E2E / "glob"
        for name in ("a.txt", "x/a.txt", "deep", "x/y/deep", "ab", "cb", "abc", "x.conf", "z.conf"):
            (glob / name).parent.mkdir(parents=True, exist_ok=True)
            (glob / name).write_text("")
        allowed = ["a.txt", "deep", "x/y/deep", "ab", "x.conf"]
        refused = ["x/a.txt", "cb", "abc", "z.conf"]
        assert probe(*(f"open:w:{glob / n}" for n in allowed)) == ["ok"] * len(allowed)
        assert probe(*(f"open:w:{glob / n}" for n in refused)) == ["EPERM"] * len(refused)


class TestTricks:
    """Symlinks, hard links, /proc/self/fd, directory fds, renames: no way around a rule."""

    session = enforcing("tricks", files={"allowed": "", "secret": "", "movable": ""})

    @pytest.fixture(scope="class", autouse=True)
    def links(self, session):
        os.symlink(d("secret"), d("alias-to-secret"))
        os.symlink(d("allowed"), d("alias-to-allowed"))
        os.link(d("secret"), d("hardlink-to-secret"))

    def test_symlinks_are_checked_at_their_target(self, session):
        ops = [f"open:r:{d('alias-to-allowed')}", f"open:r:{d('alias-to-secret')}"]
        assert probe(*ops) == ["ok", "EPERM"]

    def test_a_hard_link_is_its_own_path(self, session):
        assert probe(f"open:r:{d('hardlink-to-secret')}") == ["EPERM"]
        assert probe(f"link:{d('secret')}:{d('scratch-link')}") == ["EPERM"]

    def test_reopening_through_proc_self_fd_is_checked_like_the_file(self, session):
        assert probe(f"reopen-fd:{d('allowed')}") == ["ok"]

    def test_openat_with_a_directory_fd(self, session):
        ops = [f"openat-dirfd:{DATA}:allowed:r", f"openat-dirfd:{DATA}:secret:r"]
        assert probe(*ops) == ["ok", "EPERM"]

    def test_rename_needs_rm_on_the_old_and_create_on_the_new_name(self, session):
        ops = [f"rename:{d('secret')}:{d('scratch-stolen')}"]
        ops += [f"rename:{d('movable')}:{d('allowed')}"]
        ops += [f"rename:{d('movable')}:{d('scratch-moved')}"]
        assert probe(*ops) == ["EPERM", "EPERM", "ok"]
        assert (DATA / "secret").exists() and (DATA / "allowed").exists()

    def test_creating_a_link_to_read_a_secret_fails(self, session):
        ops = [f"symlink:{d('secret')}:{d('scratch-sym')}", f"open:r:{d('scratch-sym')}"]
        assert probe(*ops) == ["ok", "EPERM"]


class TestTaint:
    session = enforcing("taint", files={"free": "", "trigger": "", "after": ""})

    def test_untainted_freedom_then_the_trigger_then_enforcement(self, session):
        ops = [f"open:w:{d('free')}", f"open:r:{d('trigger')}", f"open:w:{d('free')}"]
        assert probe(*ops, f"open:r:{d('after')}") == ["ok", "ok", "EPERM", "ok"]
        taints = session.wait_for(lambda e: e["event"] == "taint")
        assert taints and taints[0]["object"] == d("trigger")

    def test_a_fresh_process_starts_untainted(self, session):
        assert probe(f"open:w:{d('free')}") == ["ok"]

    def test_children_and_threads_inherit_the_taint(self, session):
        ops = [f"open:r:{d('trigger')}", "fork", f"open:w:{d('free')}"]
        assert probe(*ops) == ["ok", "EPERM", "ok"]
        ops = [f"open:r:{d('trigger')}", "thread", f"open:w:{d('free')}"]
        assert probe(*ops) == ["ok", "EPERM", "ok"]

    def test_a_taint_in_a_child_does_not_reach_back_to_the_parent(self, session):
        ops = ["fork", f"open:r:{d('trigger')}", f"open:w:{d('free')}"]
        assert probe(*ops) == ["ok", "EPERM", "ok"]
        assert probe(f"open:w:{d('free')}") == ["ok"]


class TestInheritance:
    session = enforcing("inherit", files={"r": "", "secret": ""})

    def test_fork_thread_and_exec_stay_confined(self, session):
        assert probe("fork", f"open:r:{d('secret')}", f"open:r:{d('r')}") == ["EPERM", "ok", "ok"]
        assert probe("thread", f"open:r:{d('secret')}") == ["EPERM", "ok"]
        helper = f"exec-with:{BIN / 'helper'}"
        assert probe(helper, f"open:r:{d('secret')}", f"open:r:{d('r')}") == ["EPERM", "ok", "ok"]

    def test_symlinks_and_hard_links_to_the_program_are_the_program(self, session):
        os.symlink(BIN / "probe", E2E / "probe-symlink")
        os.link(BIN / "probe", E2E / "probe-hardlink")
        for alias in ("probe-symlink", "probe-hardlink"):
            assert run(E2E / alias, f"open:r:{d('secret')}") == ["EPERM"], alias

    def test_the_same_program_under_another_inode_is_not(self, session):
        assert run("outsider", f"open:r:{d('secret')}") == ["ok"]


class TestNet:
    session = enforcing("net")

    def test_families_and_operations(self, session):
        assert probe("socket:unix:stream", "socket:inet6:stream", "socket:inet:dgram") == [
            "ok",
            "ok",
            "ok",
        ]
        assert probe("sock:a:inet6:stream", "bind:a:0") == ["ok", "EPERM"]
        assert probe("sock:a:inet:stream", "bind:a:0", "listen:a") == ["ok", "EPERM", "EPERM"]

    def test_a_whole_unix_conversation(self, session):
        sock = d("sock")
        ops = ["sock:s:unix:stream", f"bind:s:{sock}", "listen:s", "sock:c:unix:stream"]
        ops += ["connect:c:@s", "accept:s:n", "send:c", "recv:n", "shutdown:c"]
        assert probe(*ops) == ["ok"] * len(ops)

    def test_inet_send_without_recv(self, session):
        ops = ["sock:u:inet:dgram", "connect:u:9", "send:u", "recv:u"]
        assert probe(*ops) == ["ok", "ok", "ok", "EPERM"]
        events = session.wait_for(lambda e: e["rule_kind"] == "net" and e["access"] == ["recv"])
        assert events and events[0]["family"] == "inet" and events[0]["event"] == "deny"


class TestSignals:
    session = enforcing("signal")

    def test_self(self, session):
        assert probe("kill-self:USR1", "kill-self:USR2") == ["ok", "EPERM"]

    def test_by_target_and_signal(self, session):
        target, other = start_target("target"), start_target("target2")
        try:
            ops = [f"kill:{target.pid}:0", f"kill:{target.pid}:KILL", f"kill:{other.pid}:TERM"]
            # Signal 64 (SIGRTMAX) has no name in the language: denied whoever the target is.
            assert probe(f"kill:{target.pid}:64") == ["EPERM"]
            assert session.wait_for_message(
                rf"denied probe\[\d+\] signal 64 to .*\[{target.pid}\] \(no rule in signal\.bpfbox"
            )
            assert probe(*ops, f"kill:{target.pid}:TERM") == ["ok", "EPERM", "EPERM", "ok"]
            assert target.wait(timeout=scaled(10)) == -15
        finally:
            for process in (target, other):
                process.kill()
                process.wait()


class TestPtraceAndProc:
    session = enforcing("ptrace_proc")

    def test_ptrace_read_and_attach_by_target(self, session):
        readable, attachable = start_target("target"), start_target("target2")
        outsider = start_target("outsider")
        try:
            assert probe(f"ptrace-read:{readable.pid}", f"ptrace-attach:{readable.pid}") == [
                "ok",
                "EPERM",
            ]
            assert probe(f"ptrace-attach:{attachable.pid}") == ["ok"]
            assert probe(f"ptrace-read:{outsider.pid}", f"ptrace-attach:{outsider.pid}") == [
                "EPERM",
                "EPERM",
            ]
        finally:
            for process in (readable, attachable, outsider):
                process.kill()
                process.wait()

    def test_proc_entries_by_target(self, session):
        target, outsider = start_target("target"), start_target("outsider")
        try:
            ops = [f"open:r:/proc/{target.pid}/status", f"open:r:/proc/{outsider.pid}/status"]
            assert probe(*ops, "open:r:/proc/self/status") == ["ok", "EPERM", "ok"]
            assert probe(f"open:w:/proc/{target.pid}/comm") == ["EPERM"]
        finally:
            for process in (target, outsider):
                process.kill()
                process.wait()

    def test_changing_another_process_needs_proc_write(self, session):
        """Its nice value, I/O priority, CPU affinity, memory placement: proc `write` on its
        program, even the profile's own (`self`); the process's own threads need no rule.
        prlimit's hook is not told the target: another process's limits need a rule for
        `any`, which this policy lacks."""
        readable, writable = start_target("target"), start_target("target2")
        sibling = start_sleeping(BIN / "probe")  # confined: it runs the profile's program
        changes = ("renice", "ioprio", "setaffinity", "move-pages")
        try:
            for denied in (readable, sibling):
                ops = [f"{change}:{denied.pid}" for change in changes]
                assert probe(*ops, f"prlimit:{denied.pid}") == ["EPERM"] * 5
            ops = [f"{change}:{writable.pid}" for change in changes]
            assert probe(*ops, f"prlimit-set:{writable.pid}") == ["ok"] * 4 + ["EPERM"]
            own = [f"{change}:self" for change in (*changes, "prlimit", "prlimit-set")]
            assert probe("thread", *own) == ["ok"] * 7
            assert session.wait_for_message(
                rf"denied probe\[\d+\] proc write .*/target\[{readable.pid}\] "
                r"\(no rule in ptrace_proc\.bpfbox"
            )
        finally:
            for process in (readable, writable, sibling):
                process.kill()
                process.wait()


class TestCapabilities:
    session = enforcing("cap", files={"owned": ""})

    def test_capabilities_by_name(self, session):
        # A refused capability makes the kernel's own check fail, with the kernel's own errno.
        assert probe("cap:sys_admin", "cap:net_bind_service", f"cap:chown:{d('owned')}") == [
            "ok",
            "EACCES",
            "EPERM",
        ]
        expected = {("net_bind_service",), ("chown",)}
        assert session.wait_for_all("deny", "access", expected) >= expected

    def test_a_user_namespace_needs_a_userns_rule(self, session):
        """cap(sys_admin) is granted, userns(create) is not: the namespace is refused."""
        assert probe("unshare-user") == ["EPERM"]
        assert session.wait_for(lambda e: e["event"] == "deny" and e["rule_kind"] == "userns")


class TestAuditAndComplain:
    session = enforcing("audit", files={"r": "", "w": ""})

    def test_audit_logs_allowed_and_denied_accesses(self, session):
        assert probe(f"open:r:{d('r')}", f"open:w:{d('w')}") == ["ok", "EPERM"]
        assert session.wait_for_all("audit", "object", {d("r"), d("w")}) >= {d("r"), d("w")}
        assert session.wait_for_message(r"audit probe\[\d+\] read .*/data/r \(audit\.bpfbox:5\)")


class TestComplain:
    def test_complain_mode_denies_nothing_and_says_what_it_would_deny(self):
        fresh_data({"r": "", "w": "", "x": ""})
        with Enforcing("fs_flags", options=("--complain",)) as running:
            assert probe(f"open:w:{d('r')}", f"open:r:{d('x')}") == ["ok", "ok"]
            seen = running.wait_for_all("complain", "object", {d("r"), d("x")})
            assert seen >= {d("r"), d("x")}
            assert running.wait_for_message(r"would deny probe\[\d+\] write")

    def test_complain_mode_loses_no_event_in_a_burst(self):
        """Every access may be an event in complain mode: a burst of denied opens as fast as
        the program makes them (bench's loop) arrives whole, with no `lost` record (its ring
        buffer is abi.LEARN_RING_BYTES; enforcement's 256 KiB lost most of such a burst)."""
        burst = 20000
        fresh_data({"bench-file": "", "other": ""})
        with Enforcing("bench", options=("--complain",)) as running:
            run("bench", "open", d("other"), str(burst))
            complaints = running.wait_for_count(
                lambda e: e["event"] == "complain" and e["object"] == d("other"), burst
            )
            # At least one per open (bench also reads what it opens).
            assert len(complaints) >= burst
            assert not [e for e in running.events() if e["event"] == "lost"]


class TestReduceRepeats:
    """--reduce-repeats: an event the same as one reported in the last second is counted, not
    reported; its next report, or the line bpfbox-run writes for what is still counted when it
    stops, says how many.  The lines account for every access, whatever the timing."""

    @staticmethod
    def accounted(lines: list[dict]) -> int:
        """Accesses the lines stand for: each report is one more than its count."""
        return sum(e.get("repeats", 0) + (e["pid"] is not None) for e in lines)

    def test_denials_are_counted_exactly(self):
        stats = 300
        fresh_data({"unruled": ""})
        with Enforcing("mediation", options=("--reduce-repeats",)) as running:
            assert probe(*[f"stat:{d('unruled')}"] * stats) == ["EPERM"] * stats
            running.wait_for(lambda e: e.get("object") == d("unruled"))
        lines = [e for e in running.events() if e.get("object") == d("unruled")]
        assert {(e["event"], tuple(e["access"])) for e in lines} == {("deny", ("getattr",))}
        assert self.accounted(lines) == stats, lines
        assert len(lines) < stats / 2, lines

    def test_a_complain_burst_makes_a_few_lines(self):
        burst = 20000
        fresh_data({"bench-file": "", "other": ""})
        with Enforcing("bench", options=("--complain", "--reduce-repeats")) as running:
            run("bench", "open", d("other"), str(burst))
            running.wait_for(lambda e: e.get("object") == d("other"))
        events = running.events()
        lines = [e for e in events if e.get("object") == d("other")]
        # Each open is reported, and so is each read of what it opened.
        assert self.accounted(lines) % burst == 0 and self.accounted(lines) >= burst, lines
        assert len(lines) < 100, lines
        assert not [e for e in events if e["event"] == "lost"]


class TestTwoProfiles:
    session = enforcing("inherit", "other", files={"r": "", "w": ""})

    def test_each_profile_applies_its_own_policy(self, session):
        assert probe(f"open:r:{d('r')}", f"open:w:{d('w')}") == ["ok", "EPERM"]
        assert probe(f"open:r:{d('r')}", f"open:w:{d('w')}", program="probe-other") == [
            "EPERM",
            "ok",
        ]

    def test_a_rule_for_any_process_allows_setting_another_process_limits(self, session):
        """probe-other's policy has `proc(any, write)`, not `read`."""
        target = start_target()
        try:
            ops = [f"prlimit-set:{target.pid}", f"prlimit:{target.pid}"]
            assert probe(*ops, program="probe-other") == ["ok", "EPERM"]
            assert probe(*ops) == ["EPERM", "EPERM"]  # inherit.bpfbox has no proc rule
        finally:
            target.kill()
            target.wait()


#: TestOverlayfs' lower files that its policy lets the probe change through the overlay.
LOWER_CHANGED = ("lower-written", "lower-truncated", "lower-chmod", "lower-removed", "lower-moved")


def mount_overlay(layers: Path, merged: Path) -> None:
    """An overlay at `merged` of lower, upper and work directories in `layers`; the lower one
    holds "allowed", "secret", LOWER_CHANGED and the directory "lower-dir"."""
    for path in (layers / "lower" / "lower-dir", layers / "upper", layers / "work", merged):
        path.mkdir(parents=True, exist_ok=True)
    for name in ("allowed", "secret", *LOWER_CHANGED):
        (layers / "lower" / name).write_text("lower")
    options = f"lowerdir={layers}/lower,upperdir={layers}/upper,workdir={layers}/work"
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o", options, str(merged)], check=True)


class TestOverlayfs:
    """Containers run on overlayfs: its internal second open must neither deny nor allow, and
    its copy-ups for an allowed change must not be denied."""

    @pytest.fixture(scope="class")
    def session(self):
        fresh_data()
        ovl = E2E / "ovl"
        mount_overlay(ovl, ovl / "merged")
        try:
            with Enforcing("overlay") as running:
                yield running
        finally:
            subprocess.run(["umount", str(ovl / "merged")], check=False)

    def test_allowed_file_opens_and_secret_does_not(self, session):
        merged = E2E / "ovl" / "merged"
        ops = [f"open:r:{merged / 'allowed'}", f"stat:{merged / 'allowed'}"]
        assert probe(*ops, f"open:r:{merged / 'secret'}") == ["ok", "ok", "EPERM"]

    def test_the_real_layers_are_not_a_way_around(self, session):
        assert probe(f"open:r:{E2E / 'ovl' / 'lower' / 'secret'}") == ["EPERM"]

    def test_a_new_file(self, session):
        merged = E2E / "ovl" / "merged"
        assert probe(f"create:{merged / 'upper-new'}", f"open:w:{merged / 'upper-new'}") == [
            "ok",
            "ok",
        ]

    def test_changing_a_lower_file_copies_it_up(self, session):
        """Overlayfs copies a lower file (and its directory) up with its mounter's credentials:
        in a work directory only CAP_DAC_OVERRIDE enters, setting trusted.overlay.* attributes
        (CAP_SYS_ADMIN), owner and times, on paths no rule names.  That work, for an allowed
        change at the overlay's path, is the overlay's, not the process's."""
        ovl = E2E / "ovl"
        merged = ovl / "merged"
        ops = [
            f"open:w:{merged / 'lower-written'}",
            f"truncate:{merged / 'lower-truncated'}",
            f"chmod:{merged / 'lower-chmod'}:600",
            f"create:{merged / 'lower-dir' / 'new'}",
            f"unlink:{merged / 'lower-removed'}",
            f"rename:{merged / 'lower-moved'}:{merged / 'lower-dir' / 'moved'}",
        ]
        assert probe(*ops) == ["ok"] * len(ops)
        assert (ovl / "upper" / "lower-written").read_text() == "lower"
        assert (ovl / "upper" / "lower-dir" / "new").exists()
        assert all((ovl / "lower" / name).read_text() == "lower" for name in LOWER_CHANGED)

    def test_the_overlay_s_capabilities_stay_its_own(self, session):
        """Once the overlay has worked for it, the process's own use of a capability is still
        its own: checked against its rules."""
        merged = E2E / "ovl" / "merged"
        assert probe(f"open:w:{merged / 'lower-written'}", "cap:sys_admin") == ["ok", "EPERM"]

    def test_an_opaque_directory_hides_the_lower_one(self, session):
        """A path walk makes overlayfs read its layers' trusted.overlay.* attributes, which
        takes its mounter's CAP_SYS_ADMIN: taken for the process's (refused), it failed the
        walk with EPERM, where a directory removed and made again (opaque) hides the removed
        one's files.  The overlay is mounted afresh, so the walk is the first one."""
        layers = E2E / "ovl-opaque"
        (layers / "lower" / "dir").mkdir(parents=True, exist_ok=True)
        (layers / "lower" / "dir" / "removed").write_text("lower")
        (layers / "upper" / "dir").mkdir(parents=True, exist_ok=True)
        os.setxattr(layers / "upper" / "dir", "trusted.overlay.opaque", b"y")
        merged = E2E / "ovl" / "opaque"
        mount_overlay(layers, merged)
        try:
            assert probe(f"stat:{merged / 'dir' / 'removed'}", f"stat:{merged / 'allowed'}") == [
                "ENOENT",
                "ok",
            ]
        finally:
            subprocess.run(["umount", str(merged)], check=False)

    def test_an_overlay_in_another_s_lower_layers(self, session):
        """An overlay among another's lower layers looks names up and reads its files for the
        outer one with its own mounter's credentials: that work is the overlays', not the
        process's.  Its opaque directory hides the lower one's file (the walk failed with
        EPERM when the inner overlay's CAP_SYS_ADMIN was taken for the process's), and a file
        of it is copied up to the outer overlay's upper layer."""
        layers = E2E / "ovl-nested"
        (layers / "lower" / "dir").mkdir(parents=True, exist_ok=True)
        (layers / "lower" / "dir" / "removed").write_text("lower")
        (layers / "lower" / "inner-written").write_text("lower")
        for name in ("upper/dir", "work", "inner", "outer-upper", "outer-work"):
            (layers / name).mkdir(parents=True, exist_ok=True)
        os.setxattr(layers / "upper" / "dir", "trusted.overlay.opaque", b"y")
        inner, outer = layers / "inner", E2E / "ovl" / "nested"
        outer.mkdir(exist_ok=True)
        mounts = [
            (inner, f"lowerdir={layers}/lower,upperdir={layers}/upper,workdir={layers}/work"),
            (outer, f"lowerdir={inner},upperdir={layers}/outer-upper,workdir={layers}/outer-work"),
        ]
        for point, options in mounts:
            subprocess.run(["mount", "-t", "overlay", "overlay", "-o", options, point], check=True)
        try:
            ops = [f"stat:{outer / 'dir' / 'removed'}", f"open:w:{outer / 'inner-written'}"]
            assert probe(*ops) == ["ENOENT", "ok"]
            assert (layers / "outer-upper" / "inner-written").read_text() == "lower"
            assert (layers / "lower" / "inner-written").read_text() == "lower"
        finally:
            for point, _ in reversed(mounts):
                subprocess.run(["umount", point], check=False)

    def test_no_copy_up_without_a_rule(self, session):
        ovl = E2E / "ovl"
        assert probe(f"open:w:{ovl / 'merged' / 'secret'}") == ["EPERM"]
        assert not (ovl / "upper" / "secret").exists()


class TestBaseWithCat:
    """/usr/bin/cat (on the VM's overlay /usr) starts with `base` and reads only what it may."""

    session = enforcing("cat", files={"r": "hello from r\n", "secret": "no"})

    def test_cat_reads_the_allowed_file(self, session):
        result = subprocess.run(
            ["/usr/bin/cat", d("r")],
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=scaled(60),
        )
        assert (result.returncode, result.stdout) == (0, "hello from r\n"), result.stderr

    def test_cat_cannot_read_another(self, session):
        result = subprocess.run(
            ["/usr/bin/cat", d("secret")],
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=scaled(60),
        )
        assert result.returncode == 1
        assert "Operation not permitted" in result.stderr
        assert session.wait_for_message(r"denied cat\[\d+\] read .*secret")


class TestSeedExample:
    """The seed's policy, with #[func]: shadow only inside check_password() and add_user()."""

    @pytest.fixture(scope="class")
    def session(self):
        fresh_data()
        etc = E2E / "etc"
        etc.mkdir(exist_ok=True)
        (etc / "passwd").write_text("root:x:0:0\nalice:x:1000:1000\n")
        (etc / "shadow").write_text("root:*:1\nalice:*:1\n")
        with Enforcing("mylogin") as running:
            yield running

    @staticmethod
    def mylogin(*args: str) -> list[str]:
        env = {"MYLOGIN_PASSWD": str(E2E / "etc" / "passwd")}
        env["MYLOGIN_SHADOW"] = str(E2E / "etc" / "shadow")
        return run("mylogin", *args, env=env)

    def test_check_password_may_read_both(self, session):
        shadow = E2E / "etc" / "shadow"
        assert f"read {shadow}: ok" in self.mylogin("check", "alice")

    def test_reading_shadow_outside_the_functions_is_denied(self, session):
        shadow = E2E / "etc" / "shadow"
        assert self.mylogin("peek") == [f"read {shadow}: EPERM"]
        line = session.wait_for_message(r"denied mylogin\[\d+\] read .*/etc/shadow")
        assert "mylogin.bpfbox:7 allows it only inside check_password" in line, line

    def test_add_user_may_append(self, session):
        out = self.mylogin("add", "bob")
        assert f"append {E2E / 'etc' / 'shadow'}: ok" in out
        assert "bob:" in (E2E / "etc" / "shadow").read_text()
