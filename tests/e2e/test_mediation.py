"""Complete mediation: access paths that go around a rule unless a hook checks them.

Each test is an escape found by attacking a confined probe with an ordinary policy
(tests/e2e/policies/mediation.bpfbox, based on `base`): the kernel must answer EPERM, or the
process must be confined, where today some path lets the access through.
"""

from __future__ import annotations

import contextlib
import os
import pty
import shutil
import socket
import subprocess
from pathlib import Path

import pytest
from confined import (
    BIN,
    DATA,
    Enforcing,
    fresh_data,
    probe,
    start_target,
)

pytestmark = [pytest.mark.vm, pytest.mark.usefixtures("installed_tree")]

FILES = {
    "appendonly": "0123456789",
    "readappend": "0123456789",
    "readonly": "0123456789",
    "userattrs": "0123456789",
    "perms": "0123456789",
    "trunc": "0123456789",
    "log": "",
    "writable": "0123456789",
    "tree/secret/file": "secret",
    "tree/open": "open",
    "unruled": "no rule names this file",
}


@pytest.fixture(scope="module")
def session():
    fresh_data(FILES)
    with Enforcing("mediation") as running:
        yield running


def kernel_at_least(major: int, minor: int) -> bool:
    release = os.uname().release.split(".")
    return (int(release[0]), int(release[1].split("-")[0])) >= (major, minor)


def d(name: str) -> str:
    return str(DATA / name)


def probe_with(*ops: str, pass_fds: tuple[int, ...] = (), stdin: int | None = None) -> list[str]:
    """The probe with inherited descriptors (and a chosen standard input)."""
    result = subprocess.run(
        [str(BIN / "probe"), *ops],
        stdin=subprocess.DEVNULL if stdin is None else stdin,
        capture_output=True,
        text=True,
        timeout=60,
        pass_fds=pass_fds,
    )
    return result.stdout.splitlines()


class TestAppendOnly:
    """`append` grants adding at the end, never rewriting what is there."""

    def test_clearing_o_append_with_fcntl(self, session):
        assert probe(f"unappend:{d('appendonly')}") == ["EPERM"]
        assert Path(d("appendonly")).read_text() == "0123456789"

    def test_punching_a_hole(self, session):
        assert probe(f"punch:{d('appendonly')}") == ["EPERM"]

    def test_shared_writable_mapping(self, session):
        assert probe(f"mmap-shared:{d('readappend')}") == ["EPERM"]
        assert Path(d("readappend")).read_text() == "0123456789"

    def test_pwritev2_at_an_offset(self, session):
        assert probe(f"noappend:{d('appendonly')}") == ["EPERM"]
        assert Path(d("appendonly")).read_text() == "0123456789"

    def test_making_a_shared_mapping_writable(self, session):
        assert probe(f"mprotect-shared:{d('readappend')}") == ["EPERM"]
        assert Path(d("readappend")).read_text() == "0123456789"

    def test_a_write_grant_allows_all_of_them(self, session):
        ops = ("unappend", "punch", "noappend", "mmap-shared", "mprotect-shared")
        results = probe(*(f"{op}:{d('writable')}" for op in ops))
        # RWF_NOAPPEND exists since Linux 6.9: older kernels refuse the flag itself.
        assert results[2] in ("ok", "EOPNOTSUPP")
        assert results[:2] + results[3:] == ["ok"] * (len(ops) - 1)
        assert Path(d("writable")).read_text().startswith("X")

    def test_copy_file_range_into_an_append_only_file(self, session):
        # The kernel itself refuses O_APPEND destinations (EBADF); bpfbox may refuse first.
        assert probe(f"copy-range:{d('readonly')}:{d('appendonly')}") in (["EPERM"], ["EBADF"])

    def test_appending_still_works(self, session):
        assert probe(f"open:a:{d('appendonly')}", f"open:ac:{d('log')}") == ["ok", "ok"]
        assert probe(f"append:{d('log')}:line") == ["ok"]
        assert Path(d("log")).read_text().endswith("line")


