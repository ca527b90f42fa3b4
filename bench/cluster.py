"""Benchmark: the national profile's ingest (3-node NATS cluster -> PostgreSQL) against the
cluster's own bare rates, with the embedded Mosquitto figures of the same run beside them.

One run:
1. mosquitto: bench/ingest.py's round on the shipped Mosquitto config (bare subscriber, then the
   real ingest into SQLite): the embedded profile's figures, measured on this machine now.
2. The 3-node cluster rendered from firmware-config/nats/ (JetStream R3, MQTT 3.1.1), 200
   simulated units spread over the three nodes (own logins, QoS 1, prebuilt packets from their
   own processes, one per node):
   - bare_mqtt: an MQTT QoS 1 subscriber on one node that only counts;
   - bare_jetstream: a JetStream pull consumer of the event stream (CHOT_EVENTS, R3 work
     queue, what the ingest reads) that only acknowledges and counts: the ingest's peer;
   - ingest_Nw for N in --workers: N `chot dashboard ingest --worker K` processes sharing the
     stream's durable consumer, committing to a durable PostgreSQL (fsync on), acks to units.
   Rate = events / (start signal -> last one counted, or stored). Best of --rounds.

    .venv/bin/python -m bench.cluster [--devices 200] [--events 100] [--workers 1,2,4] [--rounds 2] [--json]

Aim (issue 15): the ingest at least half the cluster's bare (JetStream) rate.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import multiprocessing as mp
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

ROOT = Path(__file__).resolve().parent.parent

from bench.ingest import _floods, _wait, publish_load  # noqa: E402
from common import tomlwrite  # noqa: E402
from dashboard.broker import mqtt_client  # noqa: E402
from dashboard.config import DashboardConfig, parse_config  # noqa: E402
from dashboard.devices import add_device, init_broker  # noqa: E402
from dashboard.ingest.jetstream import FETCH_WAIT_S, STREAM, SUBJECTS  # noqa: E402
from dashboard.store import Store, open_store  # noqa: E402
from testbed.nats import NatsCluster, national_config_data  # noqa: E402
from testbed.postgres import PostgresCluster  # noqa: E402

REPRODUCE = ".venv/bin/python -m bench.cluster"


@dataclass
class _National:
    folder: Path
    config: DashboardConfig
    toml_path: Path
    store: Store
    cluster: NatsCluster
    units: list[list[tuple[str, str, str]]]  # per node: (device, checkpoint, password)


@contextlib.contextmanager
def _national(devices: int, store_url: str, workers: int) -> Iterator[_National]:
    folder = Path(tempfile.mkdtemp(prefix="chot-bench-cluster-"))
    data = national_config_data(folder, store={"url": store_url}, ingest={"workers": workers})
    toml_path = folder / "central.toml"
    toml_path.write_text(tomlwrite.dumps(data))
    config = parse_config(data)
    store = open_store(config.store_target())
    cluster = None
    try:
        init_broker(store, config)
        per_node: list[list[tuple[str, str, str]]] = [[] for _ in config.broker.nodes]
        for i in range(devices):
            checkpoint = f"CP{i // 4:03d}"
            creds = add_device(store, config, f"unit{i:03d}", checkpoint, f"D{i // 20:02d}", f"P{i // 100:02d}",
                               reload=False)
            per_node[i % len(per_node)].append((creds.device, checkpoint, creds.password))
        cluster = NatsCluster(config.broker)
        cluster.start()
        yield _National(folder, config, toml_path, store, cluster, per_node)
    finally:
        if cluster is not None:
            cluster.stop()
        store.close()
        shutil.rmtree(folder, ignore_errors=True)


def _flood(n: _National, per_unit: int, seq_from: int, count: Any, timeout: float) -> dict[str, Any]:
    """One publisher process per node with that node's units; rate until `count()` has them all."""
    ctx = mp.get_context("spawn")
    go = ctx.Event()
    procs, readies, results = [], [], []
    for node, units in zip(n.cluster.nodes, n.units):
        ready, result = ctx.Event(), ctx.Queue()
        proc = ctx.Process(target=publish_load, args=(node.mqtt_port, units, per_unit, seq_from, ready, go,
                                                      result, timeout))
        proc.start()
        procs.append(proc)
        readies.append(ready)
        results.append(result)
    try:
        if not all(r.wait(timeout) for r in readies):
            raise RuntimeError("the simulated units did not connect in time")
        total = sum(len(u) for u in n.units) * per_unit
        start = time.monotonic()
        go.set()
        done = _wait(lambda: count() >= total, timeout)
        seconds = time.monotonic() - start
        published = sum(r.get(timeout=timeout)["published"] for r in results)
    finally:
        for proc in procs:
            proc.join(10)
            if proc.is_alive():
                proc.kill()
    return {"events": total, "counted": count(), "complete": done, "seconds": seconds, "published": published}


