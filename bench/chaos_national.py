"""The national profile's full failure run: every part restarted or killed under a steady load.

    .venv/bin/python -m bench.chaos --national [--units 50] [--workers 2] [--settle 10] [--json]

Real processes on loopback (bench/national_rig.py): PostgreSQL, a 3-node NATS cluster, ingest
workers, two web processes behind nginx, and 50 simulated units (the real outbox and MQTT link
each) judging at a steady pace. One fault at a time, the cluster back to ready after each:
every broker node restarted (SIGTERM, start), every worker, every web process, PostgreSQL once;
then one node, one worker and the web process serving the supervisor's stream SIGKILLed and
started again. Throughout, a supervisor's live overview is watched through nginx
(testbed/live_page.py). After each fault every unit must have recorded a verdict during it, the
store must have grown and the live page must have shown news again. At the end the units stop
judging, wait for the central's acknowledgements, and what each recorded is compared with the
store: exit status 1 if anything was lost or doubled, or a fault or check failed.

tests/test_national_chaos.py is the bounded version the suite runs (3 units, no web part).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

from testbed.chaos_report import FaultResult, NationalReport, format_table, unit_gap  # noqa: E402
from testbed.live_page import LivePage, longest_gap  # noqa: E402
from bench.national_rig import SUPERVISOR, NationalRig, RigOptions  # noqa: E402

NODE_READY_S = 240.0  # a rejoining node brings every MQTT session's consumer up to date first
STORE_GROWS_S = 120.0
LIVE_BACK_S = 60.0


class NationalChaos:
    """Runs the faults on a started rig and fills the report."""

    def __init__(self, rig: NationalRig, report: NationalReport, settle_s: float = 10.0) -> None:
        self.rig = rig
        self.report = report
        self.settle_s = settle_s
        self.live: LivePage | None = None

    def faults(self) -> list[tuple[str, Callable[[], str]]]:
        """(name, action returning how ready the cluster is after it), in the order they run."""
        rig = self.rig
        assert rig.cluster is not None
        out: list[tuple[str, Callable[[], str]]] = []
        for i in range(len(rig.cluster.nodes)):
            out.append((f"restart {rig.cluster[i].name}", lambda i=i: self._node(i, kill=False)))
        for k in range(1, len(rig.workers) + 1):
            out.append((f"restart worker {k}", lambda k=k: self._worker(k, signal.SIGTERM)))
        for i in range(len(rig.webs)):
            out.append((f"restart web {i + 1}", lambda i=i: self._web(i, signal.SIGTERM)))
        out.append(("restart PostgreSQL", self._postgres))
        out.append((f"SIGKILL {rig.cluster[1].name}", lambda: self._node(1, kill=True)))
        out.append(("SIGKILL worker 1", lambda: self._worker(1, signal.SIGKILL)))
        out.append(("SIGKILL web (stream)", lambda: self._web(rig.stream_carrier(), signal.SIGKILL)))
        return out

    # -- the faults --------------------------------------------------------------------------
    def _cluster_ready(self) -> str:
        assert self.rig.cluster is not None
        try:
            self.rig.cluster.wait_ready(NODE_READY_S)
            return "healthy"
        except RuntimeError:
            self.rig.cluster.wait_ready(60, healthy=False)  # serving, one node still catching up
            return "quorum"

    def _node(self, index: int, kill: bool) -> str:
        cluster = self.rig.cluster
        assert cluster is not None
        node = cluster[index]
        node.kill() if kill else node.stop()
        cluster.wait_ready(120)  # the two others elect leaders and take the node's units
        node.start()
        return self._cluster_ready()

    def _worker(self, k: int, sig: int) -> str:
        worker = self.rig.workers[k - 1]
        if sig == signal.SIGKILL:
            worker.kill()
        else:
            worker.stop()
        self.rig.start_worker(k)
        return "healthy"

    def _web(self, index: int, sig: int) -> str:
        web = self.rig.webs[index]
        web.end(sig)
        web.start()
        if not web.serving():
            raise RuntimeError(f"web {index + 1} did not come back:\n{web.log.read_text()[-2000:]}")
        return "healthy"

    def _postgres(self) -> str:
        self.rig.pg.stop()
        time.sleep(2)
        self.rig.pg.start()
        return "healthy"

    # -- the checks after each fault ---------------------------------------------------------
    def _wait(self, check: Callable[[], bool], timeout: float) -> bool:
        # Not tests.support.central.wait_until: its 50 ms polling would open 20 PostgreSQL
        # connections a second on a machine this run already loads.
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check():
                return True
            time.sleep(0.5)
        return check()

    def run_fault(self, name: str, action: Callable[[], str]) -> FaultResult:
        result = FaultResult(name)
        stored_before = self.rig.stored_count()
        start = time.time()
        try:
            result.ready = action()
        except Exception as e:  # noqa: BLE001 - the report says which fault failed and why
            result.ready = f"failed: {e}"[:2000]
        # Every unit must record during the fault: give the slowest unit a few of its paces.
        pace = self.rig.options.pace_s
        self._wait(lambda: time.time() >= start + 3 * pace, 3 * pace + 1)
        recorded = self.rig.recorded()
        result.units_kept_recording = len(recorded) == len(self.rig.devices) and all(
            any(t >= start for _, t in verdicts) for verdicts in recorded.values())
        result.stored_grew = self._wait(lambda: self.rig.stored_count() > max(stored_before, 0), STORE_GROWS_S)
        # Ready again includes the supervisor seeing news: a stream ended by the fault comes back
        # after its `retry:` (10 s after a store outage), a refused one 15 s later.
        grown = time.time()
        updates = self.live.log.updates if self.live is not None else []
        result.live_page_back = self._wait(lambda: bool(updates) and updates[-1] > grown, LIVE_BACK_S)
        result.started_at, result.ended_at = start, time.time()
        result.seconds = result.ended_at - start
        return result

    def run(self) -> None:
        plan = self.faults()
        self.report.faults_planned = len(plan)
        if not self._wait(lambda: self.rig.stored_count() > 2 * len(self.rig.devices), 120):
            raise RuntimeError(f"nothing stored before the faults:\n{self.rig.logs()}")
        live = self.live = LivePage(self.rig.nginx_port, SUPERVISOR, self.rig.supervisor_password)
        live.start()
        watched_from = time.time()
        try:
            if not self._wait(lambda: len(live.log.updates) >= 3, 60):
                raise RuntimeError(f"the supervisor's live page shows no updates: {live.log}")
            watched_from = time.time()
            for name, action in plan:
                time.sleep(self.settle_s)  # steady running between faults, so gaps belong to one fault
                result = self.run_fault(name, action)
                self.report.faults.append(result)
                self.report.load_1min_max = max(self.report.load_1min_max, round(os.getloadavg()[0], 2))
                print(f"{name}: {result.seconds:.0f} s, {result.ready[:200]}", file=sys.stderr, flush=True)
                if result.ready.startswith("failed"):
                    self.report.error = f"{name}: {result.ready}"
                    break
        finally:
            live.stop()
        log = live.log
        # The end of watching closes the last gap: a page that stopped updating counts until then.
        seen = [*log.updates, time.time()]
        self.report.longest_live_gap_s = longest_gap(seen, watched_from)
        for fault in self.report.faults:
            fault.longest_live_gap_s = longest_gap(seen, fault.started_at, fault.ended_at)
        self.report.live_updates = len(log.updates)
        self.report.live_streams_opened = log.streams_opened
        self.report.live_refused = dict(log.refused)

    def reconcile(self) -> None:
        """Compare what every unit recorded with what the store holds, per device and seq."""
        r = self.report
        recorded = self.rig.recorded()
        stored, counted = self.rig.stored_seqs()
        produced = {d: {seq for seq, _ in v} for d, v in recorded.items()}
        r.produced = sum(len(s) for s in produced.values())
        r.stored = sum(len(s) for s in stored.values())
        r.lost = sum(len(produced[d] - set(stored.get(d, []))) for d in produced)
        r.unexpected = sum(len(set(s) - produced.get(d, set())) for d, s in stored.items())
        # The events table cannot hold a (device, seq) twice; a roll-up counting one twice can.
        r.doubled = max(0, counted - r.stored) + sum(len(s) - len(set(s)) for s in stored.values())
        drained = self.rig.drained()
        r.left_on_units = sum(drained.values()) + sum(1 for d in recorded if d not in drained)
        r.longest_unit_gap_s = unit_gap(recorded)
        for fault in r.faults:
            fault.longest_unit_gap_s = unit_gap(recorded, fault.started_at, fault.ended_at)
        r.units_kept_recording = bool(r.faults) and all(f.units_kept_recording for f in r.faults)


def run(workdir: Path, options: RigOptions, command: str, settle_s: float = 10.0) -> NationalReport:
    """Build the rig, run every fault, drain, reconcile; always stops every process it started."""
    started = time.monotonic()
    procs = -(-options.units // options.units_per_process)
    report = NationalReport(options.units, procs, options.workers, 2, command=command,
                            load_average_start=[round(x, 2) for x in os.getloadavg()])
    rig = NationalRig(workdir, options)
    chaos = NationalChaos(rig, report, settle_s)
    # nats-server inherits this working directory; 2.9.10 was seen writing a consumer's
    # meta.inf/meta.sum there during node restarts, so give it a folder of its own to show.
    nats_cwd = workdir / "nats-cwd"
    nats_cwd.mkdir(exist_ok=True)
    back_to = os.getcwd()
    os.chdir(nats_cwd)
    try:
        rig.start()
        try:
            chaos.run()
        except Exception as e:  # noqa: BLE001 - still drain and count what the units recorded
            report.error = str(e)[:2000]
        if report.error:
            rig.revive_nodes()
        rig.stop_units(options.drain_s + 30)
        chaos.reconcile()
        if chaos.live is not None:  # for a closer look at the gaps
            (workdir / "live-updates.json").write_text(json.dumps(chaos.live.log.updates))
    except Exception as e:  # noqa: BLE001 - the rig itself failed: say so in the report
        report.error = report.error or str(e)[:2000]
    finally:
        rig.shutdown()
        os.chdir(back_to)
        report.stray_nats_files = sorted(p.name for p in nats_cwd.iterdir())
        report.seconds = time.monotonic() - started
        report.load_average = [round(x, 2) for x in os.getloadavg()]
    return report


def main(argv: list[str] | None = None) -> int:
    """Run the national failure run and print its figures (exit 1 unless exact)."""
    p = argparse.ArgumentParser(prog="bench.chaos --national", description=__doc__.splitlines()[0])
    p.add_argument("--units", type=int, default=50, help="simulated units (each its own outbox and MQTT login)")
    p.add_argument("--units-per-process", type=int, default=10, help="units sharing one Python process")
    p.add_argument("--workers", type=int, default=2, help="ingest workers")
    p.add_argument("--pace", type=float, default=1.0, help="seconds between two verdicts of one unit")
    p.add_argument("--settle", type=float, default=10.0, help="seconds of steady running before each fault")
    p.add_argument("--workdir", type=Path, help="keep the run's files here (default: a temp folder)")
    p.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    args = p.parse_args(argv)
    if args.units < 1 or args.workers < 1 or args.units_per_process < 1 or args.pace <= 0 or args.settle < 0:
        p.error("--units, --workers and --units-per-process must be at least 1, --pace above 0, --settle not below 0")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="chot-national-chaos-"))
    workdir.mkdir(parents=True, exist_ok=True)
    options = RigOptions(units=args.units, units_per_process=args.units_per_process, workers=args.workers,
                         pace_s=args.pace)
    command = "python -m bench.chaos --national " + " ".join(argv if argv is not None else sys.argv[1:])
    report = run(workdir, options, command.strip(), args.settle)
    print(json.dumps(report.as_json(), indent=2) if args.json else format_table(report))
    print(f"files: {workdir}", file=sys.stderr)
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
