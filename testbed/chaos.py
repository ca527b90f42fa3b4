"""Chaos run: real units, broker and ingest under faults; the counts must still come out exact.

    .venv/bin/python -m bench.chaos --units 20 --people 400 --broker-restarts 12 --json
    .venv/bin/python -m bench.chaos --national [--units 50] [--json]   (bench/chaos_national.py)

(bench/chaos.py is the command; this module is the rig it and the tests run.)

Every part is the real program: `chot scanner run` processes on replay cameras (QR images of
certificates issued for the run, one person per frame), the shipped Mosquitto config rendered by
dashboard.broker with per-device accounts and ACL, and `chot dashboard ingest` writing into a
SQLite store. While the units scan, the run kills and restarts Mosquitto (SIGTERM and SIGKILL in
turn), SIGKILLs units mid-publish and restarts them, stops the ingest (SIGTERM and SIGKILL in
turn) and starts it again, and fills one unit's disk (a tmpfs of its own) to the last byte. The
officer screens are polled throughout: each unit must keep showing new verdicts during outages.
At the end every unit's own outbox (its `counts` table, its backlog) is compared with the store,
per device and per result: produced == stored, zero pending, zero doubled.

tests/test_reliability_chaos.py runs a small, bounded version of the same `ChaosRun`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import getpass
import json
import logging
import os
import random
import secrets
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common.localnet import free_port, wait_for_port
from common.tomlwrite import dumps as to_toml
from keys.qr import write_png
from testbed.ministry import Ministry, tamper
from testbed.mosquitto import Mosquitto

ROOT = Path(__file__).resolve().parents[1]

logger = logging.getLogger(__name__)

CHECKPOINTS = ("IC7", "CAU-THANG-LONG", "KCN-YEN-PHONG")


@dataclass
class ChaosOptions:
    """How big and how rough one run is."""

    units: int = 6
    """Unit processes."""
    people: int = 150
    """Frames (one person each) every unit's camera shows, once; a restarted unit starts over."""
    fps: float = 12.0
    """Frames per second of each replay camera."""
    broker_restarts: int = 4
    """Broker restarts, SIGTERM and SIGKILL in turn."""
    unit_kills: int = 3
    """Units SIGKILLed mid-publish and restarted."""
    ingest_restarts: int = 2
    """Ingest stops (SIGTERM and SIGKILL in turn) and restarts."""
    fill_disk: bool = True
    """Fill one unit's data partition (a tmpfs; needs root) to the last byte for a while."""
    outage_s: float = 2.0
    """How long each outage lasts."""
    drain_timeout_s: float = 90.0
    """How long the end waits for backlogs to reach the store."""
    seed: int = 2021
    record_traffic: bool = False
    """Units reach the broker through a recorder that keeps every byte both ways (privacy test)."""
    officers: bool = True
    """A simulated officer signs in on each unit's screen and decides on yellows and reds, and
    records manual checks: decisions go through the same outbox and faults as verdicts."""


class WireRecorder:
    """A TCP forwarder to the broker that keeps every byte sent either way (all MQTT traffic)."""

    def __init__(self, target_port: int) -> None:
        import socket
        import threading

        self.target_port = target_port
        self.chunks: list[bytes] = []
        self._lock = threading.Lock()
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        self._stop = threading.Event()
        threading.Thread(target=self._accept, name="wire-recorder", daemon=True).start()

    def _accept(self) -> None:
        import socket
        import threading

        self._server.settimeout(0.2)
        while not self._stop.is_set():
            try:
                client, _ = self._server.accept()
            except OSError:
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=2)
            except OSError:
                client.close()  # broker down: the unit sees a refused link, as without us
                continue
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, a: Any, b: Any) -> None:
        try:
            a.settimeout(None)
            while data := a.recv(65536):
                with self._lock:
                    self.chunks.append(data)
                b.sendall(data)
        except OSError:
            pass  # a side closed or the chaos cut the link: the finally closes both
        finally:
            for s in (a, b):
                with contextlib.suppress(OSError):
                    s.close()

    def traffic(self) -> bytes:
        with self._lock:
            return b"".join(self.chunks)

    def stop(self) -> None:
        self._stop.set()
        self._server.close()


@dataclass
class UnitProc:
    """One `chot scanner run` and its files."""

    device: str
    checkpoint: str
    dir: Path
    screen_port: int
    password: str
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def data_dir(self) -> Path:
        return self.dir / "data"

    @property
    def outbox(self) -> Path:
        return self.data_dir / "outbox.sqlite"