def _bare_mqtt(n: _National, per_unit: int, seq_from: int, timeout: float) -> dict[str, Any]:
    received = [0]
    sub = mqtt_client(n.config.mqtt, n.config.mqtt.ingest, "bench-bare", buffered=True)
    subscribed = threading.Event()
    sub.on_message = lambda c, u, m: received.__setitem__(0, received[0] + 1)
    sub.on_subscribe = lambda *a: subscribed.set()
    sub.connect("127.0.0.1", n.cluster[0].mqtt_port, keepalive=60)
    sub.loop_start()
    sub.subscribe("chot/v1/+/+/event", qos=1)
    subscribed.wait(20)
    try:
        return _flood(n, per_unit, seq_from, lambda: received[0], timeout)
    finally:
        sub.disconnect()
        sub.loop_stop()


class _BareConsumer:
    """A JetStream pull consumer of the event stream that only acknowledges and counts."""

    def __init__(self, n: _National) -> None:
        self.count = 0
        self._n = n
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._running = True
        self._ready = asyncio.run_coroutine_threadsafe(self._setup(), self._loop).result(60)
        self._task = asyncio.run_coroutine_threadsafe(self._pull(), self._loop)

    async def _setup(self) -> Any:
        import nats  # noqa: PLC0415
        from nats.js import api  # noqa: PLC0415

        m = self._n.config.mqtt
        self._nc = await nats.connect(servers=m.nats_urls, user=m.ingest.username, password=m.ingest.password)
        js = self._nc.jetstream(timeout=10)
        with contextlib.suppress(Exception):
            await js.add_stream(api.StreamConfig(name=STREAM, subjects=SUBJECTS, num_replicas=3,
                                                 retention=api.RetentionPolicy.WORK_QUEUE,
                                                 storage=api.StorageType.FILE))
        await js.add_consumer(STREAM, api.ConsumerConfig(durable_name="bench-bare", ack_wait=30,
                                                         max_ack_pending=20000, num_replicas=3))
        self._js = js
        return await js.pull_subscribe_bind(durable="bench-bare", stream=STREAM)

    async def _pull(self) -> None:
        import nats.errors  # noqa: PLC0415

        while self._running:
            try:
                msgs = await self._ready.fetch(500, timeout=FETCH_WAIT_S)  # as the ingest pulls
            except (nats.errors.TimeoutError, asyncio.TimeoutError):  # nothing waiting: ask again
                continue
            except Exception as e:  # noqa: BLE001 - a bench must say why it counted nothing
                print(f"bare consumer: fetch failed: {e!r}", file=sys.stderr)
                await asyncio.sleep(0.5)
                continue
            for msg in msgs:
                await msg.ack()
            self.count += len(msgs)

    def close(self) -> None:
        self._running = False
        with contextlib.suppress(Exception):
            self._task.result(5)

        async def done() -> None:
            await self._js.delete_consumer(STREAM, "bench-bare")  # the stream is the ingest's now
            await self._nc.close()

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(done(), self._loop).result(20)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)


def _workers(n: _National, count: int) -> list[subprocess.Popen[bytes]]:
    procs = []
    for k in range(1, count + 1):
        log = open(n.folder / f"ingest-{k}.log", "wb")  # noqa: SIM115 - removed with the folder
        procs.append(subprocess.Popen([sys.executable, "-m", "chot", "-v", "dashboard", "-c", str(n.toml_path),
                                       "ingest", "--worker", str(k)], cwd=ROOT, env=dict(os.environ), stdout=log,
                                      stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL))
    for k, proc in enumerate(procs, start=1):
        path = n.folder / f"ingest-{k}.log"
        if not _wait(lambda: "reading stream" in path.read_text(errors="replace") or proc.poll() is not None, 90) \
                or proc.poll() is not None:
            raise RuntimeError(f"ingest worker {k} did not start: {path.read_text(errors='replace')[-800:]}")
    return procs


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


