"""bpfbox-run against a real BPF LSM, with hand-written objects (no compiler needed).

Each test runs bpfbox-run as a separate process, the way users do, and checks what the
kernel did (the probe's results), what bpfbox-run said, and what it left behind (nothing).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from confined import start_sleeping
from timing import scaled

pytestmark = pytest.mark.vm

SECRET = "bpfbox-secret"


@pytest.fixture
def files(scratch: Path) -> dict[str, Path]:
    """A file the fixture protects and one it does not, on the scratch tmpfs."""
    secret, public = scratch / SECRET, scratch / "public"
    for path in (secret, public):
        path.write_text("data\n")
    return {"secret": secret, "public": public}


def _lines(text: str) -> list[str]:
    return text.splitlines()


def _events(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("bpfbox: ")]


def test_denies_open_for_the_profile_program_only(e2e, files):
    obj = e2e.deny_open()
    secret, public = files["secret"], files["public"]
    result = e2e.run(
        str(obj),
        "--",
        "sh",
        "-c",
        f"{e2e.probe} open:r:{secret} open:r:{public} open:w:{secret} && cat {secret}",
    )
    assert result.returncode == 0, result.stderr
    # The probe is refused; cat, another program, reads the file while the profile is loaded.
    assert _lines(result.stdout) == ["EPERM", "ok", "EPERM", "data"]
    events = _events(result.stderr)
    assert len(events) == 2, result.stderr
    assert events[0].startswith("bpfbox: denied probe[")
    assert events[0].endswith(f"] read {secret} (deny_open.bpfbox:2 denies it)")
    assert events[1].endswith(f"] write {secret} (deny_open.bpfbox:2 denies it)")
    assert not e2e.wait_unloaded()


def test_complain_mode_reports_without_denying(e2e, files):
    result = e2e.run(
        "--complain", str(e2e.deny_open()), "--", str(e2e.probe), f"open:r:{files['secret']}"
    )
    assert result.returncode == 0, result.stderr
    assert _lines(result.stdout) == ["ok"]
    (event,) = _events(result.stderr)
    assert event.startswith("bpfbox: would deny probe[")
    assert event.endswith(f"read {files['secret']} (deny_open.bpfbox:2 denies it)")


def test_json_log(e2e, files, scratch):
    log = scratch / "events.jsonl"
    result = e2e.run(
        "--log", str(log), "--log-format", "json", str(e2e.deny_open()), "--",
        str(e2e.probe), f"open:rw:{files['secret']}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert _events(result.stderr) == []
    (record,) = [json.loads(line) for line in log.read_text().splitlines()]
    assert record["event"] == "deny"
    assert record["profile"] == "deny_open"
    assert record["comm"] == "probe"
    assert record["access"] == ["read", "write"]
    assert record["object"] == str(files["secret"])
    assert record["reason"] == "denied_by_rule"
    assert record["rule"]["line"] == 2
    assert record["pid"] > 1


def test_source_is_compiled_once_into_the_fallback_cache(e2e, files, scratch):
    """The VM's home is read-only: the cache falls back to a tmp dir, and is reused."""
    source = scratch / "wrapped.bpf.c"
    source.write_text(
        f'#define PROFILE_PATH "{e2e.probe}"\n'
        f'#include "{Path(__file__).parent / "fixtures" / "deny_open.bpf.c"}"\n'
    )
    env = {k: v for k, v in os.environ.items() if k != "XDG_CACHE_HOME"}
    first = e2e.run(str(source), "--", str(e2e.probe), f"open:r:{files['secret']}", env=env)
    assert first.returncode == 0, first.stderr
    assert _lines(first.stdout) == ["EPERM"]
    cached = sorted(Path("/tmp", f"bpfbox-{os.getuid()}").glob("wrapped-*.bpf.o"))
    assert len(cached) == 1
    mtime = cached[0].stat().st_mtime_ns
    second = e2e.run(str(source), "--", "true", env=env)
    assert second.returncode == 0, second.stderr
    assert cached[0].stat().st_mtime_ns == mtime


