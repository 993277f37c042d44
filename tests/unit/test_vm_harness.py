"""The VM harness's own logic, on the host: kernel lookup, progress logs, stretched timeouts."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import threading
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]


def load(path: Path, name: str):
    """A script of tests/ as a module (its dataclasses need it in sys.modules)."""
    sys.path.insert(0, str(path.parent))
    try:
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(path.parent))
    return module


@pytest.fixture
def kernels(tmp_path, monkeypatch):
    module = load(TESTS / "vm" / "kernels.py", "kernels")
    monkeypatch.setattr(module, "CACHE", tmp_path / "cache")
    monkeypatch.setattr(module, "MODULES", tmp_path / "modules")
    (tmp_path / "modules").mkdir()
    return module


@pytest.fixture
def vm():
    return load(TESTS / "vm" / "run_in_vm.py", "run_in_vm")


@pytest.fixture
def timing(monkeypatch):
    monkeypatch.delenv("BPFBOX_VM_RESULTS", raising=False)
    return load(TESTS / "e2e" / "timing.py", "timing")


def fake_fetched(kernels, release: str) -> Path:
    """What a fetch leaves: the image, the modules with modules.dep, the release file."""
    root = kernels.CACHE / "6.12" / "root"
    (root / "boot").mkdir(parents=True)
    (root / "boot" / f"vmlinuz-{release}").write_text("image")
    modules = root / "lib" / "modules" / release
    modules.mkdir(parents=True)
    (modules / "modules.dep").write_text("")
    (kernels.CACHE / "6.12" / "release").write_text(release + "\n")
    return root


def test_unknown_and_unfetched_kernels_say_what_to_do(kernels):
    with pytest.raises(
        kernels.KernelError, match="unknown kernel '5.10': choose one of 6.1, 6.12, 7.3"
    ):
        kernels.image("5.10")
    with pytest.raises(kernels.KernelError, match=r"kernels.py fetch 6.12` \(or `make kernels`\)"):
        kernels.image("6.12")


def test_a_fetched_kernel_is_found_by_series_or_release_and_its_modules_linked(kernels):
    root = fake_fetched(kernels, "6.12.9+deb12-amd64")
    image = root / "boot" / "vmlinuz-6.12.9+deb12-amd64"
    assert kernels.image("6.12") == image
    assert kernels.image("6.12.9+deb12-amd64") == image
    link = kernels.MODULES / "6.12.9+deb12-amd64"
    assert link.resolve() == root / "lib" / "modules" / "6.12.9+deb12-amd64"
    with pytest.raises(kernels.KernelError, match="the 6.12 one is 6.12.9"):
        kernels.image("6.12.1+deb12-amd64")


def test_a_dangling_modules_link_is_replaced_and_a_foreign_directory_refused(kernels):
    fake_fetched(kernels, "6.12.9+deb12-amd64")
    link = kernels.MODULES / "6.12.9+deb12-amd64"
    link.symlink_to("/nonexistent/removed-checkout")
    kernels.image("6.12")
    assert (link / "modules.dep").is_file()
    link.unlink()
    link.mkdir()
    with pytest.raises(kernels.KernelError, match="exists without modules.dep"):
        kernels.image("6.12")


def test_a_second_fetch_does_nothing(kernels, monkeypatch, capsys):
    fake_fetched(kernels, "6.12.9+deb12-amd64")
    monkeypatch.setattr(kernels, "PrivateApt", None)  # any use of apt would fail
    assert kernels.fetch(kernels.KERNELS["6.12"]) == "6.12.9+deb12-amd64"
    assert "already fetched" in capsys.readouterr().out


def test_the_image_package_is_found_in_old_and_split_packaging(kernels):
    """apt-cache's stanzas as Debian writes them: bookworm-backports names the image package
    first; trixie-backports names linux-base-amd64 first, and its image package only depends
    on the packages that hold the kernel and the modules."""
    old = (
        "Package: linux-image-amd64\nVersion: 6.12.9-1~bpo12+1\n"
        "Depends: linux-image-6.12.9+deb12-amd64 (= 6.12.9-1~bpo12+1)\n\n"
        "Package: linux-image-amd64\nVersion: 6.12.30-1~bpo12+1\n"
        "Depends: linux-image-6.12.30+deb12-amd64 (= 6.12.30-1~bpo12+1)\n"
    )
    assert kernels.newest_image_package(old, "6.12") == "linux-image-6.12.30+deb12-amd64"
    assert kernels.newest_image_package(old, "6.1") is None
    new = (
        "Package: linux-image-amd64\nVersion: 7.3.4-1~bpo13+1\n"
        "Depends: linux-base-amd64 (= 7.3.4-1~bpo13+1), linux-image-7.3.4+deb13-amd64 "
        "(= 7.3.4-1~bpo13+1), linux-modules-amd64 (= 7.3.4-1~bpo13+1)\n"
    )
    assert kernels.newest_image_package(new, "7.3") == "linux-image-7.3.4+deb13-amd64"
    image = (
        "Package: linux-image-7.3.4+deb13-amd64\nDepends: dracut | initramfs-tools, "
        "linux-base-7.3.4+deb13-amd64 (= 7.3.4-1~bpo13+1), linux-binary-7.3.4+deb13-amd64 "
        "(= 7.3.4-1~bpo13+1), linux-modules-7.3.4+deb13-amd64 (= 7.3.4-1~bpo13+1)\n"
    )
    assert kernels.split_parts(image, "7.3.4+deb13-amd64") == [
        "linux-binary-7.3.4+deb13-amd64",
        "linux-modules-7.3.4+deb13-amd64",
    ]
    assert kernels.split_parts(image, "7.3.4+deb13") == []
    assert kernels.split_parts("Package: linux-image-6.12.9+deb12-amd64\n", "6.12.9") == []


def test_a_kernel_unpacked_under_usr_gets_the_layout_of_the_older_packages(kernels, tmp_path):
    release = "7.3.4+deb13-amd64"
    root = tmp_path / "root"
    modules = root / "usr" / "lib" / "modules" / release
    modules.mkdir(parents=True)
    (modules / "vmlinuz").write_text("image")
    kernels._merged_layout(root, release)
    assert (root / "boot" / f"vmlinuz-{release}").read_text() == "image"
    assert (root / "lib" / "modules" / release).resolve() == modules
    kernels._merged_layout(root, release)  # a second time changes nothing
    with pytest.raises(kernels.KernelError, match="hold no kernel image"):
        kernels._merged_layout(tmp_path / "empty", release)


def test_the_host_mirror_and_keyring_are_reused(kernels, tmp_path, monkeypatch):
    etc = tmp_path / "apt"
    (etc / "sources.list.d").mkdir(parents=True)
    monkeypatch.setattr(kernels, "HOST_SOURCES", etc)
    assert kernels.host_debian_mirror() == (kernels.DEFAULT_MIRROR, kernels.DEFAULT_KEYRING)
    (etc / "sources.list").write_text(
        "deb [arch=amd64 signed-by=/k/one.gpg] http://mirror.example/debian bookworm main\n"
    )
    assert kernels.host_debian_mirror() == ("http://mirror.example/debian", "/k/one.gpg")
    (etc / "sources.list").unlink()
    (etc / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: http://other.example/debian-security\nSuites: bookworm-security\n\n"
        "Types: deb\nURIs: http://other.example/debian\nSuites: bookworm bookworm-updates\n"
        "Components: main\nSigned-By: /k/two.gpg\n"
    )
    assert kernels.host_debian_mirror() == ("http://other.example/debian", "/k/two.gpg")


def test_vm_kernel_option_takes_a_series_or_an_image(vm, tmp_path):
    image = tmp_path / "vmlinuz"
    image.write_text("")
    assert vm._kernel_image(str(image)) == str(image)
    with pytest.raises(vm.HarnessError, match="unknown kernel '4.19'"):
        vm._kernel_image("4.19")


def test_vm_results_dir_is_shared_and_named_to_the_guest(vm, tmp_path):
    args = vm._parse(["--results", str(tmp_path / "r"), "--", "true"])
    command = vm.boot_command("vng", "/boot/vmlinuz-x", args, tmp_path, tmp_path / "console")
    assert command.count("--rwdir") == 2 and str(tmp_path / "r") in command
    script = vm.guest_script(args.command, tmp_path, tmp_path / "r")
    assert f"export BPFBOX_VM_RESULTS={tmp_path / 'r'}\n" in script


def test_vm_guest_runs_in_one_host_thread_and_logs_to_its_own_console(vm, tmp_path):
    args = vm._parse(["--", "true"])
    command = vm.boot_command("vng", "/boot/vmlinuz-x", args, tmp_path, tmp_path / "console")
    assert "--qemu-opts=-accel tcg,thread=single" in command
    options = " ".join(command)
    assert f"path={tmp_path / 'console'}" in options and "console=hvc0" in options


def test_vm_extra_lsms_come_before_bpf(vm, tmp_path):
    args = vm._parse(["--lsm-extra", "apparmor", "--", "true"])
    command = vm.boot_command("vng", "/boot/vmlinuz-x", args, tmp_path, tmp_path / "console")
    assert "lsm=lockdown,capability,landlock,apparmor,bpf" in command
    args = vm._parse(["--no-bpf-lsm", "--", "true"])
    assert "lsm=lockdown,capability,landlock" in vm.boot_command(
        "vng", "k", args, tmp_path, tmp_path / "console"
    )


def test_vm_progress_names_failures_and_the_test_cut_short(vm, tmp_path):
    assert vm.progress(tmp_path) == ([], [], None)
    (tmp_path / "progress").write_text(
        "START t.py::a\nPASSED t.py::a 1.0\nSTART t.py::b\nFAILED t.py::b 2.0\n"
        "START t.py::c\nERROR t.py::c 0.1\nSTART t.py::d\n"
    )
    assert vm.progress(tmp_path) == (["t.py::a"], ["FAILED t.py::b", "ERROR t.py::c"], "t.py::d")


def test_vm_deadline_stretches_with_the_reported_slowness_and_never_shrinks(vm, tmp_path):
    deadline = vm.Deadline(100, tmp_path)
    assert 99 < deadline.remaining() <= 100
    (tmp_path / "slowness").write_text("3.00 0.750\n")
    assert 299 < deadline.remaining() <= 300
    (tmp_path / "slowness").write_text("1.00 0.250\n")
    assert 299 < deadline.remaining() <= 300
    assert 99 < vm.Deadline(100, None).remaining() <= 100


def test_timeouts_scale_by_the_measured_slowness(timing, monkeypatch, tmp_path):
    monkeypatch.setattr(timing, "_loop_seconds", lambda: 4 * timing.REFERENCE_SECONDS)
    monkeypatch.setenv("BPFBOX_VM_RESULTS", str(tmp_path))
    assert timing.scaled(10) == pytest.approx(40)
    assert (tmp_path / "slowness").read_text().startswith("4.00 ")
    # A faster machine than the reference keeps the timeouts as written.
    monkeypatch.setattr(timing, "_loop_seconds", lambda: timing.REFERENCE_SECONDS / 10)
    assert timing.measure() == 1.0


def test_every_e2e_file_runs_in_exactly_one_bpf_group():
    matrix = load(TESTS / "vm" / "matrix.py", "matrix")
    files = sorted(p.name for p in (TESTS / "e2e").glob("test_*.py"))
    for name in files:
        chosen = []
        for group in (g for g in matrix.GROUPS if g.bpf_lsm):
            ignored = {p.split("=", 1)[1] for p in group.paths if p.startswith("--ignore=")}
            selected = [p for p in group.paths if not p.startswith("--")]
            path = f"{matrix.E2E}/{name}"
            if path not in ignored and any(path == s or path.startswith(s + "/") for s in selected):
                chosen.append(group.name)
        assert len(chosen) == 1, (name, chosen)


def test_vmlinux_is_found_in_a_compressed_image_once(kernels, monkeypatch):
    """A bzImage: setup code, then the compressed ELF (here after a false magic)."""
    elf = b"\x7fELF" + bytes(range(256)) * 64
    payload = subprocess.run(["xz", "-c"], input=elf, capture_output=True, check=True).stdout
    root = fake_fetched(kernels, "6.12.9+deb12-amd64")
    image = root / "boot" / "vmlinuz-6.12.9+deb12-amd64"
    image.write_bytes(b"MZ setup \xfd7zXZ\x00 not xz " + payload + b"\0" * 512)
    out = kernels.vmlinux("6.12")
    assert out.read_bytes() == elf
    image.write_bytes(b"changed")  # the extracted copy is reused, not extracted again
    assert kernels.vmlinux("6.12").read_bytes() == elf


def test_matrix_summary_fails_a_boot_of_the_wrong_kernel(kernels, monkeypatch, tmp_path, capsys):
    matrix = load(TESTS / "vm" / "matrix.py", "matrix")
    monkeypatch.setattr(matrix, "kernels", kernels)
    fake_fetched(kernels, "6.12.9+deb12-amd64")
    group = matrix.GROUPS[0]
    out = tmp_path / "results" / "6.12" / group.name
    out.mkdir(parents=True)
    (out / "progress").write_text("START a\nPASSED a 1.0\n")
    (out / "kernel").write_text("6.12.9+deb12-amd64\n")
    assert matrix.summarise([matrix.Outcome("6.12", group, 0)], tmp_path / "results") == 0
    assert capsys.readouterr().err.splitlines()[-1] == "matrix: 1 passed, 0 failed"
    (out / "kernel").write_text("6.1.0-57-amd64\n")
    assert matrix.summarise([matrix.Outcome("6.12", group, 0)], tmp_path / "results") == 1
    err = capsys.readouterr().err
    assert "WRONG KERNEL (6.1.0-57-amd64, not 6.12.9+deb12-amd64)" in err
    # The closing line CI reads: the boot that failed without naming a test counts as one.
    assert err.splitlines()[-1] == "matrix: 1 passed, 1 failed"


@pytest.mark.parametrize(
    ("first", "second", "retried"),
    [
        ((9, "START a\nPASSED a 1.0\nSTART b\n", ""), (0, "START b\nPASSED b 1.0\n"), "stalled"),
        (
            (124, "START a\nPASSED a 1.0\nSTART b\n", ""),
            (1, "START b\nFAILED b 1.0\n"),
            "timed out",
        ),
        (
            (125, "START a\nPASSED a 1.0\nSTART b\n", "[ 1.0] ata3.00: LPM\n"),
            (0, "START b\nPASSED b 1.0\n"),
            "died",
        ),
        (
            (125, "START a\nPASSED a 1.0\nSTART b\n", "[ 9.5] BUG: kernel NULL pointer\n"),
            None,
            None,
        ),
        ((9, "START a\nFAILED a 1.0\nSTART b\n", ""), None, None),
        ((1, "START a\nFAILED a 1.0\n", ""), None, None),
    ],
)
def test_matrix_boots_again_once_after_a_boot_cut_short_with_no_failure(
    kernels, monkeypatch, tmp_path, capsys, first, second, retried
):
    """run_group stands in for the VM: each boot writes its progress log and kernel console
    and returns a status.  A boot that died is run again only if its kernel logged nothing
    alarming: a kernel bug is a finding."""
    matrix = load(TESTS / "vm" / "matrix.py", "matrix")
    monkeypatch.setattr(matrix, "kernels", kernels)
    boots = [first, second]
    calls = []

    def fake_run_group(kernel, group, out, pytest_args, quiet):
        status, progress, *console = boots[len(calls)]
        calls.append(pytest_args)
        out.mkdir(parents=True, exist_ok=True)
        (out / "progress").write_text(progress)
        (out / "console").write_text(console[0] if console else "")
        return status

    monkeypatch.setattr(matrix, "run_group", fake_run_group)
    group = matrix.GROUPS[0]
    outcome = matrix.run_with_one_retry("6.1", group, tmp_path, ["-x"])
    assert len(calls) == (2 if retried else 1)
    if not retried:
        assert outcome.status == first[0] and outcome.interrupted is None
        return
    assert calls[1] == ["-x", "--deselect=a"]
    assert (tmp_path / "6.1" / f"{group.name}-cut" / "progress").read_text() == first[1]
    assert (outcome.status, outcome.passed_before, outcome.interrupted) == (second[0], ["a"], "b")
    monkeypatch.setattr(matrix, "_booted_release", lambda out: kernels.image("6.1").name[8:])
    code = matrix.summarise([outcome], tmp_path)
    err = capsys.readouterr().err
    assert f"a first boot {retried} in b, run again" in err
    passed_b = second[0] == 0
    assert code == (0 if passed_b else 1)
    assert err.splitlines()[-1] == f"matrix: {1 + passed_b} passed, {0 if passed_b else 1} failed"


@pytest.mark.parametrize("jobs", [1, 2])
def test_matrix_boots_the_kernels_side_by_side_each_running_its_groups_in_turn(
    monkeypatch, tmp_path, capsys, jobs
):
    """Side by side, both kernels' first boots run at once (a barrier both must reach) and
    write their output to a file; one after the other, they stream it."""
    matrix = load(TESTS / "vm" / "matrix.py", "matrix")
    monkeypatch.setattr(matrix.kernels, "image", lambda name: Path(f"/boot/vmlinuz-{name}"))
    both_started = threading.Barrier(2, timeout=30)
    boots = []

    def fake_run_group(kernel, group, out, pytest_args, quiet):
        if jobs == 2 and group == matrix.GROUPS[0]:
            both_started.wait()
        boots.append((kernel, group.name, quiet))
        out.mkdir(parents=True)
        (out / "progress").write_text(f"START {group.name}\nPASSED {group.name} 1.0\n")
        (out / "kernel").write_text(kernel)
        return 0

    monkeypatch.setattr(matrix, "run_group", fake_run_group)
    assert matrix.main(["--jobs", str(jobs), "--results", str(tmp_path), "6.1", "6.12"]) == 0
    names = [g.name for g in matrix.GROUPS]
    for kernel in ("6.1", "6.12"):
        assert [(g, q) for k, g, q in boots if k == kernel] == [(n, jobs == 2) for n in names]
    summary = capsys.readouterr().err.split("matrix: summary\n")[1].splitlines()
    assert [line.split()[:2] for line in summary[: 2 * len(names)]] == [
        [kernel, name] for kernel in ("6.1", "6.12") for name in names
    ]


def test_a_quiet_boot_keeps_its_output_and_prints_its_end_if_it_fails(
    monkeypatch, tmp_path, capsys
):
    """run_in_vm.py stood in for by a script that prints 50 lines and fails."""
    matrix = load(TESTS / "vm" / "matrix.py", "matrix")
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "run_in_vm.py").write_text(
        "import sys\nfor i in range(50):\n    print(f'line {i}', flush=True)\nsys.exit(3)\n"
    )
    monkeypatch.setattr(matrix, "HERE", tmp_path / "bin")
    out = tmp_path / "6.1" / "enforcement"
    assert matrix.run_group("6.1", matrix.GROUPS[0], out, [], quiet=True) == 3
    assert (out / "output").read_text().splitlines()[-1] == "line 49"
    err = capsys.readouterr().err
    assert f"matrix: kernel 6.1, group enforcement: started (output: {out / 'output'})" in err
    assert "matrix: kernel 6.1, group enforcement: exit status 3\n  | line 10\n" in err
    assert err.rstrip().endswith("  | line 49") and "line 9\n" not in err


def run_in_fake_vm(tmp_path: Path, script: str, *options: str) -> subprocess.CompletedProcess:
    """run_in_vm.py with a stand-in for vng that runs the guest script here: `script` (sh)
    plays the guest, with --results tmp_path/results."""
    fake_vng = tmp_path / "vng"
    fake_vng.write_text('#!/bin/sh\nfor last; do :; done\nexec sh -c "$last"\n')
    fake_vng.chmod(0o755)
    return subprocess.run(
        [sys.executable, str(TESTS / "vm" / "run_in_vm.py"), "--kernel", str(fake_vng)]
        + ["--results", str(tmp_path / "results"), *options, "--", "sh", "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": f"{tmp_path}:/usr/bin:/bin"},
    )


def test_vm_killed_at_its_timeout_still_names_failures_and_the_running_test(tmp_path):
    """A stand-in for vng runs the guest script here; the command hangs after logging."""
    log = (
        'cd "$BPFBOX_VM_RESULTS"'
        ' && printf "START t::a\\nFAILED t::a 1.0\\nSTART t::b\\n" > progress'
        " && echo '2.00 0.500' > slowness && exec sleep 60"
    )
    result = run_in_fake_vm(tmp_path, log, "--timeout", "1")
    assert result.returncode == 124, result.stderr
    assert "timed out after 2 s (1 s x slowness 2.00)" in result.stderr
    assert "run_in_vm:   FAILED t::a" in result.stderr
    assert "running when the VM stopped: t::b" in result.stderr


def test_a_crashed_guest_gets_its_kernel_log_printed_and_quoted_in_the_summary(
    kernels, monkeypatch, tmp_path, capsys
):
    """The stand-in guest logs a panic to the kernel console and dies before its script can
    report a status, as a panicking kernel does."""
    crash = (
        'cd "$BPFBOX_VM_RESULTS" && printf "START t::a\\n" > progress'
        " && printf '[    1.5] ata3.00: LPM support broken\\n"
        "[   99.25] Kernel panic - not syncing: Attempted to kill init!\\n"
        "[   99.26] CPU: 1 PID: 1 Comm: init\\n' > console && kill -9 $PPID"
    )
    result = run_in_fake_vm(tmp_path, crash)
    assert result.returncode == 125, result.stderr
    assert "running when the VM stopped: t::a" in result.stderr
    assert "the guest kernel's last 3 warnings or worse" in result.stderr
    assert "  [   99.26] CPU: 1 PID: 1 Comm: init\n" in result.stderr
    matrix = load(TESTS / "vm" / "matrix.py", "matrix")
    monkeypatch.setattr(matrix, "kernels", kernels)
    group = matrix.GROUPS[0]
    (tmp_path / "6.1").mkdir()
    (tmp_path / "results").rename(tmp_path / "6.1" / group.name)
    assert matrix.summarise([matrix.Outcome("6.1", group, 125)], tmp_path) == 1
    assert (
        "      guest kernel: Kernel panic - not syncing: Attempted to kill init! (log: "
        in capsys.readouterr().err
    )


def test_a_guest_that_logged_nothing_says_so(vm, tmp_path, capsys):
    vm._print_console(tmp_path / "console")
    assert "the guest kernel logged no warnings" in capsys.readouterr().err
    assert vm.kernel_trouble(tmp_path) is None


def test_a_stalled_test_gets_the_guest_state_reported_and_ends_the_suite(tmp_path):
    """The watchdog of tests/e2e/stall.py, in a process of its own (it ends it): a 'test'
    that outlives the stall limit gets the processes, kernel log and Python stacks written."""
    script = (
        "import time, stall\n"
        "stall.STALL_SECONDS = 0.1\n"
        "from pathlib import Path\n"
        f"dog = stall.Watchdog(Path({str(tmp_path)!r}))\n"
        "dog.started('t.py::quick')\n"
        "dog.finished()\n"
        "dog.started('t.py::stuck')\n"
        "time.sleep(60)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=TESTS / "e2e",
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(TESTS / "e2e")},
    )
    report = (tmp_path / "stall").read_text()
    assert result.returncode == 9, result.stderr
    assert report.startswith("stall: t.py::stuck has run for ")
    assert "pid state wchan command" in report
    assert 'File "<string>", line 8' in report  # the stuck thread's Python stack
    assert "t.py::quick" not in report
    assert report.split("--- python stacks")[0] in result.stderr


def test_vm_results_print_the_stall_report(vm, tmp_path, capsys):
    (tmp_path / "progress").write_text("START t::a\n")
    vm._print_progress(tmp_path, killed=False)
    assert "stall" not in capsys.readouterr().err
    (tmp_path / "stall").write_text("stall: t::a has run for 700 s\n1 D - probe\n")
    vm._print_progress(tmp_path, killed=False)
    err = capsys.readouterr().err
    assert "the guest's watchdog reported a stall" in err
    assert "1 D - probe" in err


def test_measurements_from_two_threads_never_collide(timing, monkeypatch, tmp_path):
    """The watchdog's thread and the tests measure at once: each write-then-rename of the
    slowness file completes (the temporary file is shared, so unserialised they raced)."""
    monkeypatch.setenv("BPFBOX_VM_RESULTS", str(tmp_path))
    monkeypatch.setattr(timing, "_loop_seconds", lambda: timing.REFERENCE_SECONDS)
    errors = []

    def measure_often():
        try:
            for _ in range(200):
                timing.measure()
        except OSError as error:
            errors.append(error)

    threads = [threading.Thread(target=measure_often) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert (tmp_path / "slowness").read_text() == "1.00 0.035\n"
