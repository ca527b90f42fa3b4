"""The national failure run's report (bench/chaos_national.py): its figures, table and verdict."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from testbed.live_page import longest_gap


@dataclass
class FaultResult:
    """One fault: how long until the cluster was ready again, and what was seen meanwhile."""

    name: str
    seconds: float = 0.0
    ready: str = ""
    """`healthy` (every node current), `quorum` (serving, a node still catching up) or the error."""
    units_kept_recording: bool = False
    stored_grew: bool = False
    live_page_back: bool = False
    """The supervisor's page received an update after the store grew again."""
    longest_live_gap_s: float = 0.0
    longest_unit_gap_s: float = 0.0
    started_at: float = 0.0
    ended_at: float = 0.0


@dataclass
class NationalReport:
    units: int
    unit_processes: int
    workers: int
    web_processes: int
    produced: int = 0
    stored: int = 0
    lost: int = 0
    doubled: int = 0
    unexpected: int = 0
    """Stored events no unit recorded (never expected)."""
    left_on_units: int = 0
    longest_live_gap_s: float = 0.0
    live_updates: int = 0
    live_streams_opened: int = 0
    live_refused: dict[str, int] = field(default_factory=dict)
    longest_unit_gap_s: float = 0.0
    units_kept_recording: bool = False
    faults_planned: int = 0
    faults: list[FaultResult] = field(default_factory=list)
    seconds: float = 0.0
    load_average_start: list[float] = field(default_factory=list)
    load_average: list[float] = field(default_factory=list)
    """At the end (1, 5, 15 min): the machine is shared, so its load belongs with the figures."""
    load_1min_max: float = 0.0
    """The highest 1-minute load average seen at the end of a fault."""
    stray_nats_files: list[str] = field(default_factory=list)
    """Files nats-server wrote into its working directory (outside its store_dir)."""
    error: str = ""
    command: str = ""

    @property
    def ok(self) -> bool:
        return (not self.error and self.lost == 0 and self.doubled == 0 and self.unexpected == 0
                and self.left_on_units == 0 and self.produced > 0 and len(self.faults) == self.faults_planned
                and all(f.units_kept_recording and f.stored_grew and f.live_page_back for f in self.faults))

    def as_json(self) -> dict[str, Any]:
        """One object; its names are stable (tests/test_bench_chaos_national.py)."""
        data = asdict(self)
        data["faults_done"] = len(self.faults)
        data["ok"] = self.ok
        return {"national": data}


def format_table(report: NationalReport) -> str:
    """The figures for people: one table of totals, one row per fault."""
    r = report
    refused = ", ".join(f"{n} x HTTP {s}" for s, n in sorted(r.live_refused.items())) or "none"
    rows = [
        ("units (processes)", f"{r.units} ({r.unit_processes}), {r.workers} ingest workers, {r.web_processes} web"),
        ("verdicts produced (units)", f"{r.produced:,}"),
        ("stored centrally", f"{r.stored:,}"),
        ("lost / doubled / unexpected", f"{r.lost} / {r.doubled} / {r.unexpected}"),
        ("left on units at the end", f"{r.left_on_units}"),
        ("longest live-page gap", f"{r.longest_live_gap_s:.1f} s ({r.live_updates:,} updates, "
                                  f"{r.live_streams_opened} streams opened; refused: {refused})"),
        ("longest gap between verdicts of a unit", f"{r.longest_unit_gap_s:.1f} s"),
        ("units kept recording in every fault", "yes" if r.units_kept_recording else "NO"),
        ("faults done", f"{len(r.faults)} of {r.faults_planned}"),
        ("files nats-server left in its working dir", ", ".join(r.stray_nats_files) or "none"),
        ("time", f"{r.seconds:.0f} s"),
        ("load average (1, 5, 15 min) start / end", ", ".join(f"{x:.2f}" for x in r.load_average_start) + " / "
         + ", ".join(f"{x:.2f}" for x in r.load_average) + f" (1 min at most {r.load_1min_max:.2f})"),
        ("result", "OK" if r.ok else f"FAILED {r.error}".strip()),
    ]
    width = max(len(name) for name, _ in rows)
    lines = [f"{name:<{width}}  {value}" for name, value in rows]
    lines += ["", f"{'fault':<20} {'s':>5}  {'ready':<8} {'units kept recording':<21} {'stored grew':<12}"
                  f" {'live page back':<15} {'live gap s':>10} {'unit gap s':>10}"]
    yes = {True: "yes", False: "NO"}
    for f in r.faults:
        lines.append(f"{f.name:<20} {f.seconds:>5.0f}  {f.ready[:8]:<8} {yes[f.units_kept_recording]:<21}"
                     f" {yes[f.stored_grew]:<12} {yes[f.live_page_back]:<15} {f.longest_live_gap_s:>10.1f}"
                     f" {f.longest_unit_gap_s:>10.1f}")
    return "\n".join(lines)


def unit_gap(recorded: dict[str, list[tuple[int, float]]], start: float | None = None, end: float | None = None) -> float:
    """The longest time between two consecutive verdicts of any one unit (touching [start, end])."""
    return max((longest_gap([t for _, t in verdicts], start, end) for verdicts in recorded.values()), default=0.0)
