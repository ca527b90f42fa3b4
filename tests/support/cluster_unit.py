"""A unit's reporting side as a real process, for failover tests: outbox + MqttLink, no camera.

`python -m tests.support.cluster_unit CONFIG.json` records `record` events `pace` seconds apart
in a real SQLite outbox and reports them through scanner.mqtt.MqttLink to the brokers the
config lists, printing `recorded <seq>` for each and `broker <host:port>` whenever the node it
is on changes, until the central has acknowledged everything (or `seconds` pass):
`drained backlog=<n>`.
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


def unit_config(path: Path, *, device: str, checkpoint: str, password: str, addresses: list[tuple[str, int]],
                record: int, pace: float, seconds: float = 60.0, protocol: str = "3.1.1") -> Path:
    """Write the JSON config of one unit process."""
    (host, port), *rest = addresses
    path.write_text(json.dumps({
        "device": device, "checkpoint": checkpoint, "outbox": str(path.with_suffix(".sqlite")),
        "record": record, "pace": pace, "seconds": seconds,
        "mqtt": {"host": host, "port": port, "brokers": [f"{h}:{p}" for h, p in rest], "protocol": protocol,
                 "password": password, "keepalive": 10, "max_inflight": 10, "central_ack_timeout_s": 5.0},
    }))
    return path


ROOT = Path(__file__).resolve().parent.parent.parent


class UnitProcess:
    def __init__(self, config: Path) -> None:
        self.lines: list[str] = []
        # Its log (stderr) apart from its report lines (stdout), which must stay whole.
        self.log = config.with_suffix(".log")
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.support.cluster_unit", str(config)],
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

    def __init__(self, config: Path, log: Path) -> None:
        self.log = log
        with open(log, "a") as f:
            f.write("--- worker start ---\n")  # a restarted worker appends to the same log
        env = {**os.environ, "CHOT_DASHBOARD_CONFIG": str(config), "PYTHONPATH": str(ROOT)}
        self.proc = subprocess.Popen([sys.executable, "-m", "chot", "-v", "dashboard", "ingest"], cwd=ROOT, env=env,
                                     stdout=open(log, "ab"), stderr=subprocess.STDOUT)

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
        assert unit.lines[-1].startswith("drained backlog=0"), "\n".join(unit.lines[-10:]) + unit.log.read_text(errors="replace")[-2000:]


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


def main(path: str) -> int:
    cfg = json.loads(Path(path).read_text())
    mqtt = parse(MqttConfig, cfg["mqtt"])
    outbox = Outbox(cfg["outbox"])
    link = MqttLink(mqtt, cfg["device"], cfg["checkpoint"], outbox,
                    lambda: {"state": "online", "backlog": outbox.backlog()}, lambda data: None,
                    backoff_min=0.2, backoff_max=2.0, connack_timeout=5.0)
    stop = threading.Event()

    def watch() -> None:
        last = None
        while not stop.wait(0.05):
            if link.broker and link.broker != last:
                last = link.broker
                print(f"broker {last}", flush=True)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    link.start()
    for i in range(cfg["record"]):
        seq = outbox.record(_fields(i), datetime.now(timezone.utc))
        print(f"recorded {seq}", flush=True)
        link.wake()
        time.sleep(cfg["pace"])
    deadline = time.monotonic() + cfg["seconds"]
    while outbox.backlog() and time.monotonic() < deadline:
        time.sleep(0.05)
    print(f"drained backlog={outbox.backlog()} moves={link.moves}", flush=True)
    stop.set()
    link.stop()
    outbox.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
