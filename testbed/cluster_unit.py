"""A unit's reporting side as a real process, for failover tests: outbox + MqttLink, no camera.

`python -m testbed.cluster_unit CONFIG.json` records `record` events `pace` seconds apart
in a real SQLite outbox and reports them through scanner.mqtt.MqttLink to the brokers the
config lists, printing `recorded <seq> <device> <unix time>` for each and
`broker <host:port> <device>` whenever the node it is on changes, until the central has
acknowledged everything (or `seconds` pass): `drained backlog=<n> moves=<m> device=<device>`.

A config may instead list several units (`unit_group_config`): each gets its own outbox, MQTT
login, client id and MqttLink in its own thread of the one process, so a bench can run dozens
of real units on few cores. Recording also ends early once `stop_file` exists.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from common.typedconfig import parse
from scanner.config import MqttConfig
from scanner.mqtt import MqttLink
from scanner.outbox import Outbox


def unit_entry(*, device: str, checkpoint: str, password: str, addresses: list[tuple[str, int]], outbox: Path,
               protocol: str = "3.1.1") -> dict[str, Any]:
    """One unit's part of a config: its id, outbox file and MQTT settings."""
    (host, port), *rest = addresses
    return {"device": device, "checkpoint": checkpoint, "outbox": str(outbox),
            "mqtt": {"host": host, "port": port, "brokers": [f"{h}:{p}" for h, p in rest], "protocol": protocol,
                     "password": password, "keepalive": 10, "max_inflight": 10, "central_ack_timeout_s": 5.0}}


def unit_config(path: Path, *, device: str, checkpoint: str, password: str, addresses: list[tuple[str, int]],
                record: int, pace: float, seconds: float = 60.0, protocol: str = "3.1.1") -> Path:
    """Write the JSON config of one unit process."""
    unit = unit_entry(device=device, checkpoint=checkpoint, password=password, addresses=addresses,
                      outbox=path.with_suffix(".sqlite"), protocol=protocol)
    path.write_text(json.dumps({**unit, "record": record, "pace": pace, "seconds": seconds}))
    return path


def unit_group_config(path: Path, units: list[dict[str, Any]], *, record: int, pace: float, seconds: float,
                      stop_file: Path | None = None) -> Path:
    """Write the JSON config of one process running several units (`unit_entry` each)."""
    path.write_text(json.dumps({"units": units, "record": record, "pace": pace, "seconds": seconds,
                                "stop_file": str(stop_file) if stop_file else None}))
    return path


ROOT = Path(__file__).resolve().parent.parent