class TestXattrs:
    """A `read` grant does not change a file's permissions or security labels.

    POSIX ACLs reach inode_setxattr on 6.1 and inode_set_acl/inode_remove_acl on 6.2+; the
    xattr hooks' first parameter changed type in 6.3: run on both kernels.
    """

    def test_posix_acl(self, session):
        assert probe(f"setxattr:{d('readonly')}:system.posix_acl_access") == ["EPERM"]
        assert probe(f"removexattr:{d('readonly')}:system.posix_acl_access") == ["EPERM"]

    def test_posix_acl_with_setattr(self, session):
        ops = [f"setxattr:{d('perms')}:system.posix_acl_access"]
        ops += [f"removexattr:{d('perms')}:system.posix_acl_access"]
        assert probe(*ops) == ["ok", "ok"]

    def test_security_xattr(self, session):
        assert probe(f"setxattr:{d('readonly')}:security.bpfbox") == ["EPERM"]
        assert probe(f"removexattr:{d('readonly')}:security.bpfbox") == ["EPERM"]
        # `write` is not enough outside the user. namespace.
        assert probe(f"setxattr:{d('userattrs')}:trusted.bpfbox") == ["EPERM"]

    def test_user_xattr_needs_write(self, session):
        ops = [f"setxattr:{d('userattrs')}:user.bpfbox", f"setxattr:{d('readonly')}:user.bpfbox"]
        # tmpfs stores user. attributes since 6.6: on 6.1 the file system itself refuses,
        # after bpfbox allowed it.
        allowed = "ok" if kernel_at_least(6, 6) else "EOPNOTSUPP"
        assert probe(*ops) == [allowed, "EPERM"]


class TestReadlink:
    """readlink() reads a link's target: `read` on the link (proc `read` for /proc/PID links).
    Following a link during a path walk is not a readlink: the walk's end is what is checked.
    """

    @pytest.fixture(scope="class")
    def links(self, session):
        os.symlink(d("tree/open"), d("ruleless-link"))
        os.symlink(d("tree/open"), d("tree/link"))
        yield
        os.unlink(d("ruleless-link"))
        os.unlink(d("tree/link"))

    def test_a_link_without_a_rule(self, session, links):
        assert probe(f"readlink:{d('ruleless-link')}") == ["EPERM"]
        # Its target is granted: opening through the link is not reading the link.
        assert probe(f"open:r:{d('ruleless-link')}") == ["ok"]

    def test_a_link_with_read(self, session, links):
        assert probe(f"readlink:{d('tree/link')}", f"open:r:{d('tree/link')}") == ["ok", "ok"]

    def test_proc_links(self, session):
        """Its own (`base`: proc(self, read) and /proc/self itself), not another program's."""
        ops = (
            "/proc/self",
            "/proc/thread-self",
            "/proc/self/exe",
            "/proc/self/fd/1",
            "/proc/1/exe",
        )
        assert probe(*(f"readlink:{op}" for op in ops)) == ["ok"] * 4 + ["EPERM"]

    def test_a_link_on_an_overlay(self, session):
        """Overlayfs reads the link of its layer again, with the mounter's credentials, at a
        path no rule names (/mnt/e2e/layers): only the overlay's path is checked."""
        with overlay() as (merged, lower):
            ops = (f"readlink:{merged}/link", f"read:{merged}/link", f"readlink:{lower}/link")
            assert probe(*ops) == ["ok", "ok", "EPERM"]


@contextlib.contextmanager
def overlay():
    """An overlay mounted at tree/overlay (under tree's rules) over layers in /mnt/e2e/layers,
    which no rule names; its lower layer holds `file` and `link` (to `file`).  Yields the
    overlay's path and the lower layer's."""
    layers = DATA.parent / "layers"
    shutil.rmtree(layers, ignore_errors=True)
    for name in ("lower", "upper", "work"):
        (layers / name).mkdir(parents=True)
    (layers / "lower" / "file").write_text("in the lower layer")
    os.symlink("file", layers / "lower" / "link")
    merged = Path(d("tree/overlay"))
    merged.mkdir()
    options = f"lowerdir={layers}/lower,upperdir={layers}/upper,workdir={layers}/work"
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o", options, merged], check=True)
    try:
        yield merged, layers / "lower"
    finally:
        subprocess.run(["umount", merged], check=True)
        merged.rmdir()
        shutil.rmtree(layers)


