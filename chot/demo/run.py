"""The demo: a ministry, a broker, the ingest, the dashboard and several checkpoint units, on one machine.

Every part is the real program (`mosquitto`, `chot dashboard ingest|serve`, `chot scanner run`),
started as its own process from configs written here; only the cameras are scripted, showing
rendered phone screens. One unit reaches the broker through a link the demo cuts and restores,
to show store-and-forward. At the end the units' own counts are reconciled with the dashboard's.
"""

from __future__ import annotations

import datetime as dt
import getpass
import json
import logging
import os
import random
import secrets
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from common.localnet import free_port, wait_for_port
from common.tomlwrite import dumps as _toml
from chot.demo import central_counts
from chot.demo.env import (DASHBOARD_PASSWORD, INGEST_PASSWORD, SECRET_KEY, central_environment,
                           unit_environment)
from testbed.officer import SimulatedOfficer
from chot.demo.population import DemoCertificate, describe, make_ministry, make_population
from chot.demo.proxy import CutLinks
from chot.demo.watch import DashboardWatch

logger = logging.getLogger(__name__)

PASSPHRASE_ENV = "CHOT_DEMO_PASSPHRASE"
# The demo's outage is short, so its units report often and the dashboard flags silence soon
# (the field defaults are a 60 s status interval and a 90 s alarm).
DEMO_STATUS_INTERVAL_S = 3.0
DEMO_KEEPALIVE_S = 5
DEMO_OFFLINE_AFTER_S = 10
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never through a proxy
UNIT_START_ATTEMPTS = 3  # a unit whose screen port was taken meanwhile is tried again on another


@dataclass(frozen=True)
class UnitSpec:
    """One demo unit: where it stands and how it judges."""

    device: str
    checkpoint: str
    checkpoint_name: str
    district: str
    province: str
    policy: str
    flaky_link: bool = False


UNITS: tuple[UnitSpec, ...] = (
    UnitSpec("ic7-lane1", "IC7", "IC7 Nội Bài–Lào Cai", "Phù Ninh", "25", "vn-2021", flaky_link=True),
    UnitSpec("ic7-lane2", "IC7", "IC7 Nội Bài–Lào Cai", "Phù Ninh", "25", "vn-2021"),
    UnitSpec("thanglong-1", "CAU-THANG-LONG", "Cầu Thăng Long", "Đông Anh", "01", "vn-2021"),
    UnitSpec("yenphong-gate", "KCN-YEN-PHONG", "Cổng nhà máy KCN Yên Phong", "Yên Phong", "27", "workplace"),
)
# Provinces are national administrative codes: 25 Phú Thọ, 01 Hà Nội, 27 Bắc Ninh.
SUPERVISOR_PROVINCE = "25"
SUPERVISOR_PROVINCE_NAME = "Phú Thọ"
# One simulated officer per unit (staff data: ids and names may appear in reports). Their names
# share no part with the synthetic people's (keys.people), so the privacy scan of a demo run
# (tests/test_privacy.py) cannot mistake an officer for a scanned person.
OFFICERS: dict[str, tuple[str, str, str]] = {
    "ic7-lane1": ("CA-PT-0142", "Lò Văn Páo", "police"),
    "ic7-lane2": ("YT-PT-0031", "Kiều Thị Mến", "health"),
    "thanglong-1": ("CA-HN-0907", "Giàng A Dế", "police"),
    "yenphong-gate": ("BV-YP-0012", "Hầu Thị Pạng", "staff"),
}
NO_PHONE_SHARE = 0.05  # people with only the paper certificate, checked by hand


@dataclass
class Reconciliation:
    """Per device: what the unit produced (its own seq and counters) against what the store holds."""

    produced: dict[str, dict[str, int]] = field(default_factory=dict)
    stored: dict[str, dict[str, int]] = field(default_factory=dict)
    pending: dict[str, int] = field(default_factory=dict)
    accounted: dict[str, dict[str, int]] = field(default_factory=dict)
    duplicates: int = 0

    @property
    def exact(self) -> bool:
        """Nothing lost, nothing doubled: per device and result, the events stored centrally or
        still queued on the unit (as a set of seqs: one stored but not yet acknowledged is in
        both, once) are exactly what the unit produced."""
        return self.duplicates == 0 and all(
            self.accounted.get(device, {}) == produced for device, produced in self.produced.items())

    @property
    def delivered(self) -> bool:
        """Every verdict has reached the dashboard (no unit holds a backlog)."""
        return not any(self.pending.values())

    def as_dict(self) -> dict[str, object]:
        return {"produced": self.produced, "stored": self.stored, "pending": self.pending,
                "duplicates": self.duplicates, "exact": self.exact, "delivered": self.delivered}


