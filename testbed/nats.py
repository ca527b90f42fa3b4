"""A real 3-node NATS cluster (JetStream, MQTT 3.1.1) on free loopback ports (the demo, tests, benches).

Each node is rendered from the shipped template (firmware-config/nats/nats-node.conf) through
dashboard.broker.nats, with its own folder, store and ports, so what runs is what ships. Nodes
start, stop (SIGTERM) and die (SIGKILL) one at a time; `wait_ready()` waits until every running
node sees a JetStream meta leader and answers its health check. For a central with units on the
cluster, build the config with `national_broker(...)` and `dashboard.devices.init_broker`.
The pytest fixtures are in tests/support/nats.py.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from common.localnet import free_port, wait_for_port
from dashboard.broker import nats as natsconf
from dashboard.config import BrokerConfig, NatsNode
from testbed.process import ServerProcess

NATS_SERVER = shutil.which("nats-server") or "/usr/sbin/nats-server"


def national_broker(data_dir: Path, nodes: int = 3) -> dict[str, Any]:
    """The `[broker]` table of a NATS cluster on free loopback ports under `data_dir`."""
    ports = set()

    def port() -> int:
        while True:
            p = free_port()
            if p not in ports:
                ports.add(p)
                return p

    return {"kind": "nats", "nats_dir": str(data_dir / "nats"),
            "users_file": str(data_dir / "nats" / "accounts.conf"),
            "nats_password_file": str(data_dir / "nats" / "passwd"),
            "max_file_store": "256MB",
            "nodes": [{"name": f"n{i + 1}", "mqtt_port": port(), "client_port": port(),
                       "cluster_port": port(), "monitor_port": port()} for i in range(nodes)]}


class NatsNodeProcess(ServerProcess):
    """One nats-server process of the cluster."""

    def __init__(self, cfg: BrokerConfig, node: NatsNode, env: Mapping[str, str] | None = None) -> None:
        self.cfg = cfg
        self.node = node
        self.env = dict(env) if env is not None else None  # None: inherit ours
        self.dir = natsconf.node_dir(cfg, node)
        self.conf_path = self.dir / "nats.conf"
        self.proc: subprocess.Popen[bytes] | None = None
        self.stop_timeout_s = 20.0

    @property
    def name(self) -> str:
        return self.node.name

    @property
    def mqtt_port(self) -> int:
        return self.node.mqtt_port

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        if self.running:
            return
        stderr = open(self.dir / "nats.stderr", "ab")
        self.proc = subprocess.Popen([NATS_SERVER, "-c", str(self.conf_path)], stdout=stderr,
                                     stderr=stderr, start_new_session=True, env=self.env)
        if not wait_for_port(self.node.mqtt_port, 30):
            self.kill()
            raise RuntimeError(f"NATS node {self.name} did not open its MQTT port:\n{self.log_text()}")

    def monitor(self, path: str) -> dict[str, Any] | None:
        """A monitoring endpoint's JSON, or None if the node does not answer (200 or 503)."""
        url = f"http://127.0.0.1:{self.node.monitor_port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as e:
            try:
                return json.loads(e.read())
            except (ValueError, OSError):
                return None
        except (OSError, ValueError):
            return None

    def leader(self, healthy: bool = True) -> str | None:
        """The JetStream meta leader this node sees (if `healthy`, only once /healthz says ok:
        every stream and consumer replica it holds is current, which it is not while a peer is
        down)."""
        if healthy and (self.monitor("/healthz") or {}).get("status") != "ok":
            return None
        jsz = self.monitor("/jsz")
        return ((jsz or {}).get("meta_cluster") or {}).get("leader") or None

    def lagging(self) -> list[str]:
        """The streams and consumers this node leads that have a replica not yet current (or
        offline), as their leader sees them; ["(no answer)"] if the node does not answer.
        /healthz can say ok on a restarted node while it still catches up a consumer's log, and
        losing the next node then leaves that consumer without a quorum."""
        jsz = self.monitor("/jsz?accounts=true&streams=true&consumers=true&config=false")
        if jsz is None:
            return ["(no answer)"]
        behind = []
        for account in jsz.get("account_details") or []:
            for stream in account.get("stream_detail") or []:
                groups = [(stream.get("name", "?"), stream.get("cluster"))]
                groups += [(f"{stream.get('name')} > {c.get('name')}", c.get("cluster"))
                           for c in stream.get("consumer_detail") or []]
                for name, group in groups:
                    if (group or {}).get("leader") != self.name:
                        continue
                    if any(not r.get("current") or r.get("offline") for r in group.get("replicas") or []):
                        behind.append(name)
        return behind

    def mqtt_clients(self) -> list[str]:
        """Client ids of the MQTT connections open on this node."""
        connz = self.monitor("/connz?subs=0&limit=1024") or {}
        return [c.get("mqtt_client", "") for c in connz.get("connections") or [] if c.get("mqtt_client")]

    def log_text(self) -> str:
        parts = []
        for name in ("nats.log", "nats.stderr"):
            p = self.dir / name
            if p.exists():
                parts.append(p.read_text(errors="replace"))
        return "\n".join(parts)


