"""Benchmark: chot's ingest (Mosquitto -> SQLite store) against the same broker's bare rate,
and the delay from a unit's publish to the change showing in a browser's live stream.

One run, one broker started from the shipped config (firmware-config/mosquitto/):
1. bare: 200 simulated units (own logins, QoS 1) publish events; a plain paho subscriber (QoS 1,
   no store) receives them. Rate = events / (start signal -> last event received).
2. chot: the same units publish as many new events; the real `dashboard.ingest.MqttIngest` stores
   them (one commit per batch, acknowledged after commit). Rate = events / (start -> all stored).
   Steps 1 and 2 are one round on a fresh broker and store; the best of --rounds counts, since
   this shared machine's other load comes and goes.
3. delay: the units publish at a steady rate (--rate, default 5,000 ev/s) while a probe unit at
   its own checkpoint publishes one event at a time and reads the web app's server-sent event
   stream (`chot dashboard serve`, a separate process, logged in over HTTP) until the
   checkpoint's total shows it: that is the publish-to-browser delay. (During a flood the delay
   is only the queue ahead of the probe, so it is measured at a load the ingest keeps up with.)
The simulated units send prebuilt MQTT 3.1.1 packets over raw sockets (so they are not the
bottleneck) from their own process; the probe runs in its own process, as a browser would.

4. backends: the flood of step 2 again for each store backend and worker count (by default
   SQLite with 1 worker, PostgreSQL with 1, 2 and 4), each worker a `chot dashboard ingest
   --worker K` process of its own as deployed, sharing the events through the broker's shared
   subscription; rate = events / (start -> all stored, read from the store's change marker),
   beside the bare rate of the same round. PostgreSQL runs durably (fsync on), as SQLite does.

    .venv/bin/python -m bench.ingest [--devices 200] [--events 150] [--backend all] [--workers 1,2,4] [--json]

Aims (issue 4): ingest >= half the bare rate and >= 5,000 events/s; stream delay p95 < 500 ms.
Aims (issue 14): PostgreSQL with 4 workers >= SQLite with 1, and >= 5,000 events/s.
"""

from __future__ import annotations

import contextlib
import getpass
import html
import http.client
import json
import multiprocessing as mp
import os
import platform
import re
import secrets
import selectors
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import click

ROOT = Path(__file__).resolve().parent.parent

import paho.mqtt.client as mqtt  # noqa: E402

from dashboard.broker import mqtt_client  # noqa: E402
from dashboard.config import DashboardConfig, parse_config  # noqa: E402
from dashboard.devices import add_device, init_broker  # noqa: E402
from dashboard.ingest import MqttIngest  # noqa: E402
from dashboard.scope import Scope  # noqa: E402
from dashboard.store import Store, open_store  # noqa: E402
from common.localnet import free_port, wait_for_port  # noqa: E402
from testbed.mosquitto import Mosquitto  # noqa: E402
from testbed.postgres import PostgresCluster  # noqa: E402

REPRODUCE = ".venv/bin/python -m bench.ingest"
PROBE_CHECKPOINT = "PROBE"
_TOTAL_RE = re.compile(r'data-test-id="checkpoint-today-total">([0-9.,\s]+)<')


def _event(seq: int) -> bytes:
    ts = datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return json.dumps({"seq": seq, "ts": ts, "result": "green", "reason": "complete_series",
                       "policy": "vn-2021", "trust_version": 1}).encode()


# -- publishers (child process) ------------------------------------------------------------------

def _mqtt_string(text: str) -> bytes:
    data = text.encode()
    return len(data).to_bytes(2, "big") + data


def _mqtt_packet(first_byte: int, body: bytes) -> bytes:
    """A packet with MQTT's variable-length 'remaining length' header."""
    length, encoded = len(body), bytearray()
    while True:
        digit, length = length % 128, length // 128
        encoded.append(digit | (0x80 if length else 0))
        if not length:
            return bytes([first_byte]) + bytes(encoded) + body