def cluster_round(devices: int, per_unit: int, workers: list[int], store_url: str, timeout: float) -> dict[str, Any]:
    """bare_mqtt, bare_jetstream, then each worker count, on one fresh cluster and database."""
    out: dict[str, Any] = {}
    with _national(devices, store_url, max(workers)) as n:
        seq = 1
        out["bare_mqtt"] = _bare_mqtt(n, per_unit, seq, timeout)
        seq += per_unit
        bare = _BareConsumer(n)
        try:
            base = bare.count
            out["bare_jetstream"] = _flood(n, per_unit, seq, lambda: bare.count - base, timeout)
        finally:
            bare.close()
        seq += per_unit
        for w in workers:
            procs = _workers(n, w)
            try:
                base = n.store.change_marker()
                out[f"ingest_{w}w"] = _flood(n, per_unit, seq, lambda: n.store.change_marker() - base, timeout)
            finally:
                _stop(procs)
            seq += per_unit
    return out


def _rate(part: dict[str, Any]) -> float:
    return part["events"] / part["seconds"] if part.get("complete") and part["seconds"] > 0 else 0.0


def summarize(mosquitto: list[dict[str, Any]], rounds: list[dict[str, Any]], devices: int, per_unit: int) -> dict[str, Any]:
    best = {key: max(_rate(r[key]) for r in rounds) for key in rounds[0]}
    bare = best["bare_jetstream"]
    return {
        "devices": devices, "events_per_unit": per_unit, "rounds": len(rounds),
        "mosquitto_bare_events_per_s": round(max(_rate(r["bare"]) for r in mosquitto)),
        "mosquitto_ingest_sqlite_events_per_s": round(max(_rate(r["chot"]) for r in mosquitto)),
        "cluster_bare_mqtt_events_per_s": round(best["bare_mqtt"]),
        "cluster_bare_jetstream_events_per_s": round(bare),
        **{f"cluster_{k}_postgres_events_per_s": round(v) for k, v in best.items() if k.startswith("ingest_")},
        **{f"cluster_{k}_ratio_to_bare": round(v / bare, 2) if bare else None
           for k, v in best.items() if k.startswith("ingest_")},
        "aim_half_of_bare_met": any(v >= bare / 2 for k, v in best.items() if k.startswith("ingest_")) if bare else False,
        "all_complete": all(r[k]["complete"] for r in rounds for k in r),
        "command": REPRODUCE,
    }


@click.command()
@click.option("--devices", default=200, show_default=True)
@click.option("--events", "per_unit", default=100, show_default=True, help="Events per unit per flood.")
@click.option("--workers", "workers_list", default="1,2,4", show_default=True)
@click.option("--rounds", default=2, show_default=True)
@click.option("--timeout", default=300.0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
def main(devices: int, per_unit: int, workers_list: str, rounds: int, timeout: float, as_json: bool) -> None:
    """The national ingest's rate beside the cluster's bare rates and Mosquitto's, in one run."""
    workers = [int(w) for w in workers_list.split(",") if w.strip()]
    mosquitto = [_floods(devices, per_unit, timeout)]
    pg = PostgresCluster(durable=True)
    pg.start()
    try:
        results = [cluster_round(devices, per_unit, workers, pg.create_database(f"bench_cluster_{r}"), timeout)
                   for r in range(rounds)]
    finally:
        pg.remove()
    summary = summarize(mosquitto, results, devices, per_unit)
    summary["floods"] = {k: {"complete": v["complete"], "counted": v["counted"], "events": v["events"]}
                         for k, v in results[-1].items()}
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    click.echo(f"{devices} units x {per_unit} events per flood, best of {rounds} cluster rounds\n")
    click.echo(f"{'measure':<48} {'events/s':>10} {'vs bare':>8}")
    rows = [("Mosquitto: bare subscriber", summary["mosquitto_bare_events_per_s"], ""),
            ("Mosquitto: ingest -> SQLite", summary["mosquitto_ingest_sqlite_events_per_s"], ""),
            ("cluster: bare MQTT QoS 1 subscriber", summary["cluster_bare_mqtt_events_per_s"], ""),
            ("cluster: bare JetStream consumer (peer)", summary["cluster_bare_jetstream_events_per_s"], "1.00")]
    for w in workers:
        rows.append((f"cluster: {w} ingest worker(s) -> PostgreSQL", summary[f"cluster_ingest_{w}w_postgres_events_per_s"],
                     f"{summary[f'cluster_ingest_{w}w_ratio_to_bare']:.2f}"))
    for name, rate, ratio in rows:
        click.echo(f"{name:<48} {rate:>10,} {ratio:>8}")
    click.echo(f"\naim (ingest >= half the bare JetStream rate): {'met' if summary['aim_half_of_bare_met'] else 'NOT met'}"
               f"; every flood complete: {summary['all_complete']}")


if __name__ == "__main__":
    main()