def test_exit_status_of_the_command(e2e):
    obj = str(e2e.deny_open())
    assert e2e.run(obj, "--", "sh", "-c", "exit 7").returncode == 7
    assert e2e.run(obj, "--", "sh", "-c", "kill -TERM $$").returncode == 128 + signal.SIGTERM
    missing = e2e.run(obj, "--", "/nonexistent/command")
    assert missing.returncode == 127
    assert "cannot run /nonexistent/command" in missing.stderr


def test_signals_are_forwarded(e2e, scratch):
    ready = scratch / "ready"
    ready.unlink(missing_ok=True)
    script = f'trap "echo got-usr1; exit 3" USR1; touch {ready}; while :; do sleep 0.1; done'
    proc = e2e.start(str(e2e.deny_open()), "--", "sh", "-c", script, stdout=subprocess.PIPE)
    _wait_for(ready.exists, what="the command to start")
    proc.send_signal(signal.SIGUSR1)
    stdout, stderr = proc.communicate(timeout=scaled(60))
    assert proc.returncode == 3, stderr
    assert "got-usr1" in stdout
    assert not e2e.wait_unloaded()


def test_enforces_until_sigterm_then_unloads(e2e, files):
    proc = e2e.start(str(e2e.deny_open()))
    _wait_for_line(proc, "enforcing")
    assert any(name.startswith("bpfbox_test") for name in e2e.program_names())
    denied = subprocess.run(
        [str(e2e.probe), f"open:r:{files['secret']}"], capture_output=True, text=True
    )
    assert _lines(denied.stdout) == ["EPERM"]
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=scaled(60))
    assert proc.returncode == 0, stderr
    assert "denied probe[" in stderr
    assert not e2e.wait_unloaded()


def test_sigkill_leaves_the_profile_pinned_and_the_command_confined(e2e, files, scratch):
    """The profile lives in the kernel: killing bpfbox-run neither unloads it nor kills the
    command (which runs on, still confined) until `bpfbox unload`."""
    pidfile = scratch / "command.pid"
    pidfile.unlink(missing_ok=True)
    links_before = e2e.link_count()
    proc = e2e.start(str(e2e.deny_open()), "--", "sh", "-c", f"echo $$ > {pidfile}; exec sleep 600")
    _wait_for(lambda: pidfile.exists() and pidfile.read_text().strip(), what="the command")
    command_pid = int(pidfile.read_text())
    proc.kill()
    # Not communicate(): the command still holds the stderr pipe.
    proc.wait(timeout=scaled(60))
    proc.stderr.close()
    try:
        assert _alive(command_pid)
        denied = subprocess.run(
            [str(e2e.probe), f"open:r:{files['secret']}"], capture_output=True, text=True
        )
        assert _lines(denied.stdout) == ["EPERM"]
    finally:
        os.kill(command_pid, signal.SIGKILL)
        unload = subprocess.run(
            [*e2e.command[:-1], "bpfbox.runtime.manage", "unload", "deny_open"],
            capture_output=True,
            text=True,
        )
    assert unload.returncode == 0, unload.stderr
    assert not e2e.wait_unloaded()
    assert e2e.link_count() == links_before


def test_verifier_rejection_summary_and_log(e2e):
    result = e2e.run(str(e2e.build("verifier_reject", PROFILE_PATH=str(e2e.probe))), "--", "true")
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert lines[0].startswith(
        "bpfbox-run: error: the kernel's verifier rejected program 'bpfbox_test_rejected' "
        "of profile verifier_reject: "
    )
    assert "invalid mem access 'scalar'" in lines[0]
    log_line = next(line for line in lines if "full verifier log:" in line)
    log = Path(log_line.split("full verifier log:", 1)[1].strip())
    assert "invalid mem access" in log.read_text()
    assert lines[-1].startswith("help: ")
    assert not e2e.wait_unloaded()


def test_failure_after_a_loaded_profile_unloads_it(e2e):
    good = e2e.deny_open()
    bad = e2e.build("verifier_reject", PROFILE_PATH=str(e2e.probe))
    links_before = e2e.link_count()
    result = e2e.run(str(good), str(bad), "--", "true")
    assert result.returncode == 1
    assert not e2e.wait_unloaded()
    assert e2e.link_count() == links_before