class UnitProcess:
    def __init__(self, config: Path) -> None:
        self.lines: list[str] = []
        # Its log (stderr) apart from its report lines (stdout), which must stay whole.
        self.log = config.with_suffix(".log")
        self.proc = subprocess.Popen([sys.executable, "-m", "testbed.cluster_unit", str(config)],
                                     cwd=ROOT, stdout=subprocess.PIPE, stderr=open(self.log, "ab"), text=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip())

    def brokers(self) -> list[str]:
        return [line.split()[1] for line in self.lines if line.startswith("broker ")]

    def recorded(self) -> list[int]:
        return [int(line.split()[1]) for line in self.lines if line.startswith("recorded ")]

    def recorded_by_device(self) -> dict[str, list[tuple[int, float]]]:
        """Each unit's (seq, unix time) of every verdict it recorded, in order."""
        out: dict[str, list[tuple[int, float]]] = {}
        for line in list(self.lines):
            if line.startswith("recorded "):
                _, seq, device, at = line.split()
                out.setdefault(device, []).append((int(seq), float(at)))
        return out

    def drained(self) -> dict[str, int]:
        """Each finished unit's backlog left at its end (0: the central acknowledged everything)."""
        out = {}
        for line in self.lines:
            if line.startswith("drained "):
                fields = dict(part.split("=", 1) for part in line.split()[1:])
                out[fields["device"]] = int(fields["backlog"])
        return out

    def finish(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(5)
        finally:
            self._reader.join(5)


class Worker:
    """`chot dashboard ingest` as a child process."""

    def __init__(self, config: Path, log: Path, worker: int | None = None) -> None:
        self.log = log
        with open(log, "a") as f:
            f.write("--- worker start ---\n")  # a restarted worker appends to the same log
        env = {**os.environ, "CHOT_DASHBOARD_CONFIG": str(config), "PYTHONPATH": str(ROOT)}
        which = ["--worker", str(worker)] if worker is not None else []  # its own broker account
        self.proc = subprocess.Popen([sys.executable, "-m", "chot", "-v", "dashboard", "ingest", *which], cwd=ROOT,
                                     env=env, stdout=open(log, "ab"), stderr=subprocess.STDOUT)

    def wait_reading(self, timeout: float = 60.0) -> bool:
        """Until it pulls from the stream (or it exited, or `timeout`)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            if "reading stream" in self.log.read_text(errors="replace").split("--- worker start ---")[-1]:
                return True
            time.sleep(0.1)
        return False

    def kill(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def drain_all(units: dict[str, UnitProcess], timeout: float) -> None:
    """Every unit process ends by itself with its outbox empty (all acknowledged by the central)."""
    for unit in units.values():
        assert unit.finish(timeout) == 0, "\n".join(unit.lines[-10:]) + unit.log.read_text(errors="replace")[-2000:]
        drained = unit.drained()
        assert drained and not any(drained.values()), "\n".join(unit.lines[-10:]) + unit.log.read_text(errors="replace")[-2000:]


def stop_all(units: dict[str, UnitProcess], workers: list[Worker] = ()) -> None:  # type: ignore[assignment]
    """Kill what is still running of the units, stop the workers."""
    for unit in units.values():
        if unit.proc.poll() is None:
            unit.proc.kill()
    for w in workers:
        w.stop()


def _fields(i: int) -> dict[str, Any]:
    return {"result": ("green", "yellow", "red")[i % 3], "reason": "complete_series",
            "policy": "vn-2021", "trust_version": 1}


class _Printer:
    """Report lines from every unit thread, each whole on stdout."""

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def __call__(self, line: str) -> None:
        with self._lock:
            print(line, flush=True)


def run_unit(unit: dict[str, Any], cfg: dict[str, Any], say: _Printer, start_delay: float = 0.0) -> None:
    """One unit: record at its pace into its own outbox, report through its own MqttLink, drain."""
    device = unit["device"]
    mqtt = parse(MqttConfig, unit["mqtt"])
    outbox = Outbox(unit["outbox"])
    link = MqttLink(mqtt, device, unit["checkpoint"], outbox,
                    lambda: {"state": "online", "backlog": outbox.backlog()}, lambda data: None,
                    backoff_min=0.2, backoff_max=2.0, connack_timeout=5.0)
    stop = threading.Event()
    stop_file = Path(cfg["stop_file"]) if cfg.get("stop_file") else None

    def watch() -> None:
        last = None
        while not stop.wait(0.05):
            if link.broker and link.broker != last:
                last = link.broker
                say(f"broker {last} {device}")

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    link.start()
    time.sleep(start_delay)  # units of one process do not all record at the same instant
    for i in range(cfg["record"]):
        if stop_file is not None and stop_file.exists():
            break
        seq = outbox.record(_fields(i), datetime.now(timezone.utc))
        say(f"recorded {seq} {device} {time.time():.3f}")
        link.wake()
        time.sleep(cfg["pace"])
    deadline = time.monotonic() + cfg["seconds"]
    while outbox.backlog() and time.monotonic() < deadline:
        time.sleep(0.05)
    say(f"drained backlog={outbox.backlog()} moves={link.moves} device={device}")
    stop.set()
    link.stop()
    outbox.close()


def main(path: str) -> int:
    cfg = json.loads(Path(path).read_text())
    units = cfg["units"] if "units" in cfg else [cfg]
    say = _Printer()
    threads = [threading.Thread(target=run_unit, args=(unit, cfg, say, cfg["pace"] * i / len(units)),
                                name=f"unit-{unit['device']}") for i, unit in enumerate(units)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