class TestXattrReads:
    """Reading extended attributes needs `getattr` (implied by read, write, append, exec), as
    stat does.  tmpfs keeps `security.` attributes on every kernel: reading one it lacks is
    ENODATA once bpfbox allowed it.  POSIX ACLs reach inode_getxattr on 6.1 and inode_get_acl
    on 6.2+."""

    def test_without_getattr(self, session):
        unruled = d("unruled")
        ops = [f"getxattr:{unruled}:security.bpfbox", f"listxattr:{unruled}"]
        ops += [f"getxattr:{unruled}:system.posix_acl_access", f"stat:{unruled}"]
        assert probe(*ops) == ["EPERM"] * 4

    def test_with_read(self, session):
        ops = [f"getxattr:{d('readonly')}:security.bpfbox", f"listxattr:{d('readonly')}"]
        ops += [f"getxattr:{d('readonly')}:system.posix_acl_access"]
        assert probe(*ops) == ["ENODATA", "ok", "ENODATA"]

    def test_through_io_uring(self, session):
        """io_uring runs getxattr in its worker threads, confined like the process; with a
        registered personality the worker switches credentials, as overlayfs does for its
        own reads, and is checked all the same."""
        unruled = d("unruled")
        ops = [f"uring-getxattr:{unruled}:security.bpfbox"]
        ops += [f"uring-getxattr-as:{unruled}:security.bpfbox"]
        ops += [f"uring-getxattr-as:{d('readonly')}:security.bpfbox"]
        assert probe(*ops) == ["EPERM", "EPERM", "ENODATA"]

    def test_on_an_overlay(self, session):
        """Overlayfs reads the attribute of its layer's file again, with the mounter's
        credentials: only the overlay's path is checked."""
        with overlay() as (merged, lower):
            ops = [f"getxattr:{merged}/file:security.bpfbox", f"listxattr:{merged}/file"]
            ops += [f"getxattr:{lower}/file:security.bpfbox"]
            assert probe(*ops) == ["ENODATA", "ok", "EPERM"]


class TestStatfs:
    """A file system's statistics need `getattr` on the path given (proc `getattr` under
    /proc/PID)."""

    def test_paths(self, session):
        ops = [f"statfs:{d('readonly')}", f"statfs:{d('appendonly')}", f"statfs:{d('tree')}"]
        ops += ["statfs:/proc/self", "statfs:/proc/1", f"statfs:{DATA.parent}"]
        assert probe(*ops) == ["ok", "ok", "ok", "ok", "EPERM", "EPERM"]

    def test_on_an_overlay(self, session):
        """Overlayfs answers with a statfs of its layer's directory, at once: let through
        after the overlay's own check, and only that one."""
        with overlay() as (merged, lower):
            ops = [f"statfs:{merged}/file", f"statfs:{lower}/file", f"statfs:{merged}"]
            ops += [f"statfs:{DATA.parent}"]
            assert probe(*ops) == ["ok", "EPERM", "ok", "EPERM"]


class TestTruncateInheritedFile:
    """ftruncate() of a descriptor passed in needs `write` on its path: path_truncate checks it
    on 6.1, file_truncate (6.2+) on 6.12."""

    def test_ftruncate_of_an_inherited_descriptor(self, session):
        fd = os.open(d("readonly"), os.O_WRONLY)
        try:
            assert probe_with(f"ftruncate-fd:{fd}", pass_fds=(fd,)) == ["EPERM"]
        finally:
            os.close(fd)
        assert Path(d("readonly")).read_text() == "0123456789"

    def test_ftruncate_with_write(self, session):
        fd = os.open(d("userattrs"), os.O_WRONLY)
        try:
            assert probe_with(f"ftruncate-fd:{fd}", pass_fds=(fd,)) == ["ok"]
        finally:
            os.close(fd)


