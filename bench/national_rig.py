"""The national profile's parts as real processes on loopback, for bench/chaos_national.py.

PostgreSQL (durable), a 3-node NATS cluster rendered from firmware-config/nats, N ingest
workers (`chot dashboard ingest --worker K`), two web processes (`chot dashboard serve --port
P`, one secret key, `web.trusted_proxies = 1`) behind Debian's nginx with the shipped snippets,
and the simulated units: each one the real scanner.outbox.Outbox + scanner.mqtt.MqttLink with
its own login, client id and outbox file, several to a process (testbed/cluster_unit.py)
so that 50 of them fit on two cores.
"""

from __future__ import annotations

import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from common import tomlwrite
from common.localnet import free_port, wait_for_port
from dashboard import rollup
from dashboard.config import parse_config
from dashboard.devices import add_device, init_broker
from dashboard.scope import Scope
from dashboard.store import open_store
from dashboard.web.auth import hash_password
from testbed.cluster_unit import UnitProcess, Worker, unit_entry, unit_group_config
from testbed.nats import NatsCluster, national_config_data
from chot.demo import central_counts
from testbed.nginx import start_nginx
from testbed.postgres import PostgresCluster

ROOT = Path(__file__).resolve().parents[1]
PROVINCE = "01"
SUPERVISOR = "sup-01"
UNITS_PER_CHECKPOINT = 5


@dataclass
class RigOptions:
    """How many of each part, and how fast the units judge."""

    units: int = 50
    units_per_process: int = 10
    workers: int = 2
    pace_s: float = 1.0
    """Seconds between two verdicts of one unit."""
    drain_s: float = 300.0
    """How long units wait, once told to stop, for the central to acknowledge their backlog."""


class WebProcess:
    """`chot dashboard serve --port P` on the run's config."""

    def __init__(self, config: Path, port: int, log: Path) -> None:
        self.config, self.port, self.log = config, port, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "chot", "dashboard", "-c", str(self.config), "serve",
                                          "--port", str(self.port)], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)

    def serving(self, timeout: float = 60.0) -> bool:
        """Until its login page answers 200 (or it exited, or `timeout`)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.proc is not None and self.proc.poll() is None:
            if wait_for_port(self.port, 1):
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/login", timeout=5) as r:
                        if r.status == 200:
                            return True
                except (OSError, urllib.error.URLError):  # not listening yet: ask again
                    pass
            time.sleep(0.2)
        return False

    def end(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> None:
        """Send `sig` and reap (SIGKILL if it does not go in time)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