class RawUnit:
    """A unit's MQTT 3.1.1 connection that sends prebuilt QoS 1 PUBLISH packets.

    The simulated units must not be the bottleneck of a broker benchmark: paho spends tens of
    microseconds of Python per publish, while prebuilt packets cost one send per batch.
    """

    def __init__(self, port: int, device: str, checkpoint: str, password: str) -> None:
        self.topic = f"chot/v1/{checkpoint}/{device}/event"
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        body = (_mqtt_string("MQTT") + bytes([4, 0xC2]) + (60).to_bytes(2, "big")  # user+password, clean
                + _mqtt_string(f"bench-{device}") + _mqtt_string(device) + _mqtt_string(password))
        self.sock.sendall(_mqtt_packet(0x10, body))
        connack = self.sock.recv(4)
        if len(connack) != 4 or connack[0] != 0x20 or connack[3] != 0:
            raise RuntimeError(f"broker refused {device}: {connack!r}")
        self.acked = 0
        self._partial = 0

    def packets(self, payloads: list[bytes], first_id: int) -> list[bytes]:
        """QoS 1 PUBLISH packets with packet ids first_id, first_id + 1, ..."""
        topic = _mqtt_string(self.topic)
        return [_mqtt_packet(0x32, topic + (((first_id + i) % 65535) + 1).to_bytes(2, "big") + p)
                for i, p in enumerate(payloads)]

    def read_acks(self) -> None:
        """Count PUBACKs (4 bytes each in MQTT 3.1.1) that have arrived."""
        data = self.sock.recv(65536)
        if not data:
            raise RuntimeError("broker closed a unit's connection")
        self._partial += len(data)
        self.acked, self._partial = self.acked + self._partial // 4, self._partial % 4


def publish_load(port: int, units: list[tuple[str, str, str]], per_unit: int, seq_from: int,
                 ready: Any, go: Any, result: Any, timeout: float, rate: float | None = None) -> None:
    """Connect every unit, wait for `go`, publish `per_unit` events each (at `rate` ev/s in all if
    given, else as fast as possible), then wait for every PUBACK."""
    conns = [RawUnit(port, device, checkpoint, password) for device, checkpoint, password in units]
    # Packets are made before the clock starts: the bench times the broker and the ingest.
    payloads = [_event(seq_from + i) for i in range(per_unit)]
    packets = [c.packets(payloads, seq_from) for c in conns]
    selector = selectors.DefaultSelector()
    for c in conns:
        c.sock.setblocking(False)
        selector.register(c.sock, selectors.EVENT_READ, c)
    ready.set()
    go.wait(timeout)
    deadline = time.monotonic() + timeout
    started = time.monotonic()
    chunk = 5 if rate is None else 1  # packets per unit per round
    sent = 0
    for offset in range(0, per_unit, chunk):
        for c, unit_packets in zip(conns, packets):
            data = b"".join(unit_packets[offset:offset + chunk])
            c.sock.setblocking(True)
            c.sock.sendall(data)
            c.sock.setblocking(False)
            sent += min(chunk, per_unit - offset)
        for key, _ in selector.select(timeout=0):
            key.data.read_acks()
        if rate is not None:
            ahead = started + sent / rate - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)
    published_at = time.monotonic()
    while sum(c.acked for c in conns) < sent and time.monotonic() < deadline:
        for key, _ in selector.select(timeout=0.5):
            key.data.read_acks()
    result.put({"published": sum(c.acked for c in conns), "send_seconds": published_at - started,
                "seconds": time.monotonic() - started})
    for c in conns:
        c.sock.close()


# -- the probe: publish one event, read the live stream (child process) ------------------------