@dataclass
class ChaosReport:
    """What was injected and what came out."""

    faults: Counter = field(default_factory=Counter)
    produced: dict[str, dict[str, int]] = field(default_factory=dict)
    stored: dict[str, dict[str, int]] = field(default_factory=dict)
    pending: dict[str, int] = field(default_factory=dict)
    stored_rows: int = 0
    distinct_device_seq: int = 0
    screen_checks: int = 0
    screen_stalls: list[str] = field(default_factory=list)
    decisions: int = 0
    """Decisions and manual checks the simulated officers had accepted by the units."""
    disk_full: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def produced_total(self) -> int:
        return sum(sum(r.values()) for r in self.produced.values())

    @property
    def stored_total(self) -> int:
        return sum(sum(r.values()) for r in self.stored.values())

    @property
    def lost(self) -> int:
        return max(0, self.produced_total - self.stored_total)

    @property
    def doubled(self) -> int:
        return (self.stored_rows - self.distinct_device_seq) + max(0, self.stored_total - self.produced_total)

    @property
    def exact(self) -> bool:
        return (self.produced == self.stored and not any(self.pending.values())
                and self.stored_rows == self.distinct_device_seq)

    def as_dict(self) -> dict[str, Any]:
        return {"faults": dict(self.faults), "produced_total": self.produced_total,
                "stored_total": self.stored_total, "lost": self.lost, "doubled": self.doubled,
                "exact": self.exact, "pending": self.pending, "produced": self.produced, "stored": self.stored,
                "screen_checks": self.screen_checks, "screen_stalls": self.screen_stalls,
                "decisions": self.decisions,
                "disk_full": self.disk_full, "seconds": round(self.seconds, 1)}