class TestInheritedSockets:
    """`send` rules hold for sockets passed in, whatever the system call writes to them."""

    @pytest.fixture
    def inet_socket(self):
        """A connected loopback TCP socket (no `net(inet, ...)` rule in the policy)."""
        with socket.create_server(("127.0.0.1", 0)) as server:
            client = socket.create_connection(server.getsockname())
            peer, _ = server.accept()
            with client, peer:
                yield client.fileno()

    def test_write_to_an_inherited_socket(self, session, inet_socket):
        assert probe_with(f"write-fd:{inet_socket}", pass_fds=(inet_socket,)) == ["EPERM"]

    def test_sendfile_to_an_inherited_socket(self, session, inet_socket):
        op = f"sendfile-fd:{inet_socket}:{d('readonly')}"
        assert probe_with(op, pass_fds=(inet_socket,)) == ["EPERM"]

    def test_read_from_an_inherited_socket(self, session, inet_socket):
        assert probe_with(f"read-fd:{inet_socket}", pass_fds=(inet_socket,)) == ["EPERM"]

    def test_a_granted_family_reads_and_writes(self, session):
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        with mine, theirs:
            theirs.sendall(b"x")
            fd = mine.fileno()
            ops = (f"read-fd:{fd}", f"write-fd:{fd}", f"sendfile-fd:{fd}:{d('readonly')}")
            assert probe_with(*ops, pass_fds=(fd,)) == ["ok", "ok", "ok"]
            assert theirs.recv(2) == b"x0"


class TestUnixSockets:
    def test_connecting_to_a_pathname_socket_needs_an_fs_rule(self, session):
        path = Path(d("root-only.sock"))
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
            server.bind(str(path))
            path.chmod(0o600)
            server.listen()
            assert probe("sock:a:unix:stream", f"connect:a:{path}") == ["ok", "EPERM"]

    def test_a_socket_file_granted_write(self, session):
        path = Path(d("granted.sock"))
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
            server.bind(str(path))
            server.listen()
            assert probe("sock:a:unix:stream", f"connect:a:{path}") == ["ok", "ok"]

    def test_datagrams_to_a_pathname_socket_need_an_fs_rule(self, session):
        path = Path(d("root-only-dgram.sock"))
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
            server.bind(str(path))
            assert probe("sock:a:unix:dgram", f"connect:a:{path}") == ["ok", "EPERM"]

    def test_abstract_sockets_need_only_the_net_rule(self, session):
        ops = ["sock:s:unix:stream", "bind:s:+bpfbox-test", "listen:s", "sock:c:unix:stream"]
        ops += ["connect:c:@s", "accept:s:n", "send:c", "recv:n"]
        assert probe(*ops) == ["ok"] * len(ops)


class TestIpcAndKeys:
    """Nothing in the policy grants IPC objects or keys: denied."""

    @pytest.mark.parametrize("op", ["shmget", "semget", "msgget", "mq-open:bpfbox-test"])
    def test_ipc(self, session, op):
        assert probe(op) == ["EPERM"]

    def test_keyring(self, session):
        assert probe("add-key:bpfbox-test") == ["EPERM"]


class TestUserNamespaces:
    """The policy grants userns(create) and no capability (TestCapabilities in
    test_enforcement.py: without the rule, the namespace is refused)."""

    def test_a_user_namespace_of_its_own_grants_no_capability(self, session):
        # In its own user namespace the process holds CAP_SYS_ADMIN as far as the kernel's
        # own checks go (unsharing a UTS namespace); cap rules hold in every namespace.
        assert probe("unshare-user", "cap:sys_admin") == ["ok", "EPERM"]


class TestTerminal:
    def test_base_ioctl_grant_does_not_include_tiocsti(self, session):
        controller, terminal = pty.openpty()
        try:
            assert probe_with("tiocsti:id", stdin=terminal) == ["EPERM"]
        finally:
            os.close(controller)
            os.close(terminal)


