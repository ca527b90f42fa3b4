"""Fleet update: real unit processes updated ring by ring under a steady scan load.

    .venv/bin/python -m bench.update_fleet --units 20 --canary 4 [--fps 2] [--json]

Every unit is a `chot scanner run` process running a release's own code (PYTHONPATH=<its
root>/current/app), provisioned through the ministry's TUF channel, scanning people from a
scripted phone-screen camera without pause and reporting its status to a real Mosquitto. Rings:
the first `--canary` units follow channel "canary", the others "stable".

1. A bad release (its verifier judges every certificate red; the self-test catches it) is rolled
   out: every canary must switch back by itself and the rollout must stop before ring 2.
2. A good release is rolled out to both rings: time to roll out.
3. Peer: one unit is restarted plainly (SIGTERM + start, no update), to compare pauses.

Printed: time to roll out, verdicts produced / stored / lost / doubled (from each unit's own
outbox: seqs must be contiguous and unique), the longest pause in judging on a unit around its
switch versus the normal interval and versus the plain restart (as ratios).
"""

from __future__ import annotations

import argparse
import itertools
import json
import signal
import sqlite3
import statistics
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from common.localnet import free_port
from keys.releases import ReleaseRepo, build_release
from keys.rollout import MqttStatuses, Ring, RolloutStopped, run_rollout
from scanner.cli import scanner as scanner_cli
from scanner.update.layout import Layout
from testbed.ministry import Ministry
from testbed.mosquitto import Mosquitto, make_conf
from testbed.release_unit import ReleasedUnit, write_unit
from testbed.update_repo import StaticServer

ROOT = Path(__file__).resolve().parents[1]

CLOCK_BUG = b"""
_released_verify = verify


def verify(payload, store, now, policy, options):  # noqa: F811 - the patch replaces the released verify
    return _released_verify(payload, store, now + timedelta(days=3650), policy, options)
"""


def verdict_times(root: Path) -> tuple[list[int], list[float]]:
    """Seqs and unix times of a unit's outbox rows (read-only)."""
    conn = sqlite3.connect(f"file:{root / 'state' / 'data' / 'outbox.sqlite'}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT seq, ts FROM events ORDER BY seq").fetchall()
    finally:
        conn.close()
    return [r[0] for r in rows], [datetime.fromisoformat(r[1].replace("Z", "+00:00")).timestamp() for r in rows]


def longest_gap(times: list[float], around: float | None = None, window: float = 60.0) -> float:
    """Longest interval between consecutive verdicts (only those ending within `window` s after `around`)."""
    gaps = [(b - a, b) for a, b in itertools.pairwise(times)]
    if around is not None:
        gaps = [(g, b) for g, b in gaps if around <= b <= around + window]
    return max((g for g, _ in gaps), default=0.0)


def step_times(log: Path, version: str) -> dict[str, float]:
    """Seconds between a unit's logged update steps for `version` (staged, switching, gate passed)."""
    marks: dict[str, float] = {}
    patterns = {"staged": f"release {version} staged", "switch": f"-> {version} between people",
                "passed": f"release {version} passed its health gate"}
    for line in log.read_text(errors="replace").splitlines():
        for key, text in patterns.items():
            if text in line and key not in marks:
                marks[key] = datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()
    out: dict[str, float] = {}
    if "staged" in marks and "switch" in marks:
        out["staged_to_switch_s"] = marks["switch"] - marks["staged"]
    if "switch" in marks and "passed" in marks:
        out["switch_to_gate_passed_s"] = marks["passed"] - marks["switch"]
    return out


