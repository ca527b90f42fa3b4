"""bench/chaos_national.py's figures keep their names, and its table and verdict read right.

The run itself takes minutes (docs/reliability.md); tests/test_national_chaos.py is the bounded
failure run. Here a report is filled by hand and printed both ways.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from testbed.chaos_report import FaultResult, NationalReport, format_table, unit_gap
from testbed.live_page import longest_gap

ROOT = Path(__file__).resolve().parents[1]


def _report(**changes: object) -> NationalReport:
    report = NationalReport(50, 5, 2, 2, produced=900, stored=900, longest_live_gap_s=12.5, live_updates=300,
                            live_streams_opened=4, live_refused={"503": 1}, longest_unit_gap_s=1.2,
                            units_kept_recording=True, faults_planned=2, seconds=300.0, load_average=[3.1, 2.5, 1.0],
                            command="python -m bench.chaos --national")
    report.faults = [FaultResult("restart n1", 40.0, "healthy", True, True, True, 1.5, 1.1, 100.0, 140.0),
                     FaultResult("restart PostgreSQL", 20.0, "healthy", True, True, True, 12.5, 1.2, 140.0, 160.0)]
    for key, value in changes.items():
        setattr(report, key, value)
    return report


def test_json_names_are_stable() -> None:
    figures = json.loads(json.dumps(_report().as_json()))["national"]
    assert {"units", "unit_processes", "workers", "web_processes", "produced", "stored", "lost", "doubled",
            "unexpected", "left_on_units", "longest_live_gap_s", "live_updates", "live_streams_opened",
            "live_refused", "longest_unit_gap_s", "units_kept_recording", "faults", "faults_planned", "faults_done",
            "seconds", "load_average_start", "load_average", "load_1min_max", "stray_nats_files", "error", "ok",
            "command"} <= set(figures)
    assert set(figures["faults"][0]) == {"name", "seconds", "ready", "units_kept_recording", "stored_grew",
                                         "live_page_back", "longest_live_gap_s", "longest_unit_gap_s", "started_at",
                                         "ended_at"}
    assert figures["ok"] is True and figures["faults_done"] == 2


@pytest.mark.parametrize("bad", [{"lost": 1}, {"doubled": 1}, {"left_on_units": 3}, {"faults_planned": 3},
                                 {"error": "restart n2: failed"}, {"produced": 0}])
def test_anything_lost_doubled_or_undone_fails_the_run(bad: dict[str, object]) -> None:
    report = _report(**bad)
    assert not report.ok and "FAILED" in format_table(report)


def test_the_table_shows_every_figure_and_fault() -> None:
    table = format_table(_report())
    assert re.search(r"verdicts produced \(units\) +900\n", table)
    for text in ("0 / 0 / 0", "12.5 s", "1 x HTTP 503", "2 of 2", "restart n1",
                 "restart PostgreSQL", "result", "OK"):
        assert text in table, text


def test_gaps_count_only_intervals_touching_the_window() -> None:
    assert longest_gap([0.0, 1.0, 5.0, 5.5]) == 4.0
    assert longest_gap([0.0, 1.0, 5.0, 5.5], start=5.2) == 0.5
    assert unit_gap({"u1": [(1, 0.0), (2, 2.0)], "u2": [(1, 0.0), (2, 3.0)]}) == 3.0


def test_national_options_are_offered() -> None:
    # Run as the command (tests do not import benches), from the tree under test.
    ended = subprocess.run([sys.executable, "-m", "bench.chaos", "--national", "--help"], cwd=ROOT,
                           capture_output=True, text=True, timeout=120)
    assert ended.returncode == 0, ended.stderr
    shown = ended.stdout
    assert all(opt in shown for opt in ("--units", "--workers", "--json"))
