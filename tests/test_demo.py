"""The demo end to end: real broker, ingest, dashboard and four unit processes; counts reconcile."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from common.localnet import free_port


@pytest.mark.slow
def test_demo_counts_arrive_exactly_once(tmp_path: Path) -> None:
    workdir = tmp_path / "demo"
    proc = subprocess.run(
        [sys.executable, "-m", "chot", "demo", "--duration", "50", "--people", "60", "--fps", "6",
         "--port", str(free_port()), "--workdir", str(workdir), "--json"],  # never a fixed port: suites run side by side
        capture_output=True, text=True, timeout=240,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rec = json.loads(proc.stdout.strip().splitlines()[-1])
    assert rec["exact"] and rec["delivered"], rec
    assert rec["duplicates"] == 0
    produced = rec["produced"]
    assert set(produced) == {"ic7-lane1", "ic7-lane2", "thanglong-1", "yenphong-gate"}
    # Every unit judged people, and every colour was seen somewhere.
    assert all(sum(by_result.values()) > 0 for by_result in produced.values()), produced
    colours = {c for by_result in produced.values() for c, n in by_result.items() if n}
    assert colours >= {"green", "yellow", "red"}, produced
    # The simulated officers decided on some yellows and reds and checked people with no phone by
    # hand; the reconciliation above covers these decisions too.
    assert colours - {"green", "yellow", "red"} == {"decision", "manual"}, produced
    # The flaky unit's link was cut and restored mid-run, and its backlog still all arrived.
    assert "link of ic7-lane1 cut" in proc.stdout and "its backlog drains" in proc.stdout
    # ...and the dashboard's devices page raised the offline alarm during the outage.
    cut_line = next(line for line in proc.stdout.splitlines() if "link of ic7-lane1 cut" in line)
    alarm_line = next((line for line in proc.stdout.splitlines() if "dashboard alarm: ic7-lane1" in line), None)
    assert alarm_line is not None, proc.stdout[-3000:]
    lines = proc.stdout.splitlines()
    back_line = next(line for line in lines if "its backlog drains" in line)
    assert lines.index(cut_line) < lines.index(alarm_line) < lines.index(back_line), proc.stdout[-3000:]
    # No process outlived the demo.
    leftover = subprocess.run(["pgrep", "-f", str(workdir)], capture_output=True, text=True)
    assert leftover.stdout.strip() == "", leftover.stdout