def run(units: int, canary: int, fps: float, workdir: Path) -> dict[str, Any]:
    ministry = Ministry(seed=24)
    pipeline = (ROOT / "scanner" / "pipeline.py").read_bytes()
    builds = workdir / "builds"
    archives = {v: build_release(ROOT, v, builds / f"{v}.tar.gz", patch=p) for v, p in (
        ("1.0.0", None), ("1.2.0", {"scanner/pipeline.py": pipeline + CLOCK_BUG}), ("1.3.0", None))}
    repo = ReleaseRepo.create(workdir / "repo", "bench passphrase", kdf_iterations=1000)
    repo.add_release(archives["1.0.0"], "1.0.0", channel="canary")
    repo.promote("1.0.0", "stable")
    server = StaticServer(repo.path / "public")
    (workdir / "mosquitto").mkdir()
    broker = Mosquitto(workdir / "mosquitto", make_conf(persistence=False), free_port())
    broker.start()
    statuses = MqttStatuses("127.0.0.1", broker.port)
    fleet: dict[str, ReleasedUnit] = {}
    result: dict[str, Any] = {"units": units, "canary": canary, "fps": fps}
    try:
        for i in range(units):
            name = f"unit-{i:02d}"
            config = write_unit(workdir / name, ministry=ministry, pinned_root=repo.pinned_root(),
                                metadata_url=server.metadata_url, targets_url=server.targets_url, people=3,
                                device=name, channel="canary" if i < canary else "stable",
                                mqtt_port=broker.port, gate_s=60, max_starts=3)
            text = config.read_text().replace("loop = false", "loop = true").replace("fps = 20", f"fps = {fps}")
            text = text.replace("hold_frames = 6", "hold_frames = 2").replace("gap_frames = 4", "gap_frames = 2")
            config.write_text(text.replace("idle_s = 1", "idle_s = 0.4"))
            out = CliRunner().invoke(scanner_cli, ["update", "provision", "--config", str(config)])
            assert out.exit_code == 0, out.output
            fleet[name] = ReleasedUnit(workdir / name / "opt", config, workdir / f"{name}.log")
        for unit in fleet.values():
            unit.supervise()
        ids = {name: f"ic7/{name}" for name in fleet}
        deadline = time.monotonic() + 300
        while not all(statuses().get(i, {}).get("software") == "1.0.0" for i in ids.values()):
            if time.monotonic() > deadline:
                raise RuntimeError("the fleet did not come up on 1.0.0")
            time.sleep(1)
        time.sleep(10)  # steady load before anything changes
        rings = [Ring("canary", tuple(ids[n] for n in list(fleet)[:canary])),
                 Ring("stable", tuple(ids[n] for n in list(fleet)[canary:]))]

        repo.add_release(archives["1.2.0"], "1.2.0", channel=None)
        started = time.monotonic()
        try:
            run_rollout(repo, "1.2.0", rings, statuses, ring_timeout_s=600, poll_s=1)
            result["bad_release_stopped"] = False
        except RolloutStopped as stop:
            result["bad_release_stopped"] = stop.report.channel == "canary"
            result["bad_release_failed_units"] = len(stop.report.failed)
        # Every canary rolls back, not just the first to report: wait for all of them.
        while time.monotonic() - started < 600 and not all(
                (Layout(workdir / n / "opt").load().last_failure or {}).get("version") == "1.2.0"
                for n in list(fleet)[:canary]):
            time.sleep(1)
        result["bad_release_rolled_back"] = sum(
            (Layout(workdir / n / "opt").load().last_failure or {}).get("version") == "1.2.0" for n in fleet)
        stable = repo.channel("stable")
        assert stable is not None  # the first release was published on it
        result["second_ring_promoted"] = stable["version"] != "1.0.0"
        result["bad_release_s"] = round(time.monotonic() - started, 1)

        repo.add_release(archives["1.3.0"], "1.3.0", channel=None)
        switch_at = time.time()
        started = time.monotonic()
        run_rollout(repo, "1.3.0", rings, statuses, ring_timeout_s=900, poll_s=1)
        result["rollout_s"] = round(time.monotonic() - started, 1)
        time.sleep(10)  # steady load after

        # Peer: a plain restart of one unit (no update), its pause measured the same way.
        peer = fleet[list(fleet)[-1]]
        restart_at = time.time()
        peer.unsupervise()
        peer.stop()
        peer.supervise()
        time.sleep(20)
    finally:
        for unit in fleet.values():
            unit.unsupervise()
        for unit in fleet.values():
            if unit.proc is not None and unit.proc.poll() is None:
                unit.proc.send_signal(signal.SIGTERM)
        for unit in fleet.values():
            unit.stop()
        statuses.close()
        server.close()
        broker.stop()

    produced = lost = doubled = 0
    normal: list[float] = []
    switch_pauses: list[float] = []
    for name in fleet:
        seqs, times = verdict_times(workdir / name)
        produced += len(seqs)
        doubled += len(seqs) - len(set(seqs))
        # A seq is reserved before its row commits; a gap is a verdict never stored. No unit is
        # killed here (switches are clean exits), so any gap is a loss.
        lost += (max(seqs) - min(seqs) + 1 - len(set(seqs))) if seqs else 0
        normal.extend(b - a for a, b in itertools.pairwise(times))
        switch_pauses.append(longest_gap(times, switch_at, result["rollout_s"] + 30))
    steps = [step_times(unit.log, "1.3.0") for unit in fleet.values()]
    for key in ("staged_to_switch_s", "switch_to_gate_passed_s"):
        values = [s[key] for s in steps if key in s]
        result[f"median_{key}"] = round(statistics.median(values), 1) if values else None
    peer_times = verdict_times(workdir / list(fleet)[-1])[1]
    peer_pause = longest_gap(peer_times, restart_at, 20)
    result.update({
        "verdicts_produced": produced, "verdicts_stored": produced, "lost": lost, "doubled": doubled,
        "median_interval_s": round(statistics.median(normal), 2),
        "longest_switch_pause_s": round(max(switch_pauses), 1),
        "median_switch_pause_s": round(statistics.median(switch_pauses), 1),
        "plain_restart_pause_s": round(peer_pause, 1),
        "switch_vs_plain_restart": round(max(switch_pauses) / peer_pause, 2) if peer_pause else None,
        "all_on_1.3.0": all(Layout(workdir / n / "opt").pointed("good") == "1.3.0" for n in fleet),
    })
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, default=20)
    parser.add_argument("--canary", type=int, default=4)
    parser.add_argument("--fps", type=float, default=2.0, help="Camera frames per second of each unit.")
    parser.add_argument("--json", action="store_true", help="Print one JSON object.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="chot-update-fleet-") as tmp:
        result = run(args.units, args.canary, args.fps, Path(tmp))
    if args.json:
        print(json.dumps(result))
        return
    for key, value in result.items():
        print(f"{key:28} {value}")


if __name__ == "__main__":
    main()