class _Session:
    """A logged-in HTTP session with the dashboard (cookie kept by hand: stdlib only)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.cookie = ""

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, str]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        all_headers = {"Cookie": self.cookie, **(headers or {})}
        conn.request(method, path, body=body, headers=all_headers)
        resp = conn.getresponse()
        for value in resp.headers.get_all("Set-Cookie") or []:
            self.cookie = value.split(";", 1)[0]
        text = resp.read().decode("utf-8", "replace")
        conn.close()
        return resp.status, text

    def login(self, username: str, password: str) -> None:
        status, page = self.request("GET", "/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page)
        if status != 200 or token is None:
            raise RuntimeError(f"login page not served (HTTP {status})")
        body = urllib.parse.urlencode({"csrf_token": html.unescape(token.group(1)), "username": username,
                                       "password": password, "next": ""}).encode()
        status, _ = self.request("POST", "/login", body, {"Content-Type": "application/x-www-form-urlencoded"})
        if status not in (302, 303):
            raise RuntimeError(f"login refused (HTTP {status})")


def _stream_totals(session: _Session, path: str, totals: list[tuple[float, int]], stop: threading.Event) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", session.port, timeout=30)
    conn.request("GET", path, headers={"Cookie": session.cookie, "Accept": "text/event-stream"})
    resp = conn.getresponse()
    if resp.status != 200:
        raise RuntimeError(f"stream refused (HTTP {resp.status})")
    while not stop.is_set():
        line = resp.fp.readline()
        if not line:
            break
        if line.startswith(b"data: "):
            found = _TOTAL_RE.search(json.loads(line[6:]).get("html", ""))
            if found:
                totals.append((time.monotonic(), int(re.sub(r"\D", "", found.group(1)))))
    conn.close()


def probe(port: int, web_port: int, device: str, password: str, user: tuple[str, str], go: Any,
          stop: Any, result: Any, max_probes: int, sent_count: Any, timeout: float) -> None:
    """Publish one event at a time and time how long until the stream shows the new total."""
    delays: list[float] = []
    try:
        session = _Session(web_port)
        session.login(*user)
        totals: list[tuple[float, int]] = []
        reader_stop = threading.Event()
        reader = threading.Thread(target=_stream_totals, daemon=True, name="sse-reader",
                                  args=(session, f"/stream/checkpoint/{PROBE_CHECKPOINT}", totals, reader_stop))
        reader.start()
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-{device}", protocol=mqtt.MQTTv311)
        client.username_pw_set(device, password)
        client.connect("127.0.0.1", port, keepalive=60)
        client.loop_start()
        deadline = time.monotonic() + timeout
        while not totals and time.monotonic() < deadline:  # the stream's first render
            time.sleep(0.01)
        go.wait(timeout)
        for seq in range(1, max_probes + 1):
            # The first probe goes even if the load has ended: on a busy machine this process can
            # take longer to start and log in than a short paced load lasts.
            if (stop.is_set() and seq > 1) or time.monotonic() > deadline:
                break
            seen = len(totals)
            sent = time.monotonic()
            client.publish(f"chot/v1/{PROBE_CHECKPOINT}/{device}/event", _event(seq), qos=1)
            with sent_count.get_lock():
                sent_count.value += 1
            while time.monotonic() - sent < 5.0:
                hits = [at for at, total in totals[seen:] if total >= seq]
                if hits:
                    delays.append(hits[0] - sent)
                    break
                time.sleep(0.002)
            time.sleep(0.05)
        reader_stop.set()
        client.disconnect()
        client.loop_stop()
        result.put({"delays": delays})
    except Exception as e:  # noqa: BLE001 - reported in the table instead of a hung run
        result.put({"delays": delays, "error": f"{type(e).__name__}: {e}"})


# -- the run -----------------------------------------------------------------------------------

def _bench_config(folder: Path, port: int, web_port: int, store_url: str | None = None,
                  workers: int = 1) -> tuple[DashboardConfig, Path]:
    data: dict[str, Any] = {
        "data_dir": str(folder / "central"),
        "mqtt": {"port": port, "ingest": {"username": "chot-ingest", "password": secrets.token_urlsafe(12)},
                 "dashboard": {"username": "chot-dashboard", "password": secrets.token_urlsafe(12)}},
        "broker": {"listen_port": port, "user": getpass.getuser()},
        "web": {"port": web_port, "secret_key": secrets.token_urlsafe(32)},
        "ingest": {"workers": workers},
    }
    if store_url:
        data["store"] = {"url": store_url}
    path = folder / "central.toml"
    lines = [f'data_dir = "{data["data_dir"]}"', "[web]", f"port = {web_port}",
             f'secret_key = "{data["web"]["secret_key"]}"', "[mqtt]", f"port = {port}",
             "[broker]", f"listen_port = {port}", f'user = "{getpass.getuser()}"',
             "[ingest]", f"workers = {workers}"]
    if store_url:
        lines += ["[store]", f'url = "{store_url}"']
    path.write_text("\n".join(lines) + "\n")
    return parse_config(data), path


def _wait(check: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.005)
    return bool(check())


def _bare_rate(port: int, units: list[tuple[str, str, str]], per_unit: int, seq_from: int,
               config: DashboardConfig, timeout: float) -> dict[str, Any]:
    """A bare QoS 1 subscriber: the ingest's login and MQTT client (buffered reads), but it only
    counts, and paho acknowledges each message on receipt."""
    received = [0, 0.0]
    sub = mqtt_client(config.mqtt, config.mqtt.ingest, "bench-bare", buffered=True)

    def on_message(c: Any, u: Any, m: Any) -> None:
        received[0] += 1
        received[1] = time.monotonic()

    subscribed = threading.Event()
    sub.on_message = on_message
    sub.on_subscribe = lambda *a: subscribed.set()
    sub.connect("127.0.0.1", port, keepalive=60)
    sub.loop_start()
    sub.subscribe("chot/v1/+/+/event", qos=1)
    subscribed.wait(10)
    out = _run_load(port, units, per_unit, seq_from, lambda: received[0], timeout)
    out["seconds"] = (received[1] - out.pop("started")) if received[0] else float("nan")
    sub.disconnect()
    sub.loop_stop()
    return out


def _run_load(port: int, units: list[tuple[str, str, str]], per_unit: int, seq_from: int,
              count: Any, timeout: float, go: Any = None, rate: float | None = None) -> dict[str, Any]:
    """Start the publisher process, give the start signal, wait until `count()` reaches the total."""
    ctx = mp.get_context("spawn")
    ready, go = ctx.Event(), go or ctx.Event()
    result: Any = ctx.Queue()
    proc = ctx.Process(target=publish_load,
                       args=(port, units, per_unit, seq_from, ready, go, result, timeout, rate))
    proc.start()
    try:
        if not ready.wait(timeout):
            raise RuntimeError("the simulated units did not connect in time")
        total = len(units) * per_unit
        started = time.monotonic()
        go.set()
        done = _wait(lambda: count() >= total, timeout)
        finished = time.monotonic()
        published = result.get(timeout=timeout)
    finally:
        proc.join(10)
        if proc.is_alive():
            proc.kill()
    return {"events": total, "received": count(), "complete": done, "started": started,
            "seconds": finished - started, "publisher": published}


@dataclass
class _Central:
    """A central (broker from the shipped config, store, registered units) in a temporary folder."""

    folder: Path
    port: int
    web_port: int
    config: DashboardConfig
    toml_path: Path
    store: Store
    broker: Mosquitto
    units: list[tuple[str, str, str]]
    probe_password: str
    web_password: str


@contextlib.contextmanager
def _central(devices: int, store_url: str | None = None, workers: int = 1) -> Iterator[_Central]:
    """Set up a fresh central with `devices` units (plus a probe unit and an admin), then tear down."""
    from dashboard.web.auth import hash_password  # noqa: PLC0415 - the web app's own hasher

    folder = Path(tempfile.mkdtemp(prefix="chot-bench-ingest-"))
    port, web_port = free_port(), free_port()
    config, toml_path = _bench_config(folder, port, web_port, store_url, workers)
    store = open_store(config.store_target())
    broker = None
    try:
        init_broker(store, config)
        units = []
        for i in range(devices):
            checkpoint = f"CP{i // 4:03d}"  # four units per checkpoint
            creds = add_device(store, config, f"unit{i:03d}", checkpoint, f"D{i // 20:02d}",
                               f"P{i // 100:02d}", reload=False)
            units.append((creds.device, checkpoint, creds.password))
        probe_creds = add_device(store, config, "probe01", PROBE_CHECKPOINT, "D99", "P99", reload=False)
        web_password = secrets.token_urlsafe(16)
        store.create_user("bench", hash_password(web_password), "admin", scopes=Scope.all())
        assert config.broker.mosquitto_conf is not None
        broker = Mosquitto(folder, config.broker.mosquitto_conf.read_text(), port)
        broker.start()
        yield _Central(folder, port, web_port, config, toml_path, store, broker, units, probe_creds.password,
                       web_password)
    finally:
        if broker is not None:
            broker.stop()
        store.close()
        shutil.rmtree(folder, ignore_errors=True)


def _floods(devices: int, per_unit: int, timeout: float) -> dict[str, Any]:
    """One round: the bare flood, then the same flood into the real ingest (a fresh central)."""
    with _central(devices) as c:
        bare = _bare_rate(c.port, c.units, per_unit, 1, c.config, timeout)
        ingest = MqttIngest(c.store, c.config)
        ingest.start()
        try:
            chot = _run_load(c.port, c.units, per_unit, per_unit + 1, lambda: ingest.stats.stored, timeout)
            ingest.wait_idle(10)
        finally:
            ingest.stop()
        chot.pop("started", None)
        stats = ingest.stats
        return {"bare": bare, "chot": chot, "ingest_commits": stats.commits,
                "rejected": stats.rejected_total, "duplicates": stats.duplicates}


def _stream_delay(devices: int, probes: int, paced_rate: float, paced_s: float, timeout: float) -> dict[str, Any]:
    """A steady load into the real ingest while the probe times publish -> live stream."""
    with _central(devices) as c:
        # The web app in its own process, as deployed: `chot dashboard serve`.
        env = {**os.environ, "CHOT_DASHBOARD_CONFIG": str(c.toml_path)}
        server = subprocess.Popen([sys.executable, "-c", "from chot.cli import main; main()", "dashboard", "serve"],
                                  cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        ingest = MqttIngest(c.store, c.config)
        ctx = mp.get_context("spawn")
        prober = None
        try:
            wait_for_port(c.web_port, 20)
            ingest.start()
            go, stop, probe_result = ctx.Event(), ctx.Event(), ctx.Queue()
            probes_sent = ctx.Value("i", 0)
            prober = ctx.Process(target=probe, args=(c.port, c.web_port, "probe01", c.probe_password,
                                                     ("bench", c.web_password), go, stop, probe_result, probes,
                                                     probes_sent, timeout))
            prober.start()
            per_unit = max(1, int(paced_rate * paced_s / len(c.units)))
            paced = _run_load(c.port, c.units, per_unit, 1, lambda: ingest.stats.stored - probes_sent.value,
                              timeout, go=go, rate=paced_rate)
            paced.pop("started", None)
            stop.set()
            try:
                probed = probe_result.get(timeout=30)
            except Exception:  # noqa: BLE001 - an empty queue: the table says so
                probed = {"delays": [], "error": "probe gave no result"}
        finally:
            if prober is not None:
                prober.join(10)
                if prober.is_alive():
                    prober.kill()
            ingest.stop()
            server.terminate()
            server.wait(10)
        return {"paced": paced, "paced_rate": paced_rate, "probe": probed}


def _start_workers(c: _Central, workers: int) -> list[subprocess.Popen[bytes]]:
    """`chot dashboard ingest --worker K` processes, returned once each is subscribed."""
    env = {**os.environ, "CHOT_INGEST_MQTT_PASSWORD": c.config.mqtt.ingest.resolved_password() or ""}
    procs = []
    for k in range(1, workers + 1):
        log = open(c.folder / f"ingest-{k}.log", "wb")  # noqa: SIM115 - closed with the folder
        procs.append(subprocess.Popen([sys.executable, "-m", "chot", "-v", "dashboard", "-c", str(c.toml_path),
                                       "ingest", "--worker", str(k)], cwd=ROOT, env=env, stdout=log,
                                      stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL))
    for k, proc in enumerate(procs, start=1):
        log_path = c.folder / f"ingest-{k}.log"
        if not _wait(lambda: "connected" in log_path.read_text(errors="replace") or proc.poll() is not None, 60):
            raise RuntimeError(f"ingest worker {k} did not connect: {log_path.read_text(errors='replace')[-500:]}")
        if proc.poll() is not None:
            raise RuntimeError(f"ingest worker {k} exited: {log_path.read_text(errors='replace')[-500:]}")
    time.sleep(0.3)  # the subscribe right after the connection
    return procs


def _stop_workers(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()


def _backend_flood(devices: int, per_unit: int, timeout: float, store_url: str | None, workers: int) -> dict[str, Any]:
    """One round of one backend and worker count: bare flood, then the flood into the workers."""
    with _central(devices, store_url, workers) as c:
        bare = _bare_rate(c.port, c.units, per_unit, 1, c.config, timeout)
        procs = _start_workers(c, workers)
        try:
            base = c.store.change_marker()
            chot = _run_load(c.port, c.units, per_unit, per_unit + 1, lambda: c.store.change_marker() - base, timeout)
        finally:
            _stop_workers(procs)
        chot.pop("started", None)
        stored = c.store.change_marker() - base
        return {"bare": bare, "chot": chot, "stored": stored, "duplicates": 0 if stored == chot["events"] else None}


def backend_combinations(backend: str, workers: list[int]) -> list[tuple[str, int]]:
    """(backend, workers) pairs to measure: SQLite runs one worker only (it cannot share a store)."""
    combos = []
    if backend in ("all", "sqlite"):
        combos.append(("sqlite", 1))
    if backend in ("all", "postgres"):
        combos += [("postgres", n) for n in workers]
    return combos


def run_backends(devices: int, per_unit: int, timeout: float, combos: list[tuple[str, int]],
                 rounds: int) -> dict[str, list[dict[str, Any]]]:
    """Every combination, `rounds` times each, on a fresh central (and database) every round."""
    results: dict[str, list[dict[str, Any]]] = {}
    cluster = None
    try:
        if any(b == "postgres" for b, _ in combos):
            cluster = PostgresCluster(durable=True)
            cluster.start()
        for backend, workers in combos:
            key = f"{backend}_{workers}w"
            for r in range(rounds):
                url = cluster.create_database(f"bench_{key}_{r}") if backend == "postgres" and cluster else None
                results.setdefault(key, []).append(_backend_flood(devices, per_unit, timeout, url, workers))
    finally:
        if cluster is not None:
            cluster.remove()
    return results


def run(devices: int, per_unit: int, probes: int, timeout: float, paced_rate: float = 5000.0,
        paced_s: float = 8.0, rounds: int = 3, combos: list[tuple[str, int]] | None = None) -> dict[str, Any]:
    """Flood rounds (each on a fresh central), then the stream-delay run, then the backends;
    returns the raw figures."""
    floods = [_floods(devices, per_unit, timeout) for _ in range(rounds)]
    raw = {"rounds": floods, "devices": devices, "per_unit": per_unit,
           **_stream_delay(devices, probes, paced_rate, paced_s, timeout)}
    raw["backends"] = run_backends(devices, per_unit, timeout, combos or [], rounds) if combos else {}
    return raw


def _rate(part: dict[str, Any]) -> float:
    return part["events"] / part["seconds"] if part["complete"] and part["seconds"] > 0 else 0.0


def summarize(raw: dict[str, Any]) -> dict[str, Any]:
    """Best rate of the rounds for bare and chot, their ratio, and delay percentiles."""
    bares = [_rate(r["bare"]) for r in raw["rounds"]]
    chots = [_rate(r["chot"]) for r in raw["rounds"]]
    bare, chot = max(bares), max(chots)
    delays = sorted(d * 1000 for d in raw["probe"].get("delays", []))

    def pct(p: float) -> float | None:
        return delays[min(len(delays) - 1, int(round(p * (len(delays) - 1))))] if delays else None

    last = raw["rounds"][-1]
    return {
        "devices": raw["devices"], "events_per_flood": raw["rounds"][0]["bare"]["events"],
        "rounds": len(raw["rounds"]),
        "bare_events_per_s": round(bare), "chot_events_per_s": round(chot),
        "bare_each_round": [round(x) for x in bares], "chot_each_round": [round(x) for x in chots],
        "chot_over_bare": round(chot / bare, 3) if bare else None,
        "complete": all(r["bare"]["complete"] and r["chot"]["complete"] for r in raw["rounds"]),
        "ingest_commits": last["ingest_commits"], "duplicates": sum(r["duplicates"] for r in raw["rounds"]),
        "rejected": sum(r["rejected"] for r in raw["rounds"]),
        "paced_target_per_s": raw["paced_rate"],
        "paced_achieved_per_s": round(raw["paced"]["events"] / raw["paced"]["publisher"]["send_seconds"]),
        "paced_stored_per_s": round(_rate(raw["paced"])), "paced_complete": raw["paced"]["complete"],
        "stream_probes": len(delays),
        "stream_delay_ms": {"p50": pct(0.5), "p95": pct(0.95), "max": delays[-1] if delays else None},
        "probe_error": raw["probe"].get("error"),
        "aims": {"chot_ge_half_bare": bool(bare) and chot >= bare / 2, "chot_ge_5000": chot >= 5000,
                 "stream_p95_lt_500ms": bool(delays) and (pct(0.95) or 1e9) < 500},
        **_summarize_backends(raw.get("backends", {})),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "load_average": [round(x, 1) for x in os.getloadavg()]},
        "command": REPRODUCE,
    }


NATIONAL_CHECKPOINTS, SCANS_PER_HOUR = 10_000, 300  # peak: every checkpoint busy at once
NATIONAL_EVENTS_PER_S = NATIONAL_CHECKPOINTS * SCANS_PER_HOUR / 3600


def _summarize_backends(backends: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Per combination (`sqlite_1w`, `postgres_4w`, ...): best rate with acks, bare rate of that
    round, their ratio; the issue's aims; headroom over the national peak load."""
    if not backends:
        return {}
    out: dict[str, Any] = {}
    for key, rounds in backends.items():
        best = max(rounds, key=lambda r: _rate(r["chot"]))
        rate, bare = _rate(best["chot"]), _rate(best["bare"])
        out[key] = {"events_per_s": round(rate), "bare_events_per_s": round(bare),
                    "over_bare": round(rate / bare, 3) if bare else None,
                    "each_round": [round(_rate(r["chot"])) for r in rounds],
                    "complete": all(r["chot"]["complete"] for r in rounds),
                    "stored_exactly": all(r["stored"] == r["chot"]["events"] for r in rounds),
                    "national_headroom": round(rate / NATIONAL_EVENTS_PER_S, 1)}
    pg4, sq1 = out.get("postgres_4w", {}).get("events_per_s"), out.get("sqlite_1w", {}).get("events_per_s")
    return {"backends": out, "national_events_per_s": round(NATIONAL_EVENTS_PER_S),
            "backend_aims": {"postgres_4w_ge_sqlite_1w": None if pg4 is None or sq1 is None else pg4 >= sq1,
                             "postgres_4w_ge_5000": None if pg4 is None else pg4 >= 5000}}