def test_attach_failure_unloads_everything(e2e):
    """A uprobe beyond the end of the binary cannot attach: the LSM profile goes too."""
    good = e2e.deny_open()
    unattachable = e2e.build("count_calls", PROFILE_PATH=str(e2e.probe), FUNC_OFFSET=1000000000)
    links_before = e2e.link_count()
    result = e2e.run(str(good), str(unattachable), "--", "true")
    assert result.returncode == 1, result.stderr
    assert "attaching program 'bpfbox_func_enter_0' as uprobe" in result.stderr
    assert not e2e.wait_unloaded()
    assert not e2e.wait_unloaded("bpfbox_func")
    assert e2e.link_count() == links_before


def test_unprivileged_user_gets_a_clear_message(e2e):
    # Search permission only, to reach the Python installation under /root.
    result = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
         "--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search",
         *e2e.command, str(e2e.deny_open()), "--", "true"],
        capture_output=True, text=True, timeout=scaled(120),
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()
    assert lines[0].startswith("bpfbox-run: error: not privileged: uid 65534 lacks CAP_BPF")
    assert lines[1].startswith("help: run bpfbox-run as root")


def test_warns_about_processes_started_before(e2e):
    early = start_sleeping(e2e.probe)
    try:
        result = e2e.run(str(e2e.deny_open()), "--", "true")
    finally:
        early.kill()
        early.wait()
    assert result.returncode == 0, result.stderr
    assert f"is already running (pid {early.pid})" in result.stderr
    assert "NOT confined" in result.stderr


def test_lost_events_are_counted(e2e, files):
    small = e2e.deny_open(RINGBUF_BYTES=4096)
    result = e2e.run(str(small), "--", str(e2e.probe), *[f"open:r:{files['secret']}"] * 300)
    assert result.returncode == 0, result.stderr
    assert set(_lines(result.stdout)) == {"EPERM"}
    lost = [line for line in _events(result.stderr) if "lost" in line]
    assert lost, result.stderr
    assert lost[-1].startswith("bpfbox: ")
    assert lost[-1].endswith("lost in total (deny_open's ring buffer was full)")
    denied = [line for line in _events(result.stderr) if "denied" in line]
    total = int(lost[-1].split()[1])
    assert len(denied) + total == 300


def test_check_kernel_passes(e2e):
    result = e2e.run("--check-kernel")
    assert result.returncode == 0, result.stdout
    assert "this kernel can enforce bpfbox profiles" in result.stdout
    assert "MISSING" not in result.stdout


def _booted_lsms() -> str:
    """The active LSMs: the harness boots `lsm=lockdown,capability,landlock`; kernels from 6.9
    on add the always-on ones (ima, evm) to the list."""
    active = Path("/sys/kernel/security/lsm").read_text().strip()
    assert {"lockdown", "capability", "landlock"} <= set(active.split(",")), active
    assert "bpf" not in active.split(","), active
    return active


@pytest.mark.vm_nobpf
def test_check_kernel_without_bpf_lsm(e2e):
    result = e2e.run("--check-kernel")
    active = _booted_lsms()
    assert result.returncode == 2
    assert f"MISSING  bpf in the active LSMs: the active LSMs are {active}" in result.stdout
    assert f"boot with `lsm={active},bpf`" in result.stdout


@pytest.mark.vm_nobpf
def test_loading_without_bpf_lsm_says_what_to_do(e2e):
    result = e2e.run(str(e2e.deny_open()), "--", "true")
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert lines[0] == "bpfbox-run: error: this kernel cannot enforce the profile:"
    assert f"boot with `lsm={_booted_lsms()},bpf`" in result.stderr
    assert lines[-1].startswith("help: ")
    assert not e2e.wait_unloaded()


def _wait_for(condition, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + scaled(timeout)
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.1)


def _wait_for_line(proc: subprocess.Popen, text: str) -> None:
    for line in proc.stderr:
        if text in line:
            return
    pytest.fail(f"bpfbox-run ended without printing {text!r}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purpose.
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split(")")[-1].split()[0] != "Z"