class Demo:
    """Build, start, run and stop the whole system; every child process is ours to end."""

    def __init__(self, workdir: Path, *, web_port: int = 8000, people: int = 300, seed: int = 2021,
                 fps: float = 8.0, duration: float | None = None, difficulty: str = "medium",
                 out=sys.stdout) -> None:
        self.workdir = workdir.resolve()
        self.web_port_wanted = web_port
        self.people = people
        self.seed = seed
        self.fps = fps
        self.duration = duration
        self.difficulty = difficulty
        self.out = out
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.secrets: dict[str, str] = {}  # the central's; each child gets only its own (chot/demo/env.py)
        self.link: CutLinks | None = None
        self.passwords: dict[str, str] = {}
        self.now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
        self._stopping = threading.Event()

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    # -- set-up --------------------------------------------------------------------------------
    def setup(self) -> None:
        if self.workdir.exists():
            shutil.rmtree(self.workdir)
        (self.workdir / "logs").mkdir(parents=True)
        passphrase = os.environ.get(PASSPHRASE_ENV) or secrets.token_urlsafe(18)
        self.say(f"chot demo in {self.workdir}")
        self.say("  ministry: making a root (CSCA), document signers and the trust-list key ...")
        ministry = make_ministry(self.workdir / "ministry", passphrase, self.now)
        population = make_population(ministry, passphrase, self.people, self.seed, self.now)
        self.no_phone = max(1, round(self.people * NO_PHONE_SHARE / len(UNITS)))
        self.say(f"  {len(population)} people: {describe(population)}; and {self.no_phone * len(UNITS)} with no"
                 " phone, only the paper certificate")
        from dashboard.officers import public_pem
        from keys.bundle import publish

        self.anchor_file = ministry.anchor
        self._setup_central()
        # The ministry lists the dashboard's roster key in the bundle: units then trust its rosters.
        self.bundle = publish(ministry, passphrase, version=1, now=self.now, roster_keys=[public_pem(self.central)])
        self.bundle_file = self.workdir / "trust-bundle-v1.json"
        self.bundle_file.write_bytes(self.bundle)
        self._setup_units(population)

    def _setup_central(self) -> None:
        from dashboard.config import parse_config
        from dashboard.devices import add_device, init_broker
        from dashboard.scope import Scope
        from dashboard.store import open_store
        from dashboard.web.auth import hash_password

        central = self.workdir / "central"
        data = self._central_data(central)
        self.central_toml = self.workdir / "central.toml"
        self.central_toml.write_text(_toml(data), encoding="utf-8")
        self.central = parse_config(data)
        for name in (INGEST_PASSWORD, DASHBOARD_PASSWORD, SECRET_KEY):
            self.secrets[name] = secrets.token_urlsafe(24)
        # init_broker takes the service passwords from the config (not this process's environment).
        self.central.mqtt.ingest.password = self.secrets[INGEST_PASSWORD]
        self.central.mqtt.dashboard.password = self.secrets[DASHBOARD_PASSWORD]
        central.mkdir(parents=True, exist_ok=True)
        store = open_store(self._store_target())
        init_broker(store, self.central)
        self.credentials = {}
        for spec in UNITS:
            self.credentials[spec.device] = add_device(
                store, self.central, spec.device, spec.checkpoint, district=spec.district,
                province=spec.province, checkpoint_name=spec.checkpoint_name, policy=spec.policy, reload=False)
        from dashboard import officers

        self.pins: dict[str, str] = {}
        for spec in UNITS:
            officer_id, name, role = OFFICERS[spec.device]
            self.pins[spec.device] = officers.new_pin()
            officers.add_officer(store, self.central, spec.checkpoint, officer_id, name, role, self.pins[spec.device],
                                 publish=False)  # published once the broker runs
        self.officers: list[SimulatedOfficer] = []
        self.passwords = {"admin": secrets.token_urlsafe(9), "giamsat-phutho": secrets.token_urlsafe(9)}
        store.create_user("admin", hash_password(self.passwords["admin"]), "admin", Scope.all())
        store.create_user("giamsat-phutho", hash_password(self.passwords["giamsat-phutho"]), "supervisor",
                          Scope.of(provinces=[SUPERVISOR_PROVINCE]))
        store.close()

    def _central_data(self, central: Path) -> dict[str, Any]:
        """The central's config (the embedded default: Mosquitto, SQLite, one ingest, one web process)."""
        self.broker_port = free_port()
        self.web_port = free_port(self.web_port_wanted)
        return {
            "data_dir": str(central),
            "anchor_file": str(self.anchor_file),
            "web": {"host": "127.0.0.1", "port": self.web_port},
            "mqtt": {"host": "127.0.0.1", "port": self.broker_port},
            "broker": {"user": getpass.getuser(), "listen_host": "127.0.0.1", "listen_port": self.broker_port},
            "alarms": {"offline_after_s": DEMO_OFFLINE_AFTER_S},
        }

    def _store_target(self) -> str:
        """What the central store is: the SQLite file here, a postgresql:// URL in the national profile."""
        return str(self.central.database)

    def _broker_ports(self) -> list[int]:
        """The MQTT ports of the broker (one Mosquitto here; every node of a cluster)."""
        return [self.broker_port]

    def _unit_broker(self, via: Callable[[int], int] | None = None) -> dict[str, Any]:
        """A unit's `[mqtt]` address keys; `via` maps each broker port to the port the unit dials."""
        first, *rest = [via(p) if via else p for p in self._broker_ports()]
        table: dict[str, Any] = {"host": "127.0.0.1", "port": first}
        if rest:
            table["brokers"] = [f"127.0.0.1:{p}" for p in rest]
        return table

    def _setup_units(self, population: list[DemoCertificate]) -> None:
        rng = random.Random(self.seed + 1)
        self.unit_dirs: dict[str, Path] = {}
        self.unit_configs: dict[str, dict] = {}
        self.screen_ports: dict[str, int] = {}
        for spec in UNITS:
            udir = self.workdir / "units" / spec.device
            (udir / "data").mkdir(parents=True)
            crowd = list(population)
            rng.shuffle(crowd)
            if self.duration is not None:
                # A finite queue of people that ends before the demo does, so every backlog drains.
                frames = max(1.0, self.duration - 12.0) * self.fps
                per_person = 16 + 8
                crowd = crowd[: max(1, int(frames // per_person))]
            (udir / "people.txt").write_text("".join(c.payload + "\n" for c in crowd), encoding="utf-8")
            self.screen_ports[spec.device] = free_port()
            self.unit_configs[spec.device] = config = {
                "unit": {"device_id": spec.device, "checkpoint": spec.checkpoint, "policy": spec.policy},
                "camera": {"backend": "scripted", "source": str(udir / "people.txt"), "fps": self.fps,
                           "loop": self.duration is None, "hold_frames": 16, "gap_frames": 8,
                           "difficulty": self.difficulty},
                "mqtt": {**self._unit_broker(), "max_inflight": 10,
                         "reconnect_max_s": 8.0, "keepalive": DEMO_KEEPALIVE_S,
                         "status_interval_s": DEMO_STATUS_INTERVAL_S},
                "trust": {"anchor_file": str(self.anchor_file), "cache_dir": str(udir / "data" / "trust"),
                          "bundle_file": str(self.bundle_file)},
                "storage": {"data_dir": str(udir / "data")},
                "screen": {"enabled": True, "host": "127.0.0.1", "port": self.screen_ports[spec.device]},
            }
            self.unit_dirs[spec.device] = udir
            self._write_unit_config(spec.device)

    def _write_unit_config(self, device: str) -> None:
        (self.unit_dirs[device] / "unit.toml").write_text(_toml(self.unit_configs[device]), encoding="utf-8")

    # -- processes -----------------------------------------------------------------------------
    def _spawn(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        log = open(self.workdir / "logs" / f"{name}.log", "ab")
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=env, start_new_session=True)
        self.procs[name] = proc
        return proc

    def _chot(self) -> list[str]:
        return [sys.executable, "-m", "chot"]

    def start(self) -> None:
        self._start_broker()
        self._start_central_services()
        self._publish_trust()
        self._publish_rosters()
        for spec in UNITS:
            self._start_unit(spec)
        self._await_units()
        self._await_dashboard()
        for i, spec in enumerate(UNITS):
            officer = SimulatedOfficer(spec.device, self.screen_ports[spec.device], OFFICERS[spec.device][0],
                                       self.pins[spec.device], no_phone=self.no_phone, seed=self.seed + 10 + i)
            officer.start()
            self.officers.append(officer)

    def _start_broker(self) -> None:
        mosquitto = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self._spawn("mosquitto", [mosquitto, "-c", str(self.central.broker.mosquitto_conf)],
                    central_environment("mosquitto", os.environ, self.secrets))
        if not wait_for_port(self.broker_port, 15):
            raise RuntimeError(f"mosquitto did not start: see {self.workdir / 'logs' / 'mosquitto.log'}")

    def _central_command(self) -> list[str]:
        return self._chot() + ["dashboard", "--config", str(self.central_toml)]

    def _start_central_services(self) -> None:
        central = self._central_command()
        self._spawn("ingest", central + ["ingest"], central_environment("ingest", os.environ, self.secrets))
        self._spawn("dashboard", central + ["serve"], central_environment("dashboard", os.environ, self.secrets))

    def _await_dashboard(self) -> None:
        if not wait_for_port(self.web_port, 30) or self.procs["dashboard"].poll() is not None:
            raise RuntimeError(f"the dashboard did not start: {self.exit_reason('dashboard')}")

    def _start_unit(self, spec: UnitSpec) -> None:
        if spec.flaky_link:
            if self.link is None:
                self.link = CutLinks(self._broker_ports())
                self.link.start()
            self.unit_configs[spec.device]["mqtt"].update(self._unit_broker(self.link.port))
            self._write_unit_config(spec.device)
        config = self.unit_dirs[spec.device] / "unit.toml"
        env = unit_environment(os.environ, self.credentials[spec.device].password)
        self._spawn(spec.device, self._chot() + ["scanner", "run", "--config", str(config)], env)

    def _await_units(self, timeout: float = 90.0) -> None:
        """Wait until every unit serves its officer screen. A screen port is picked free before the
        unit starts, and something else on the machine may take it meanwhile (any outgoing
        connection's local port comes from the same range): such a unit exits saying so, and is
        started again on another port, a few times. Any other early exit is an error, with why."""
        for spec in UNITS:
            for attempt in range(1, UNIT_START_ATTEMPTS + 1):
                if self._screen_up(spec.device, timeout):
                    break
                reason = self.exit_reason(spec.device)
                if "screen.port: cannot listen" not in reason or attempt == UNIT_START_ATTEMPTS:
                    raise RuntimeError(f"unit {spec.device} did not start: {reason}")
                logger.warning("unit %s: its screen port was taken, trying another: %s", spec.device, reason)
                self.screen_ports[spec.device] = free_port()
                self.unit_configs[spec.device]["screen"]["port"] = self.screen_ports[spec.device]
                self._write_unit_config(spec.device)
                self._start_unit(spec)

    def _screen_up(self, device: str, timeout: float) -> bool:
        """True once the unit's own screen answers (its /state page), False if the unit exited or
        did not answer in `timeout` seconds (then it is stopped)."""
        proc, port = self.procs[device], self.screen_ports[device]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with _DIRECT.open(f"http://127.0.0.1:{port}/state", timeout=2) as answer:
                    if "desk" in json.loads(answer.read()) and proc.poll() is None:
                        return True
            except (OSError, ValueError):  # not listening yet, or not our screen
                pass
            time.sleep(0.2)
        self._terminate(device)
        return False

    def exit_reason(self, name: str) -> str:
        """How a child ended (or that it still runs) and the last lines of its log."""
        proc = self.procs[name]
        code = proc.poll()
        state = "still running" if code is None else f"exited with code {code}"
        log = self.workdir / "logs" / f"{name}.log"
        try:
            tail = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-3:]
        except OSError:
            tail = []
        return f"{state}; {log}: " + (" | ".join(tail) or "(empty)")

    def _publish_trust(self) -> None:
        """Check and publish the signed bundle retained on the trust topic, as an operator would."""
        argv = self._chot() + ["dashboard", "--config", str(self.central_toml), "publish-trust", str(self.bundle_file)]
        done = subprocess.run(argv, env=central_environment("publish-trust", os.environ, self.secrets), timeout=60,
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"publishing the trust bundle failed: {done.stderr.strip() or done.stdout.strip()}")

    def _publish_rosters(self) -> None:
        """Sign and publish each checkpoint's officer roster, retained, as an operator would."""
        argv = self._chot() + ["dashboard", "--config", str(self.central_toml), "publish-rosters"]
        done = subprocess.run(argv, env=central_environment("publish-rosters", os.environ, self.secrets), timeout=60,
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"publishing the rosters failed: {done.stderr.strip() or done.stdout.strip()}")

    def banner(self) -> None:
        self.say("")
        self.say(f"  Dashboard:   http://127.0.0.1:{self.web_port}/")
        self.say(f"    admin            password {self.passwords['admin']}")
        self.say(f"    giamsat-phutho   password {self.passwords['giamsat-phutho']}   (supervisor, {SUPERVISOR_PROVINCE_NAME} only)")
        for spec in UNITS:
            link = "  (its link drops and comes back)" if spec.flaky_link else ""
            self.say(f"  Officer screen {spec.device:<14} http://127.0.0.1:{self.screen_ports[spec.device]}/"
                     f"  {spec.checkpoint_name}, policy {spec.policy}{link}")
        for spec in UNITS:
            officer_id, name, _role = OFFICERS[spec.device]
            self.say(f"  Officer at {spec.device:<14} {name} ({officer_id}), PIN {self.pins[spec.device]}"
                     " (a simulated officer signs in and decides)")
        self.say(f"  {self._central_line()}; logs in {self.workdir / 'logs'}")
        self.say("  Ctrl-C stops everything." if self.duration is None else f"  Ends by itself after {self.duration:.0f} s.")
        self.say("")

    def _central_line(self) -> str:
        return f"Broker on 127.0.0.1:{self.broker_port}"

    # -- running -------------------------------------------------------------------------------
    def run(self) -> Reconciliation:
        started = time.monotonic()
        cut_at, restore_at = self._outage_window()
        next_report = started + 10
        watch = DashboardWatch(self.web_port, "admin", self.passwords["admin"])
        alarm_seen = False
        try:
            while not self._stopping.is_set():
                elapsed = time.monotonic() - started
                if self.duration is not None and elapsed >= self.duration - 6:
                    break
                if self.link is not None and self.link.up and cut_at <= elapsed < restore_at:
                    self.link.cut()
                    alarm_seen = False
                    self.say(f"[{elapsed:5.0f}s] link of {self._flaky().device} cut: it keeps judging and queues its events")
                elif self.link is not None and not self.link.up and elapsed >= restore_at:
                    self.link.restore()
                    self.say(f"[{elapsed:5.0f}s] link of {self._flaky().device} back: at its next retry it reconnects and its backlog drains")
                if self.link is not None and not self.link.up and not alarm_seen:
                    alarm_seen = self._report_alarm(watch, elapsed)
                self._faults(elapsed)
                for name, proc in self.procs.items():
                    if proc.poll() is not None:
                        raise RuntimeError(f"{name} exited with code {proc.returncode}: see {self.workdir / 'logs' / (name + '.log')}")
                if time.monotonic() >= next_report:
                    self.say(f"[{elapsed:5.0f}s] {self._progress()}")
                    next_report += 10
                self._stopping.wait(0.5)
        finally:
            if self.link is not None:
                self.link.restore()
            self._end_faults()
        return self.finish()

    def _faults(self, elapsed: float) -> None:
        """More failures to show while running (none in the embedded default)."""

    def _end_faults(self) -> None:
        """Undo what `_faults` broke before the backlogs drain."""

    def _report_alarm(self, watch: DashboardWatch, elapsed: float) -> bool:
        """Say so once the dashboard shows the cut unit's offline alarm (as a supervisor sees it)."""
        try:
            alarm = watch.offline(self._flaky().device)
        except (OSError, ValueError, RuntimeError) as err:  # the dashboard is busy or restarting
            logger.debug("reading the dashboard's alarms failed: %s", err)
            return False
        if alarm is None:
            return False
        backlog = alarm.get("backlog_at_least")
        queued = f"; at least {backlog} verdicts queued on it" if backlog else ""
        self.say(f"[{elapsed:5.0f}s] dashboard alarm: {alarm['text']} (devices page{queued})")
        return True

    def _flaky(self) -> UnitSpec:
        return next(s for s in UNITS if s.flaky_link)

    def _outage_window(self) -> tuple[float, float]:
        total = self.duration if self.duration is not None else 120.0
        return total * 0.25, total * 0.6

    def _progress(self) -> str:
        counts = {"green": 0, "yellow": 0, "red": 0}
        backlog = 0
        for device in self.unit_dirs:
            produced, pending = self._unit_counts(device)
            for k, v in produced.items():
                counts[k] = counts.get(k, 0) + v
            backlog += pending
        stored = sum(sum(v.values()) for v in self._stored_counts().values())
        verdicts = sum(counts.get(k, 0) for k in ("green", "yellow", "red"))
        return (f"units judged {verdicts} (green {counts['green']}, yellow {counts['yellow']}, "
                f"red {counts['red']}); officers decided {counts.get('decision', 0)}, manual checks "
                f"{counts.get('manual', 0)}; queued on units {backlog}; counted centrally {stored}")

    def stop_requested(self) -> None:
        self._stopping.set()

    # -- the end -------------------------------------------------------------------------------
    def finish(self, drain_timeout: float = 30.0) -> Reconciliation:
        """Let backlogs drain, stop units then central, and compare the counts."""
        # After Ctrl-C the units are still scanning, so there is no end to wait for: what is still
        # queued on a unit is reported as such (it stays in the unit's outbox, not lost).
        for officer in getattr(self, "officers", []):
            officer.stop()  # no new decisions while the backlogs drain
        deadline = time.monotonic() + (drain_timeout if self.duration is not None else 0)
        while time.monotonic() < deadline and not self._drained():
            time.sleep(0.5)
        for spec in UNITS:
            self._terminate(spec.device)
        time.sleep(1.0)  # the ingest commits its last batch
        result = self.reconcile()
        self.shutdown()
        return result

    def _drained(self) -> bool:
        if any(self._unit_counts(d)[1] for d in self.unit_dirs):
            return False
        produced = {d: self._unit_counts(d)[0] for d in self.unit_dirs}
        return produced == self._stored_counts()

    def _seqs(self, path: Path, query: str, *args: str) -> dict[int, str]:
        """seq -> result from a unit's outbox, read-only."""
        if not path.exists():
            return {}
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            return {int(seq): result for seq, result in conn.execute(query, args)}
        except sqlite3.Error:
            return {}
        finally:
            conn.close()

    def _accounted(self, device: str) -> dict[str, int]:
        """Per result, the seqs stored centrally or still queued on the unit, each counted once."""
        queued = self._seqs(self.unit_dirs[device] / "data" / "outbox.sqlite", "SELECT seq, result FROM events")
        stored = central_counts.stored_seqs(self._store_target(), device)
        out: dict[str, int] = {}
        for result in {**queued, **stored}.values():
            out[result] = out.get(result, 0) + 1
        return out

    def _unit_counts(self, device: str) -> tuple[dict[str, int], int]:
        """(events produced by result, events still queued) read from the unit's own outbox."""
        path = self.unit_dirs[device] / "data" / "outbox.sqlite"
        if not path.exists():
            return {}, 0
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            pending = conn.execute("SELECT count(*) FROM events").fetchone()[0]
            rows = conn.execute("SELECT result, sum(n) FROM counts GROUP BY result").fetchall()
        except sqlite3.Error:
            return {}, 0
        finally:
            conn.close()
        return {r: int(n) for r, n in rows if n}, int(pending)

    def _stored_counts(self) -> dict[str, dict[str, int]]:
        return central_counts.stored_counts(self._store_target(), list(self.unit_dirs))

    def reconcile(self) -> Reconciliation:
        rec = Reconciliation()
        for device in self.unit_dirs:
            produced, pending = self._unit_counts(device)
            rec.produced[device] = produced
            rec.pending[device] = pending
            rec.accounted[device] = self._accounted(device)
        rec.stored = self._stored_counts()
        rec.duplicates = central_counts.doubled(self._store_target())
        return rec

    def _terminate(self, name: str, timeout: float = 15.0) -> None:
        proc = self.procs.get(name)
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            logger.warning("%s did not stop in %ss: killing it", name, timeout)
            proc.kill()
            proc.wait(5)

    def shutdown(self) -> None:
        """Stop every process we started, newest first; none is left behind."""
        for name in reversed(list(self.procs)):
            self._terminate(name)
        if self.link is not None:
            self.link.stop()
            self.link = None