class TestLoaderTrick:
    def test_running_the_program_through_the_dynamic_loader_confines_it(self, session):
        loader = "/lib64/ld-linux-x86-64.so.2"
        result = subprocess.run(
            [loader, str(BIN / "probe"), f"open:r:{d('tree/secret/file')}", "shmget"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.stdout.splitlines() == ["EPERM", "EPERM"]

    def test_the_loaded_program_is_confined_from_its_mapping(self, session):
        """The confinement itself (the IPC denial above needs the `ipc` hooks too)."""
        loader = "/lib64/ld-linux-x86-64.so.2"
        result = subprocess.run(
            [
                loader,
                str(BIN / "probe"),
                f"open:r:{d('tree/secret/file')}",
                f"open:r:{d('readonly')}",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.stdout.splitlines() == ["EPERM", "ok"]
        session.wait_for_message(r"denied probe\[\d+\] read .*/data/tree/secret/file")


class TestDetachedPaths:
    """A path walk that cannot reach the process's root names nothing a rule can match."""

    def test_a_directory_fd_in_our_own_tree(self, session):
        fd = os.open(d("tree"), os.O_RDONLY | os.O_DIRECTORY)
        try:
            assert probe_with(f"openat-fd:{fd}:open", pass_fds=(fd,)) == ["ok"]
        finally:
            os.close(fd)

    def test_a_directory_fd_from_another_mount_namespace(self, session):
        fd = os.open(d("tree"), os.O_RDONLY | os.O_DIRECTORY)
        try:
            result = subprocess.run(
                ["unshare", "--mount", "--", str(BIN / "probe"), f"openat-fd:{fd}:open"],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=60,
                pass_fds=(fd,),
            )
            assert result.stdout.splitlines() == ["EPERM"], result.stderr
        finally:
            os.close(fd)

    def test_pipes_and_sockets_stay_usable(self, session):
        """Kernel-internal mounts keep their treatment: the probe's stdout is a pipe."""
        assert probe("sock:a:unix:stream", "close:a") == ["ok", "ok"]

    def test_a_directory_fd_into_a_lazily_unmounted_tree(self, session):
        mountpoint = Path(d("lazy"))
        mountpoint.mkdir(exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "lazy", str(mountpoint)], check=True)
        (mountpoint / "hidden").write_text("hidden")
        fd = os.open(mountpoint, os.O_RDONLY | os.O_DIRECTORY)
        try:
            subprocess.run(["umount", "-l", str(mountpoint)], check=True)
            assert probe_with(f"openat-fd:{fd}:hidden", pass_fds=(fd,)) == ["EPERM"]
        finally:
            os.close(fd)


#: The longest path bpfbox resolves, in bytes (docs/language.md, "Limits"): PATH_MAX_LEN (4,095)
#: less the byte the walk keeps for the string's end.
LONGEST_PATH = 4094


def components(prefix: str, length: int, last: str) -> list[str]:
    """Directory names, then `last`, such that `prefix` followed by them, joined with "/",
    is a path of `length` bytes."""
    room = length - len(prefix) - 1 - len(last)
    names = []
    while room > 0:
        # "/" and a name of up to 200 bytes, never leaving one byte (a "/" with no name).
        size = min(201, room) if room - 201 != 1 else 200
        names.append("x" * (size - 1))
        room -= size
    assert room == 0 and all(names), (prefix, length, last)
    return [*names, last]


def make_path(top: Path, names: list[str]) -> str:
    """Create the file top/names[0]/.../names[-1] and its directories through directory
    descriptors (the whole path may be longer than a system call takes in one string);
    returns its path."""
    fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for name in names[:-1]:
            os.mkdir(name, dir_fd=fd)
            below = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = below
        os.close(os.open(names[-1], os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd))
    finally:
        os.close(fd)
    return "/".join([str(top), *names])


class TestPathLimits:
    """Paths bpfbox cannot resolve whole are denied, whatever their resolvable end looks like
    (docs/language.md, "Limits").  The rule `data/tree{,/**}` grants every path below."""

    @pytest.fixture
    def tree(self, session):
        top = Path(d("tree/limits"))
        top.mkdir()
        yield top
        shutil.rmtree(top)

    def test_the_longest_path_resolves(self, tree):
        path = make_path(tree, components(str(tree), LONGEST_PATH, "file"))
        assert len(path) == LONGEST_PATH
        assert probe(f"open:r:{path}") == ["ok"]

    def test_one_byte_longer_is_denied(self, tree):
        path = make_path(tree, components(str(tree), LONGEST_PATH + 1, "file"))
        assert len(path) == LONGEST_PATH + 1
        assert probe(f"open:r:{path}") == ["EPERM"]

    def test_a_too_long_path_whose_end_looks_granted(self, session, tree):
        """The walk from the file up runs out of room at the directory above a granted-looking
        `/mnt/e2e/data/tree/...`: the whole path is refused, not that end of it."""
        granted = components(str(tree), LONGEST_PATH, "file")
        inner = [*str(tree).strip("/").split("/"), *granted]
        make_path(tree, ["y" * 255, *inner])
        outer = tree / ("y" * 255)
        assert probe(f"openat-dirfd:{outer}:{'/'.join(inner)}:r") == ["EPERM"]
        # A file at the granted path that end looks like is readable.
        assert probe(f"open:r:{make_path(tree, granted)}") == ["ok"]

    def test_a_deep_path_is_denied(self, tree):
        # Each directory is one step of the walk, as is each mount crossed and the last;
        # 200 directories are within the walk's 256 steps, 300 are not.
        for depth, expected in ((200, "ok"), (300, "EPERM")):
            path = make_path(tree, [f"d{depth}", *["a"] * (depth - 1), "file"])
            assert probe(f"open:r:{path}") == [expected], depth


class TestFirstMount:
    """inode_setattr and the xattr hooks have no mount: for a file outside the task's working
    directory's and root's file systems (the probe runs in the checkout, the tree is a tmpfs),
    the path is taken under the file system's first mount (docs/language.md, "Limits").
    Kernels after 6.12 chain a file system's mounts newest first and the program follows at
    most 64 of them; older kernels keep a list whose head is the first mount."""

    def test_setattr_under_the_first_of_64_mounts_and_past_them(self, session):
        chained = b"mnt_next_for_sb" in Path("/sys/kernel/btf/vmlinux").read_bytes()
        binds: list[Path] = []
        try:
            while mounts_of(DATA) < 64:
                binds.append(bind(DATA, DATA.parent.parent / "binds" / str(len(binds))))
            assert probe(f"utime:{d('perms')}") == ["ok"]
            binds.append(bind(DATA, DATA.parent.parent / "binds" / str(len(binds))))
            assert probe(f"utime:{d('perms')}") == ["EPERM" if chained else "ok"]
        finally:
            for target in reversed(binds):
                subprocess.run(["umount", str(target)], check=True)


def mounts_of(path: Path) -> int:
    """The mounts of this mount namespace that show the file system holding `path`."""
    device = os.stat(path).st_dev
    ids = f"{os.major(device)}:{os.minor(device)}"
    with open("/proc/self/mountinfo") as mountinfo:
        return sum(1 for line in mountinfo if line.split()[2] == ids)


def bind(source: Path, target: Path) -> Path:
    target.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "--bind", str(source), str(target)], check=True)
    return target


def policy_line(name: str, start: str) -> int:
    """The line of tests/e2e/policies/NAME.bpfbox that starts with `start`."""
    lines = (Path(__file__).parent / "policies" / f"{name}.bpfbox").read_text().splitlines()
    return next(number for number, line in enumerate(lines, 1) if line.startswith(start))


class TestRenameAboveADeny:
    def test_renaming_a_parent_of_a_denied_directory(self, session):
        assert probe(f"open:r:{d('tree/secret/file')}") == ["EPERM"]
        assert probe(f"rename:{d('tree')}:{d('moved')}") == ["EPERM"]
        assert probe(f"rename:{d('tree/secret')}:{d('tree/public')}") == ["EPERM"]
        assert probe(f"open:r:{d('tree/open')}") == ["ok"]

    def test_the_denial_names_the_deny_rule(self, session):
        assert probe(f"rename:{d('tree')}:{d('moved')}") == ["EPERM"]
        line = session.wait_for_message(r"denied probe\[\d+\] rm .*/data/tree ")
        deny = policy_line("mediation", '#[deny] fs("/mnt/e2e/data/tree/secret')
        assert f"mediation.bpfbox:{deny} denies a path at or beneath it" in line, session.stderr

    def test_hard_linking_a_denied_file(self, session):
        assert probe(f"link:{d('tree/secret/file')}:{d('tree/copy')}") == ["EPERM"]
        line = session.wait_for_message(r"denied probe\[\d+\] link .*/tree/secret/file ")
        assert "denies a path at or beneath it" in line, session.stderr

    def test_renaming_beside_a_denied_directory_is_allowed(self, session):
        assert probe(f"rename:{d('tree/open')}:{d('tree/opened')}") == ["ok"]
        assert probe(f"rename:{d('tree/opened')}:{d('tree/open')}") == ["ok"]


class TestWatches:
    """path_notify: a watch tells when its file is opened, read or changed, by any process, so
    adding one needs `read` on the file."""

    def test_a_watch_on_a_file_it_may_read(self, session):
        assert probe(f"inotify:{d('readonly')}", f"inotify:{DATA}") == ["ok", "ok"]

    def test_no_watch_on_a_file_it_may_not_read(self, session):
        assert probe(f"inotify:{d('appendonly')}") == ["EPERM"]

    def test_no_watch_on_what_a_rule_denies(self, session):
        assert probe(f"inotify:{d('tree/secret/file')}", f"inotify:{d('tree/open')}") == [
            "EPERM",
            "ok",
        ]


class TestLocks:
    """file_lock: an exclusive lock holds off every other process's locks on the file, so it
    needs `append` (or `write`), whatever the descriptor was opened for; a shared one needs
    only the open (the probe opens read-only)."""

    def test_an_exclusive_lock_needs_a_write_grant(self, session):
        locks = (d("readonly"), DATA, d("readappend"), d("writable"))
        assert probe(*(f"flock:{path}" for path in locks)) == ["EPERM", "EPERM", "ok", "ok"]
        assert session.wait_for_message(r"probe\[\d+\] append .*/data/readonly")

    def test_a_shared_lock_needs_only_the_open(self, session):
        assert probe(f"flock-shared:{d('readonly')}", f"flock-shared:{DATA}") == ["ok", "ok"]


class TestDocumentedSemantics:
    def test_exec_alone_executes(self, session):
        assert probe(f"exec:{BIN / 'helper'}") == ["ok"]

    def test_o_trunc_needs_write_only(self, session):
        assert probe(f"open:wt:{d('trunc')}", f"open:rwt:{d('trunc')}") == ["ok", "ok"]

    def test_o_creat_on_an_existing_file_needs_only_the_open_flags(self, session):
        assert probe(f"open:ac:{d('log')}") == ["ok"]


class TestSelfProtection:
    """Nothing a confined process does reaches bpfbox or unconfined processes."""

    def test_sigio_cannot_signal_another_process(self, session):
        target = start_target()
        try:
            assert probe(f"sigio:{target.pid}:9") == ["EPERM"]
            # The signal would have been queued before the probe exited; give it the time
            # to be delivered (the event awaited must NOT happen, so this wait is bounded).
            with pytest.raises(subprocess.TimeoutExpired):
                target.wait(timeout=2)
        finally:
            target.kill()
            target.wait()

    def test_owner_ex_naming_another_process(self, session):
        target = start_target()
        try:
            assert probe(f"sigio-ex:{target.pid}") == ["EPERM"]
            assert session.wait_for(
                lambda e: e["rule_kind"] == "self"
                and e["access"] == ["signal_owner"]
                and e["target_pid"] == target.pid
            )
        finally:
            target.kill()
            target.wait()

    def test_the_process_may_own_its_files(self, session):
        # SIGWINCH is ignored by default: delivered to the probe itself, it is harmless.
        assert probe("sigio:self:WINCH", "sigio-ex:self") == ["ok", "ok"]

    def test_signal_numbers_above_63(self, session):
        target = start_target()
        try:
            assert probe(f"kill:{target.pid}:64") == ["EPERM"]
            with pytest.raises(subprocess.TimeoutExpired):
                target.wait(timeout=2)
        finally:
            target.kill()
            target.wait()

    def test_the_bpf_system_call(self, session):
        assert probe("bpf-obj-get:/sys/fs/bpf/bpfbox") == ["EPERM"]