class NatsCluster:
    """The cluster's node processes, rendered from `cfg` (a `[broker]` with kind = "nats")."""

    def __init__(self, cfg: BrokerConfig, env: Mapping[str, str] | None = None) -> None:
        self.cfg = cfg
        natsconf.write_node_configs(cfg)
        self.nodes = [NatsNodeProcess(cfg, node, env) for node in cfg.nodes]

    def __getitem__(self, index: int) -> NatsNodeProcess:
        return self.nodes[index]

    def start(self, timeout: float = 60.0) -> None:
        for node in self.nodes:
            node.start()
        self.wait_ready(timeout)

    def wait_ready(self, timeout: float = 60.0, healthy: bool = True) -> None:
        """Until every running node agrees on a running JetStream leader, and (with every node up
        and `healthy`) until each is healthy (or RuntimeError). `healthy=False` asks only for a
        working quorum: a rejoining node can take minutes on a loaded machine to bring every
        per-session MQTT consumer it holds up to date, and the cluster serves meanwhile. The
        whole, healthy cluster is ready only once every stream and consumer leader sees all its
        replicas current: the next node may then go down without stalling any of them."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            running = [n for n in self.nodes if n.running]
            whole = len(running) == len(self.nodes) and healthy
            leaders = {n.leader(healthy=whole) for n in running}
            # After a node's loss the others name it as leader until they elect a new one.
            if len(leaders) == 1 and leaders & {n.name for n in running}:
                if not whole or not any(n.lagging() for n in running):
                    return
            time.sleep(0.2)
        logs = "\n".join(f"--- {n.name} ---\n{n.log_text()[-3000:]}" for n in self.nodes)
        raise RuntimeError(f"NATS cluster not ready after {timeout}s\n{logs}")

    def stop(self) -> None:
        for node in self.nodes:
            node.kill() if node.running else None

    def addresses(self) -> list[tuple[str, int]]:
        """Every node's MQTT address."""
        return [(n.node.host, n.mqtt_port) for n in self.nodes]

    def log_text(self) -> str:
        return "\n".join(f"--- {n.name} ---\n{n.log_text()}" for n in self.nodes)


def national_config_data(tmp_path: Path, **overrides: Any) -> dict[str, Any]:
    """The central config's TOML data for a 3-node cluster under tmp_path."""
    import secrets  # noqa: PLC0415

    data_dir = tmp_path / "central"
    brokers = national_broker(data_dir)
    first, *rest = brokers["nodes"]
    data: dict[str, Any] = {
        "data_dir": str(data_dir),
        "broker": brokers,
        "mqtt": {"host": "127.0.0.1", "port": first["mqtt_port"], "protocol": "3.1.1",
                 "brokers": [f"127.0.0.1:{n['mqtt_port']}" for n in rest],
                 "nats_urls": [f"nats://127.0.0.1:{n['client_port']}" for n in brokers["nodes"]],
                 "ingest": {"username": "chot-ingest", "password": secrets.token_urlsafe(12)},
                 "dashboard": {"username": "chot-dashboard", "password": secrets.token_urlsafe(12)}},
        "ingest": {"device_refresh_s": 0.5},
    }
    for key, value in overrides.items():
        if isinstance(value, dict):
            data.setdefault(key, {}).update(value)
        else:
            data[key] = value
    return data
