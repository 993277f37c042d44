"""systemd/bpfbox.service: the unit shipped for service mode is one systemd accepts."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

UNIT = Path(__file__).parents[2] / "systemd" / "bpfbox.service"
INSTALLED = "/usr/bin/bpfbox-run"


def test_unit_runs_service_mode_and_reloads_with_sighup():
    text = UNIT.read_text()
    assert f"ExecStart={INSTALLED} --service /etc/bpfbox.d\n" in text
    assert "ExecReload=/bin/kill -HUP $MAINPID\n" in text


@pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed here"
)
def test_systemd_analyze_verify_accepts_the_unit(tmp_path):
    # bpfbox-run need not be installed on the build host: an executable stands in for it.
    stand_in = tmp_path / "bpfbox-run"
    stand_in.write_text("#!/bin/sh\nexit 0\n")
    stand_in.chmod(0o755)
    unit = tmp_path / "bpfbox.service"
    unit.write_text(UNIT.read_text().replace(INSTALLED, str(stand_in)))
    result = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "bpfbox.service" not in result.stderr, result.stderr