@click.command()
@click.option("--devices", default=200, show_default=True, help="Simulated units, each with its own login.")
@click.option("--events", "per_unit", default=150, show_default=True, help="Events per unit per phase.")
@click.option("--probes", default=60, show_default=True, help="Most stream-delay probes during the load.")
@click.option("--rate", "paced_rate", default=5000.0, show_default=True,
              help="Steady load (events/s from all units) while the stream delay is measured.")
@click.option("--seconds", "paced_s", default=8.0, show_default=True, help="Length of the steady load.")
@click.option("--rounds", default=3, show_default=True, help="Flood rounds (fresh broker each); best counts.")
@click.option("--timeout", default=120.0, show_default=True, help="Upper bound of each wait, seconds.")
@click.option("--backend", type=click.Choice(["all", "sqlite", "postgres", "none"]), default="all", show_default=True,
              help="Store backends of the per-backend table (none: skip it).")
@click.option("--workers", "workers_list", default="1,2,4", show_default=True,
              help="Ingest worker counts to measure on PostgreSQL (comma-separated).")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
def main(devices: int, per_unit: int, probes: int, paced_rate: float, paced_s: float, rounds: int,
         timeout: float, backend: str, workers_list: str, as_json: bool) -> None:
    """Ingest throughput vs the bare broker, and publish-to-live-stream delay under that load."""
    try:
        workers = [int(w) for w in workers_list.split(",") if w.strip()]
    except ValueError:
        raise click.BadParameter("--workers takes numbers like 1,2,4") from None
    combos = [] if backend == "none" else backend_combinations(backend, workers)
    summary = summarize(run(devices, per_unit, probes, timeout, paced_rate, paced_s, rounds, combos))
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    d = summary["stream_delay_ms"]

    def ms(v: float | None) -> str:
        return "-" if v is None else f"{v:.0f} ms"

    rows = [
        (f"bare broker -> subscriber (best of {summary['rounds']})", f"{summary['bare_events_per_s']:,} ev/s",
         str(summary["bare_each_round"])),
        (f"chot ingest -> SQLite store (best of {summary['rounds']})", f"{summary['chot_events_per_s']:,} ev/s",
         f">= 5,000 ev/s {summary['chot_each_round']}"),
        ("chot / bare", f"{summary['chot_over_bare']}", ">= 0.5"),
        ("steady load: sent / stored", f"{summary['paced_achieved_per_s']:,} / {summary['paced_stored_per_s']:,} ev/s",
         f"target {summary['paced_target_per_s']:,.0f}"),
        (f"publish -> SSE delay p50 ({summary['stream_probes']} probes)", ms(d["p50"]), ""),
        ("publish -> SSE delay p95", ms(d["p95"]), "< 500 ms"),
        ("publish -> SSE delay max", ms(d["max"]), ""),
    ]
    click.echo(f"load average {summary['machine']['load_average']}; "
               f"{devices} units x {per_unit} events per flood; {summary['ingest_commits']} commits, "
               f"{summary['duplicates']} duplicates, {summary['rejected']} rejected")
    for name, value, aim in rows:
        click.echo(f"  {name:<44} {value:>14}  {aim}")
    if summary["probe_error"]:
        click.echo(f"  probe error: {summary['probe_error']}")
    click.echo(f"aims met: {summary['aims']}")
    if summary.get("backends"):
        click.echo(f"per backend, each worker its own process (best of {rounds}; national peak "
                   f"{summary['national_events_per_s']:,} ev/s = {NATIONAL_CHECKPOINTS:,} checkpoints x "
                   f"{SCANS_PER_HOUR} scans/h):")
        click.echo(f"  {'backend':<16} {'stored+acked':>14} {'bare':>12} {'ratio':>7} {'headroom':>9}  rounds")
        for key, b in summary["backends"].items():
            click.echo(f"  {key:<16} {b['events_per_s']:>10,} ev/s {b['bare_events_per_s']:>8,} ev/s "
                       f"{b['over_bare']!s:>7} {b['national_headroom']:>8}x  {b['each_round']}"
                       f"{'' if b['complete'] and b['stored_exactly'] else '  INCOMPLETE'}")
        click.echo(f"backend aims met: {summary['backend_aims']}")
    click.echo(f"reproduce: {REPRODUCE}")


if __name__ == "__main__":
    main()
