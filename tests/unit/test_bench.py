"""`make bench`'s own logic, on the host: the AppArmor profiles it loads parse, the three
systems' policies grant the same paths, and the plot draws every measured figure."""

from __future__ import annotations

import importlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest

E2E = Path(__file__).resolve().parents[1] / "e2e"


@pytest.fixture
def bench(monkeypatch):
    monkeypatch.syspath_prepend(str(E2E))
    return importlib.import_module("bench")


@pytest.mark.skipif(shutil.which("apparmor_parser") is None, reason="no apparmor_parser")
@pytest.mark.parametrize("rules", [0, 1000])
def test_the_apparmor_profiles_parse(bench, tmp_path, rules):
    profile = tmp_path / "profile"
    profile.write_text(bench.apparmor_profile(Path("/mnt/e2e/bin/bench-aa"), rules))
    # -Q: parse and compile only (this host's kernel may have no AppArmor); -K: no cache.
    parsed = subprocess.run(["apparmor_parser", "-Q", "-K", str(profile)], capture_output=True)
    assert parsed.returncode == 0, parsed.stderr.decode()
    assert profile.read_text().count(",\n") == len(bench.GRANTS) + rules


def test_every_system_grants_the_workloads_paths(bench):
    profile = bench.apparmor_profile(Path("/p"), 0)
    landlock = bench.landlock_options(Path("/p"), 0)
    policy = bench.BPFBOX_POLICIES["bench"]
    for grant in bench.GRANTS:
        assert f"{grant.path} " in profile and f'fs("{grant.path}"' in policy
        assert grant.path.removesuffix("/*") in landlock
    assert f'fs("{bench.GRANTS[0].path}"' not in bench.BPFBOX_POLICIES["bench_complain"]


def test_the_plot_has_a_bar_per_system_and_workload(bench, tmp_path):
    systems = [s.name for s in bench.SYSTEMS if s.name != "landlock_many"]
    results = {
        "workloads": [{"name": w.name, "label": w.label} for w in bench.WORKLOADS],
        "systems": [{"name": s.name, "label": s.label} for s in bench.SYSTEMS],
        "samples": {
            s: {w.name: [100.0 + i, 110.0 + i] for w in bench.WORKLOADS}
            for i, s in enumerate(systems)
        },
    }
    (tmp_path / "bench.json").write_text(json.dumps(results))
    svg = bench.plot(tmp_path / "bench.json").read_text()
    assert svg.count("<title>") == (len(systems) - 1) * len(bench.USER_WORKLOADS)
    assert "<title>bpfbox, 1 rule, open+read+close: 1.02x</title>" in svg


def test_program_costs_are_medians_of_the_rounds(bench, capsys):
    """Each round reads every profiled system's program costs; the table shows the medians."""
    names = ["none", "bpfbox"]
    results = {
        "machine": {"kernel": "6.1", "cpus": "2", "cpu": "test"},
        "rounds": 3,
        "workloads": [{"name": w.name, "label": w.label} for w in bench.WORKLOADS],
        "systems": [{"name": s.name, "label": s.label} for s in bench.SYSTEMS if s.name in names],
        "samples": {s: {w.name: [100.0, 120.0, 110.0] for w in bench.WORKLOADS} for s in names},
        "not_measured": {},
        "complain": {"events": 0, "lost": 0},
        "hooks": {
            "bpfbox": [
                [{"program": "bpfbox_file_open", **costs}]
                for costs in (
                    {"runs_per_iteration": 1.0, "ns_per_run": 9000.0, "share": 0.1},
                    {"runs_per_iteration": 1.0, "ns_per_run": 7000.0, "share": 0.3},
                    {"runs_per_iteration": 1.0, "ns_per_run": 8000.0, "share": 0.2},
                )
            ]
        },
    }
    bench.print_results(results)
    out = capsys.readouterr().out
    assert "bpfbox (medians of 3)" in out
    assert "| bpfbox_file_open | 1.00 | 8000 | 20.0% |" in out


def test_the_reader_benchmark_reports_both_formats(monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(E2E))
    importlib.import_module("bench_reader").main(["--events", "50", "--distinct", "3"])
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines] == ["text", "json"]
    assert all(line.endswith(" µs per event") for line in lines)
