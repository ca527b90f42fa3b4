"""`chot demo --national`: the same demo on the national profile's engines, chosen by config.

The store is PostgreSQL (a throwaway cluster under the workdir), the broker a 3-node NATS
cluster (JetStream R3, MQTT 3.1.1 on each node), two ingest workers share its JetStream
consumer, and two web processes sit behind Debian's nginx with the shipped config snippets. The
units are the same four, speaking 3.1.1 with every node in their list. Besides the link cut,
one broker node is stopped and started again while the units report: they move to the other
nodes, and the reconciliation still finds every count stored exactly once.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

from chot.demo.env import STORE_URL, central_environment
from chot.demo.run import DEMO_OFFLINE_AFTER_S, Demo
from testbed.nats import NatsCluster, NatsNodeProcess, national_broker
from testbed.nginx import nginx_argv, nginx_conf
from testbed.postgres import PostgresCluster
from common.localnet import free_port, wait_for_port

INGEST_WORKERS = 2
WEB_PROCESSES = 2  # the shipped upstream file lists two
# When, as shares of the run, a broker node is stopped and started again: inside the link cut
# (25% to 60%), so the cut unit's backlog meets a cluster that lost a node, and well before the end.
NODE_DOWN_AT, NODE_UP_AT = 0.40, 0.55


class NationalDemo(Demo):
    """The demo on PostgreSQL, a NATS cluster, several ingest workers and web processes behind nginx."""

    def __init__(self, workdir: Path, **kwargs: Any) -> None:
        super().__init__(workdir, **kwargs)
        self.postgres: PostgresCluster | None = None
        self.cluster: NatsCluster | None = None
        self.store_url = ""
        self.web_ports: list[int] = []
        self.node_down: NatsNodeProcess | None = None
        self.node_cycled = False

    # -- set-up --------------------------------------------------------------------------------
    def _setup_central(self) -> None:
        self.say("  store: a PostgreSQL cluster of its own (initdb) ...")
        self.postgres = PostgresCluster(self.workdir / "postgres",
                                        env=central_environment("postgres", os.environ, self.secrets))
        self.postgres.start()
        # A central secret: only the central's processes get it, in $CHOT_STORE_URL (never a file).
        self.store_url = self.secrets[STORE_URL] = self.postgres.create_database("chot")
        super()._setup_central()

    def _central_data(self, central: Path) -> dict[str, Any]:
        broker = national_broker(central)
        nodes = broker["nodes"]
        taken = {n[k] for n in nodes for k in ("mqtt_port", "client_port", "cluster_port", "monitor_port")}
        self.web_port = _port_apart(taken, self.web_port_wanted)  # nginx's: the dashboard's address
        self.web_ports = [_port_apart(taken) for _ in range(WEB_PROCESSES)]
        return {
            "data_dir": str(central),
            "anchor_file": str(self.anchor_file),
            # One secret key (from the environment) and one proxy hop for every web process.
            "web": {"host": "127.0.0.1", "port": self.web_ports[0], "trusted_proxies": 1},
            "mqtt": {"host": "127.0.0.1", "port": nodes[0]["mqtt_port"], "protocol": "3.1.1",
                     "brokers": [f"127.0.0.1:{n['mqtt_port']}" for n in nodes[1:]],
                     "nats_urls": [f"nats://127.0.0.1:{n['client_port']}" for n in nodes]},
            "broker": broker,
            "alarms": {"offline_after_s": DEMO_OFFLINE_AFTER_S},
            "ingest": {"workers": INGEST_WORKERS},
        }

    def _store_target(self) -> str:
        return self.store_url

    def _broker_ports(self) -> list[int]:
        return [node.mqtt_port for node in self.central.broker.nodes]

    def _unit_broker(self, via: Callable[[int], int] | None = None) -> dict[str, Any]:
        return {**super()._unit_broker(via), "protocol": "3.1.1"}  # NATS speaks no MQTT 5

    # -- processes -----------------------------------------------------------------------------
    def _start_broker(self) -> None:
        self.cluster = NatsCluster(self.central.broker, env=central_environment("nats", os.environ, self.secrets))
        self.cluster.start(timeout=120)

    def _start_central_services(self) -> None:
        central = self._central_command()
        for worker in range(1, INGEST_WORKERS + 1):
            self._spawn(f"ingest-{worker}", central + ["ingest", "--worker", str(worker)],
                        central_environment("ingest", os.environ, self.secrets))
        for i, port in enumerate(self.web_ports, 1):
            self._spawn(f"dashboard-{i}", central + ["serve", "--port", str(port)],
                        central_environment("dashboard", os.environ, self.secrets))
        conf = nginx_conf(self.workdir / "nginx", self.web_port, self.web_ports)
        self._spawn("nginx", nginx_argv(conf), central_environment("nginx", os.environ, self.secrets))

    def _await_dashboard(self) -> None:
        for i, port in enumerate(self.web_ports, 1):
            name = f"dashboard-{i}"
            if not wait_for_port(port, 60) or self.procs[name].poll() is not None:
                raise RuntimeError(f"web process {i} did not start: {self.exit_reason(name)}")
        if not wait_for_port(self.web_port, 15) or self.procs["nginx"].poll() is not None:
            raise RuntimeError(f"nginx did not start: {self.exit_reason('nginx')}")

    def _central_line(self) -> str:
        assert self.postgres is not None
        nodes = ", ".join(f"{n.name} 127.0.0.1:{n.mqtt_port}" for n in self.central.broker.nodes)
        webs = ", ".join(str(p) for p in self.web_ports)
        return (f"NATS cluster (MQTT 3.1.1): {nodes}\n  Store: PostgreSQL on 127.0.0.1:{self.postgres.port}"
                f" ({self.postgres.root}); {INGEST_WORKERS} ingest workers; {WEB_PROCESSES} web processes"
                f" (ports {webs}) behind nginx")

    # -- running -------------------------------------------------------------------------------
    def _faults(self, elapsed: float) -> None:
        """Stop one broker node (SIGTERM) and start it again, once."""
        assert self.cluster is not None
        total = self.duration if self.duration is not None else 120.0
        if self.node_down is None and not self.node_cycled and total * NODE_DOWN_AT <= elapsed < total * NODE_UP_AT:
            node = self._busiest_node()
            on_it = ", ".join(sorted(node.mqtt_clients())) or "no unit"
            node.stop()
            self.node_down = node
            self.say(f"[{elapsed:5.0f}s] broker node {node.name} stopped (SIGTERM): its units ({on_it}) move to"
                     " the other nodes and keep reporting")
        elif self.node_down is not None and elapsed >= total * NODE_UP_AT:
            name = self.node_down.name
            self._end_faults()
            self.say(f"[{elapsed:5.0f}s] broker node {name} started again: it rejoins the cluster")

    def _busiest_node(self) -> NatsNodeProcess:
        """The running node with the most MQTT connections (units), so its stop is seen."""
        assert self.cluster is not None
        running = [n for n in self.cluster.nodes if n.running]
        return max(running, key=lambda n: len(n.mqtt_clients()))

    def _end_faults(self) -> None:
        if self.node_down is None:
            return
        self.node_down.start()
        self.node_down = None
        self.node_cycled = True

    # -- the end -------------------------------------------------------------------------------
    def shutdown(self) -> None:
        """Stop every child, then the broker nodes and PostgreSQL (its folder stays in the workdir)."""
        try:
            super().shutdown()
        finally:
            if self.cluster is not None:
                for node in self.cluster.nodes:
                    node.stop()
            if self.postgres is not None:
                self.postgres.stop()


def _port_apart(taken: set[int], preferred: int | None = None) -> int:
    """A free loopback port not in `taken` (which it joins)."""
    while True:
        port = free_port(preferred)
        preferred = None
        if port not in taken:
            taken.add(port)
            return port