class NationalRig:
    """Builds, starts and stops every part; `stored_count` and `stored_seqs` read PostgreSQL."""

    def __init__(self, workdir: Path, options: RigOptions) -> None:
        self.workdir = workdir
        self.options = options
        self.pg = PostgresCluster(durable=True)  # its own folder: the server user must reach it
        self.url = ""
        self.config_path = workdir / "central.toml"
        self.stop_file = workdir / "units-stop"
        self.supervisor_password = secrets.token_urlsafe(12)
        self.cluster: NatsCluster | None = None
        self.workers: list[Worker] = []
        self.webs: list[WebProcess] = []
        self.nginx: subprocess.Popen[bytes] | None = None
        self.nginx_port = 0
        self.unit_procs: list[UnitProcess] = []
        self.devices: list[str] = []
        self.checkpoint_of: dict[str, str] = {}

    # -- building ----------------------------------------------------------------------------
    def start(self) -> None:
        self.pg.start()
        self.url = self.pg.create_database("chot_national_chaos")
        ports = [free_port(), free_port()]
        data = national_config_data(self.workdir, store={"url": self.url}, ingest={"workers": self.options.workers},
                                    web={"secret_key": secrets.token_urlsafe(32), "trusted_proxies": 1})
        self.config_path.write_text(tomlwrite.dumps(data))
        config = parse_config(data)
        store = open_store(config.store_target())
        passwords: dict[str, str] = {}
        try:
            init_broker(store, config)
            for i in range(self.options.units):
                device = f"u{i + 1:03d}"
                checkpoint = f"CP{i // UNITS_PER_CHECKPOINT + 1:02d}"
                passwords[device] = add_device(store, config, device, checkpoint, f"{i // 20 + 1:03d}", PROVINCE,
                                               reload=False).password
                self.devices.append(device)
                self.checkpoint_of[device] = checkpoint
            store.create_user(SUPERVISOR, hash_password(self.supervisor_password), "supervisor",
                              Scope.of(provinces=[PROVINCE]))
        finally:
            store.close()
        self.cluster = NatsCluster(config.broker)
        self.cluster.start(120)
        for k in range(1, self.options.workers + 1):
            self.start_worker(k)
        for i, port in enumerate(ports):
            self.webs.append(WebProcess(self.config_path, port, self.workdir / f"web{i + 1}.log"))
            self.webs[-1].start()
        for web in self.webs:
            if not web.serving():
                raise RuntimeError(f"web process on {web.port} did not serve:\n{web.log.read_text()[-2000:]}")
        nginx_dir = self.workdir / "nginx"
        nginx_dir.mkdir()
        nginx_dir.chmod(0o755)  # nginx's workers (nobody, when run as root) write their temp files here
        self.nginx_port = free_port()
        self.nginx = start_nginx(nginx_dir, self.nginx_port, ports)
        if not wait_for_port(self.nginx_port, 30):
            raise RuntimeError(f"nginx did not listen:\n{(nginx_dir / 'error.log').read_text(errors='replace')}")
        self._start_units(passwords)

    def _start_units(self, passwords: dict[str, str]) -> None:
        assert self.cluster is not None
        per = self.options.units_per_process
        for k, first in enumerate(range(0, len(self.devices), per)):
            entries = [unit_entry(device=d, checkpoint=self.checkpoint_of[d], password=passwords[d],
                                  addresses=self._addresses_from(j),
                                  outbox=self.workdir / f"{d}.sqlite")
                       for j, d in enumerate(self.devices[first:first + per], start=first)]
            config = unit_group_config(self.workdir / f"units{k + 1}.json", entries, record=1_000_000,
                                       pace=self.options.pace_s, seconds=self.options.drain_s,
                                       stop_file=self.stop_file)
            self.unit_procs.append(UnitProcess(config))

    def _addresses_from(self, index: int) -> list[tuple[str, int]]:
        """The node list rotated, so units start spread over the three nodes."""
        assert self.cluster is not None
        nodes = self.cluster.addresses()
        return nodes[index % len(nodes):] + nodes[:index % len(nodes)]

    def start_worker(self, k: int) -> Worker:
        """Start ingest worker K (1-based) and wait until it reads the stream."""
        worker = Worker(self.config_path, self.workdir / f"worker{k}.log", worker=k)
        if k <= len(self.workers):
            self.workers[k - 1] = worker
        else:
            self.workers.append(worker)
        if not worker.wait_reading(120):
            raise RuntimeError(f"ingest worker {k} did not read the stream:\n{worker.log.read_text()[-2000:]}")
        return worker

    def stream_carrier(self) -> int:
        """Which web process (index) holds the most open connections: nginx's long-lived one for
        the supervisor's stream (page requests' connections do not last)."""
        open_on = {web.port: 0 for web in self.webs}
        for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            port = int(local.rsplit(":", 1)[1], 16)
            if state == "01" and port in open_on:  # 01: ESTABLISHED, on the web process's side
                open_on[port] += 1
        return max(range(len(self.webs)), key=lambda i: open_on[self.webs[i].port])

    # -- reading what happened ---------------------------------------------------------------
    def stored_count(self) -> int:
        """Events in the store, or -1 while PostgreSQL does not answer."""
        found = central_counts.rows(self.url, "SELECT count(*) FROM events")  # [] while it restarts
        return int(found[0][0]) if found else -1

    def stored_seqs(self) -> tuple[dict[str, list[int]], int]:
        """Each device's stored seqs, and the sum of the roll-up totals (what the dashboard counts)."""
        seqs: dict[str, list[int]] = {}
        for device, seq in central_counts.rows(self.url, "SELECT device, seq FROM events ORDER BY device, seq",
                                               strict=True):
            seqs.setdefault(device, []).append(int(seq))
        counted = central_counts.rows(self.url, f"SELECT coalesce(sum(count), 0) FROM {rollup.TOTALS_TABLE}",
                                      strict=True)[0][0]
        return seqs, int(counted)

    def recorded(self) -> dict[str, list[tuple[int, float]]]:
        """Each unit's recorded verdicts: (seq, unix time)."""
        out: dict[str, list[tuple[int, float]]] = {}
        for proc in self.unit_procs:
            out.update(proc.recorded_by_device())
        return out

    def drained(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for proc in self.unit_procs:
            out.update(proc.drained())
        return out

    # -- ending ------------------------------------------------------------------------------
    def revive_nodes(self) -> None:
        """Start any broker node a failed fault left stopped, so that the units can drain."""
        for node in self.cluster.nodes if self.cluster is not None else []:
            if not node.running:
                node.start()

    def stop_units(self, timeout: float) -> None:
        """Units stop judging and wait for the central to acknowledge everything (bounded)."""
        self.stop_file.touch()
        deadline = time.monotonic() + timeout
        for proc in self.unit_procs:
            proc.finish(max(1.0, deadline - time.monotonic()))

    def shutdown(self) -> None:
        """Stop everything still running, most dependent first; remove PostgreSQL's folder."""
        for proc in self.unit_procs:
            if proc.proc.poll() is None:
                proc.proc.kill()
                proc.proc.wait(10)
        if self.nginx is not None and self.nginx.poll() is None:
            self.nginx.terminate()
            self.nginx.wait(15)
        for web in self.webs:
            web.end()
        for worker in self.workers:
            worker.stop()
        if self.cluster is not None:
            self.cluster.stop()
        self.pg.remove()

    def logs(self) -> str:
        """The tails of the central's logs, for a failed run's report."""
        parts = [f"--- {w.log.name} ---\n{w.log.read_text(errors='replace')[-1500:]}" for w in self.workers]
        parts += [f"--- {w.log.name} ---\n{w.log.read_text(errors='replace')[-1000:]}" for w in self.webs]
        return "\n".join(parts)