class ChaosRun:
    """Builds the central and the units in `workdir`, injects faults, reconciles."""

    def __init__(self, workdir: Path, options: ChaosOptions, ministry: Ministry | None = None) -> None:
        self.workdir = workdir
        self.opt = options
        self.ministry = ministry or Ministry(seed=options.seed)
        self.rng = random.Random(options.seed)
        self.report = ChaosReport()
        self.units: list[UnitProc] = []
        self.broker: Mosquitto | None = None
        self.ingest: subprocess.Popen[bytes] | None = None
        self.mounts: list[Path] = []
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("CHOT_")}
        self.env["PYTHONPATH"] = str(ROOT)
        self.issued: list[tuple[Any, str]] = []  # (keys' Issued, the text in its QR code)
        self.recorder: WireRecorder | None = None
        self._ids: dict[str, int] = {}  # device -> highest verdict id seen on its officer screen
        self.officers: list[Any] = []
        self.roster_keys: list[str] = []

    # -- set-up ---------------------------------------------------------------------------
    def setup(self) -> None:
        """Issue certificates, render QR frames, write the central and unit configs."""
        (self.workdir / "logs").mkdir(parents=True, exist_ok=True)
        frames = self._make_frames()
        self._setup_central()
        if self.opt.record_traffic:
            self.recorder = WireRecorder(self.port)
        for i in range(self.opt.units):
            self._setup_unit(i, frames)

    def _make_frames(self) -> list[Path]:
        """Distinct people (green, yellow and red), one QR PNG each, shared by the units."""
        now = dt.datetime.now(dt.timezone.utc)
        m = self.ministry
        kinds = []
        for i in range(24):
            if i % 4 == 0:  # yellow under vn-2021: one dose of two
                issued = m.issue_vaccination(doses=[(1, 2, (now - dt.timedelta(days=30)).date(), "astrazeneca")],
                                             now=now)
                text = issued.hc1
            elif i % 4 == 1:  # red: a tampered certificate, or one signed by a key nobody trusts
                issued = m.issue_vaccination(now=now, signer=None if i % 8 == 1 else m.rogue)
                text = tamper(issued.hc1, b"VN") if i % 8 == 1 else issued.hc1
            elif i % 4 == 2:  # yellow: a recent negative test
                issued = m.issue_test(now=now, sampled_at=now - dt.timedelta(hours=5))
                text = issued.hc1
            else:  # green: complete series
                issued = m.issue_vaccination(now=now)
                text = issued.hc1
            self.issued.append((issued, text))
            kinds.append(text)
        folder = self.workdir / "frames-src"
        folder.mkdir(exist_ok=True)
        out = []
        for i, text in enumerate(kinds):
            out.append(write_png(text, folder / f"p{i:02d}.png", scale=3, border=4))
        return out

    def _setup_central(self) -> None:
        from dashboard.config import parse_config
        from dashboard.devices import add_device, init_broker
        from dashboard.store import SqliteStore

        self.port = free_port()
        central = self.workdir / "central"
        self.central_data = {
            "data_dir": str(central),
            "mqtt": {"host": "127.0.0.1", "port": self.port,
                     "ingest": {"username": "chot-ingest", "password": secrets.token_urlsafe(12)},
                     "dashboard": {"username": "chot-dashboard", "password": secrets.token_urlsafe(12)}},
            "broker": {"listen_port": self.port, "listen_host": "127.0.0.1", "user": getpass.getuser()},
            "ingest": {"device_refresh_s": 0.5},
        }
        self.central_toml = self.workdir / "central.toml"
        self.central_toml.write_text(to_toml(self.central_data), encoding="utf-8")
        self.config = parse_config(self.central_data)
        assert self.config.database is not None  # parse_config fills in the default
        store = SqliteStore(self.config.database)
        init_broker(store, self.config)
        self.passwords = {}
        for i in range(self.opt.units):
            device = f"unit-{i:02d}"
            cp = CHECKPOINTS[i % len(CHECKPOINTS)]
            creds = add_device(store, self.config, device, cp, district=f"{i % 3:03d}", province="01",
                               checkpoint_name=f"Checkpoint {cp}", reload=False)
            self.passwords[device] = (cp, creds.password)
        if self.opt.officers:
            from dashboard import officers

            for n, cp in enumerate(CHECKPOINTS):
                officers.add_officer(store, self.config, cp, f"CA-{n:03d}", f"Officer {n}", "police",
                                     f"{482159 + n}", publish=False)  # published once the broker runs
            self.roster_keys = [officers.public_pem(self.config)]
        store.close()
        assert self.config.broker.mosquitto_conf is not None  # parse_config fills in the default
        conf = self.config.broker.mosquitto_conf.read_text(encoding="utf-8")
        (central / "mosquitto-run").mkdir(parents=True, exist_ok=True)
        self.broker = Mosquitto(central / "mosquitto-run", conf, self.port)

    def _setup_unit(self, i: int, frames: list[Path]) -> None:
        device = f"unit-{i:02d}"
        cp, password = self.passwords[device]
        udir = self.workdir / "units" / device
        camera = udir / "camera"
        camera.mkdir(parents=True)
        order = list(range(self.opt.people))
        for n in order:
            # Consecutive frames are never the same person: each frame is a new scan.
            src = frames[(n + i) % len(frames)]
            os.symlink(src, camera / f"f{n:05d}.png")
        (udir / "anchor.pem").write_bytes(self.ministry.anchor_pem)
        (udir / "bundle.json").write_bytes(self.ministry.bundle(version=1, roster_keys=self.roster_keys))
        unit = UnitProc(device, cp, udir, free_port(), password)
        if self.opt.fill_disk and i == 0:
            self._mount_small_disk(unit.data_dir)
        cfg = {
            "unit": {"device_id": device, "checkpoint": cp, "policy": "vn-2021"},
            "trust": {"anchor_file": "anchor.pem", "cache_dir": "data/trust", "bundle_file": "bundle.json"},
            "storage": {"data_dir": "data"},
            "camera": {"backend": "replay", "source": "camera", "fps": self.opt.fps, "loop": False},
            "debounce": {"gone_frames": 2, "gone_seconds": 0.05},
            "screen": {"enabled": True, "host": "127.0.0.1", "port": unit.screen_port, "verdict_seconds": 0.5},
            "mqtt": {"host": "127.0.0.1", "port": self.recorder.port if self.recorder else self.port,
                     "keepalive": 5, "max_inflight": 10},
        }
        (udir / "unit.toml").write_text(to_toml(cfg), encoding="utf-8")
        self.units.append(unit)

    def _mount_small_disk(self, path: Path, size_kb: int = 16384) -> None:
        """A tmpfs of its own under the unit's data dir, so filling it fills only that unit's disk."""
        path.mkdir(parents=True, exist_ok=True)
        if os.geteuid() != 0:
            self.report.disk_full["skipped"] = "not root: cannot mount a tmpfs"
            return
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kb}k,mode=0755", "tmpfs", str(path)],
                              capture_output=True, text=True, timeout=20)
        if done.returncode != 0:
            self.report.disk_full["skipped"] = f"mount failed: {done.stderr.strip()}"
            return
        self.mounts.append(path)

    # -- processes ------------------------------------------------------------------------
    def start(self) -> None:
        """Broker, ingest (its persistent session exists before any unit publishes), then units."""
        assert self.broker is not None
        self.broker.start()
        self.start_ingest()
        deadline = time.monotonic() + 30
        while "ingest connected" not in self._ingest_log() and time.monotonic() < deadline:
            self.keep_ingest_running()
            time.sleep(0.1)
        if self.opt.officers:
            from dashboard import officers
            from dashboard.store import SqliteStore

            assert self.config.database is not None
            store = SqliteStore(self.config.database)
            try:
                officers.publish_all(store, self.config)
            finally:
                store.close()
        for unit in self.units:
            self.start_unit(unit)
        for unit in self.units:
            wait_for_port(unit.screen_port, 60)
        if self.opt.officers:
            from testbed.officer import SimulatedOfficer

            for i, unit in enumerate(self.units):
                n = CHECKPOINTS.index(unit.checkpoint)
                officer = SimulatedOfficer(unit.device, unit.screen_port, f"CA-{n:03d}", f"{482159 + n}",
                                           no_phone=3, seed=self.opt.seed + i, poll_s=0.2)
                officer.start()
                self.officers.append(officer)

    def stop_officers(self) -> None:
        """No new decisions from here on (before the drain)."""
        for officer in self.officers:
            officer.stop()
            self.report.decisions += officer.decided + officer.manual
        self.officers = []

    def _ingest_log(self) -> str:
        path = self.workdir / "logs" / "ingest.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def keep_ingest_running(self) -> None:
        """Start the ingest again if it exited on its own, as systemd's Restart=on-failure does."""
        if self.ingest is not None and self.ingest.poll() is not None:
            self.report.faults["ingest_exited_and_restarted"] += 1
            self.start_ingest()

    def start_ingest(self) -> None:
        log = open(self.workdir / "logs" / "ingest.log", "ab")
        self.ingest = subprocess.Popen(
            [sys.executable, "-m", "chot", "-v", "dashboard", "--config", str(self.central_toml), "ingest"],
            cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()

    def stop_ingest(self, sig: int) -> None:
        if self.ingest is not None:
            _end(self.ingest, sig)
            self.ingest = None

    def start_unit(self, unit: UnitProc) -> None:
        log = open(unit.dir / f"unit-{unit.starts}.log", "ab")
        env = dict(self.env, CHOT_MQTT_PASSWORD=unit.password)
        unit.proc = subprocess.Popen(
            [sys.executable, "-m", "chot", "-v", "scanner", "run", "--config", str(unit.dir / "unit.toml")],
            cwd=unit.dir, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        unit.starts += 1

    def stop_unit(self, unit: UnitProc, sig: int) -> None:
        if unit.proc is not None:
            _end(unit.proc, sig)
            unit.proc = None

    def shutdown(self) -> None:
        """Stop everything we started and unmount our tmpfs; safe to call twice."""
        self.stop_officers()
        for unit in self.units:
            self.stop_unit(unit, signal.SIGTERM)
        self.stop_ingest(signal.SIGTERM)
        if self.broker is not None:
            self.broker.stop()
        if self.recorder is not None:
            self.recorder.stop()
        for path in self.mounts:
            subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=20)
        self.mounts.clear()

    # -- observation ----------------------------------------------------------------------
    def screen_state(self, unit: UnitProc) -> dict[str, Any] | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{unit.screen_port}/state", timeout=2) as r:
                return json.loads(r.read())
        except (OSError, ValueError):
            return None

    def units_keep_scanning(self, during: str, window_s: float, patience_s: float = 60.0) -> None:
        """Poll every live unit's screen for at least `window_s`: each must show a new verdict.

        The outage lasts while this watches. Past `window_s` it goes on until every unit has shown
        one (at most `patience_s`, a hang guard), so a unit slowed by a loaded machine is not taken
        for a stalled one: whether a verdict comes counts, not how soon."""
        before = {u.device: self._last_id(u) for u in self.units if u.proc is not None}
        started = time.monotonic()

        def waiting() -> list[UnitProc]:
            return [u for u in self.units if u.device in before and u.proc is not None and not self._finished(u)
                    and self._ids.get(u.device, 0) <= (before[u.device] or 0)]

        while True:
            time.sleep(0.25)
            for u in self.units:
                if u.device in before:
                    self._last_id(u)
            elapsed = time.monotonic() - started
            if elapsed >= patience_s or (elapsed >= window_s and not waiting()):
                break
        stalled = {u.device for u in waiting()}
        for u in self.units:
            if u.device not in before or u.proc is None or self._finished(u):
                continue
            self.report.screen_checks += 1
            if u.device in stalled:
                self.report.screen_stalls.append(f"{u.device} showed nothing new during {during}")

    def _last_id(self, unit: UnitProc) -> int | None:
        state = self.screen_state(unit)
        if state is not None and state.get("verdict"):
            self._ids[unit.device] = max(self._ids.get(unit.device, 0), int(state["verdict"]["id"]))
        return self._ids.get(unit.device)

    def _finished(self, unit: UnitProc) -> bool:
        """The unit's camera (its current process) has shown all its frames."""
        log = unit.dir / f"unit-{unit.starts - 1}.log"
        with contextlib.suppress(OSError):
            return "source ended" in log.read_text(errors="replace")
        return False

    # -- faults -----------------------------------------------------------------------------
    def chaos(self) -> None:
        """The fault schedule, spread over the time the cameras run."""
        o = self.opt
        faults: list[str] = (["broker"] * o.broker_restarts + ["unit"] * o.unit_kills
                             + ["ingest"] * o.ingest_restarts + (["disk"] if o.fill_disk and self.mounts else []))
        self.rng.shuffle(faults)
        broker_n = ingest_n = 0
        for fault in faults:
            self.keep_ingest_running()
            if fault == "broker":
                self._broker_fault(signal.SIGKILL if broker_n % 2 else signal.SIGTERM)
                broker_n += 1
            elif fault == "unit":
                self._unit_fault()
            elif fault == "ingest":
                self._ingest_fault(signal.SIGKILL if ingest_n % 2 else signal.SIGTERM)
                ingest_n += 1
            else:
                self._disk_fault()
            time.sleep(self.rng.uniform(0.3, 1.0))

    def _broker_fault(self, sig: int) -> None:
        assert self.broker is not None
        (self.broker.kill if sig == signal.SIGKILL else self.broker.stop)()
        self.report.faults[f"broker_{signal.Signals(sig).name}"] += 1
        self.units_keep_scanning(f"a broker outage ({signal.Signals(sig).name})", self.opt.outage_s)
        self.broker.start(timeout=20)
        self.keep_ingest_running()

    def _ingest_fault(self, sig: int) -> None:
        self.stop_ingest(sig)
        self.report.faults[f"ingest_{signal.Signals(sig).name}"] += 1
        self.units_keep_scanning("an ingest outage", self.opt.outage_s)
        self.start_ingest()

    def _unit_fault(self) -> None:
        """SIGKILL a unit while it has events in flight, then start it again."""
        live = [u for u in self.units if u.proc is not None]
        unit = self.rng.choice(live)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not self._has_backlog(unit):
            time.sleep(0.02)  # aim for a moment with events between outbox and broker
        self.stop_unit(unit, signal.SIGKILL)
        self.report.faults["unit_SIGKILL"] += 1
        self._ids.pop(unit.device, None)  # the new process counts its screen from zero
        time.sleep(0.3)
        self.start_unit(unit)

    def _has_backlog(self, unit: UnitProc) -> bool:
        with contextlib.suppress(sqlite3.Error):
            conn = sqlite3.connect(f"file:{unit.outbox}?mode=ro", uri=True, timeout=1)
            try:
                return conn.execute("SELECT count(*) FROM events").fetchone()[0] > 0
            finally:
                conn.close()
        return False

    def _disk_fault(self) -> None:
        """Fill the first unit's disk to the last byte, watch it keep judging, then free it."""
        unit = self.units[0]
        filler = unit.data_dir / "filler"
        st = os.statvfs(unit.data_dir)
        free_before = st.f_bavail * st.f_frsize
        with open(filler, "wb", buffering=0) as f, contextlib.suppress(OSError):
            while True:  # until ENOSPC: the disk is full
                f.write(b"\0" * 4096)
        st = os.statvfs(unit.data_dir)
        self.report.disk_full.update(device=unit.device, free_before=free_before,
                                     free_when_full=st.f_bavail * st.f_frsize)
        self.report.faults["disk_full"] += 1
        errors_seen = set()
        log = unit.dir / f"unit-{unit.starts - 1}.log"
        log_at = log.stat().st_size if log.exists() else 0
        deadline = time.monotonic() + max(3.0, self.opt.outage_s * 2)
        start_id = self._last_id(unit) or 0
        while time.monotonic() < deadline:
            state = self.screen_state(unit) or {}
            err = (state.get("status") or {}).get("outbox_error")
            if err:
                errors_seen.add(err[:120])
            self._last_id(unit)
            time.sleep(0.2)
        self.report.disk_full["outbox_errors_shown"] = sorted(errors_seen)
        with contextlib.suppress(OSError), open(log, "rb") as f:
            f.seek(log_at)
            during = f.read().decode(errors="replace")
            # Proof the disk really refused writes (the clock state, the trust cache, SQLite).
            self.report.disk_full["enospc_in_log"] = (during.count("No space left on device")
                                                       + during.count("database or disk is full"))
            self.report.disk_full["recordings_failed"] = during.count("recording the verdict failed")
        self.report.disk_full["kept_showing_verdicts"] = (self._ids.get(unit.device, 0) > start_id
                                                          or self._finished(unit))
        filler.unlink()

    # -- the end ----------------------------------------------------------------------------
    def wait_drained(self) -> None:
        """Until every camera is done and every outbox is empty and stored (or the timeout)."""
        deadline = time.monotonic() + self.opt.drain_timeout_s + self.opt.people / max(self.opt.fps, 1)
        self.stop_officers()
        while time.monotonic() < deadline:
            self.keep_ingest_running()
            produced = {u.device: self._produced(u)[0] for u in self.units}
            pending = [self._produced(u)[1] for u in self.units]
            if all(self._finished(u) for u in self.units) and not any(pending) and produced == self._stored():
                return
            time.sleep(0.5)

    def reconcile(self) -> ChaosReport:
        rep = self.report
        for u in self.units:
            rep.produced[u.device], rep.pending[u.device] = self._produced(u)
        rep.stored = self._stored()
        conn = sqlite3.connect(f"file:{self.config.database}?mode=ro", uri=True, timeout=5)
        try:
            rep.stored_rows = conn.execute("SELECT count(*) FROM events").fetchone()[0]
            rep.distinct_device_seq = conn.execute(
                "SELECT count(*) FROM (SELECT DISTINCT device, seq FROM events)").fetchone()[0]
        finally:
            conn.close()
        return rep

    def _produced(self, unit: UnitProc) -> tuple[dict[str, int], int]:
        """(verdicts recorded by result, events still queued) from the unit's own outbox."""
        if not unit.outbox.exists():
            return {}, 0
        conn = sqlite3.connect(f"file:{unit.outbox}?mode=ro", uri=True, timeout=5)
        try:
            rows = conn.execute("SELECT result, sum(n) FROM counts GROUP BY result").fetchall()
            pending = conn.execute("SELECT count(*) FROM events").fetchone()[0]
        except sqlite3.Error:
            return {}, -1
        finally:
            conn.close()
        return {r: int(n) for r, n in rows if n}, int(pending)

    def _stored(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {u.device: {} for u in self.units}
        try:
            conn = sqlite3.connect(f"file:{self.config.database}?mode=ro", uri=True, timeout=5)
        except sqlite3.Error:
            return out
        try:
            rows = conn.execute("SELECT device, result, count(*) FROM events GROUP BY device, result").fetchall()
        except sqlite3.Error:
            return out
        finally:
            conn.close()
        for device, result, n in rows:
            out.setdefault(device, {})[result] = int(n)
        return out

    def run(self) -> ChaosReport:
        """Set up, start, inject the faults, drain, reconcile; always stops what it started."""
        started = time.monotonic()
        try:
            self.setup()
            self.start()
            self.chaos()
            self.wait_drained()
            # Everything stops cleanly first, so the counts are read from the files as they stay.
            for unit in self.units:
                self.stop_unit(unit, signal.SIGTERM)
            self.stop_ingest(signal.SIGTERM)
            assert self.broker is not None
            self.broker.stop()
            self.reconcile()
        finally:
            self.shutdown()
        self.report.seconds = time.monotonic() - started
        return self.report


def _end(proc: subprocess.Popen[bytes], sig: int, timeout: float = 20) -> None:
    """Send `sig` and reap; SIGKILL if it does not go in time (no run hangs on a child)."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
