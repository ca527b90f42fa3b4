"""The national profile's failure run, bounded for the suite (bench/cluster.py measures rates).

Real processes under a steady load from unit processes: every broker node is restarted one at
a time (SIGTERM, then start, waiting for the cluster), every ingest worker too, PostgreSQL once;
then one broker node and one worker are SIGKILLed. Units must never stop recording, and every
verdict they produced is stored exactly once.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from common import tomlwrite
from dashboard.scope import Scope
from tests.support.central import wait_until
from testbed.cluster_unit import UnitProcess, Worker, drain_all, stop_all, unit_config
from tests.support.nats import NatsCluster, start_national_central
from tests.support.postgres import PostgresCluster
from tests.test_cluster_ingest import _same_config

pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.timeout(420)]
UNITS = 3
EVENTS = 1500
PACE = 0.1  # 10 verdicts a second per unit, for about 150 s


def test_restarts_and_kills_of_every_part_lose_and_double_nothing(
        tmp_path: Path, postgres_cluster: PostgresCluster, nats_cluster_factory: Callable[..., NatsCluster]) -> None:
    url = postgres_cluster.create_database()
    national = start_national_central(tmp_path, nats_cluster_factory, database=url)
    conf = tmp_path / "central.toml"
    conf.write_text(tomlwrite.dumps(_same_config(national.config, url)))
    devices = [f"u{i}" for i in range(1, UNITS + 1)]
    passwords = {d: national.add_device(d, "IC7").password for d in devices}
    workers = [Worker(conf, tmp_path / f"worker{i}.log") for i in (1, 2)]
    cluster = national.cluster
    units = {d: UnitProcess(unit_config(tmp_path / f"{d}.json", device=d, checkpoint="IC7", password=passwords[d],
                                        addresses=cluster.addresses(), record=EVENTS, pace=PACE, seconds=240))
             for d in devices}
    faults: list[str] = []
    day = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=1), dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=1))

    def stored() -> int:
        try:
            return national.store.totals(Scope.all(), *day).total
        except Exception:  # noqa: BLE001 - PostgreSQL is being restarted
            return -1

    def progressing(what: str) -> None:
        """The units go on recording and the central goes on storing after a fault."""
        recorded = sum(len(u.recorded()) for u in units.values())
        before = stored()
        assert wait_until(lambda: sum(len(u.recorded()) for u in units.values()) > recorded
                          or recorded == UNITS * EVENTS, 20), f"units stopped recording after {what}"
        logs = lambda: "\n".join(w.log.read_text(errors="replace")[-1500:] for w in workers)  # noqa: E731
        assert wait_until(lambda: stored() > before, 90), f"nothing stored after {what}:\n{logs()}"
        faults.append(what)

    try:
        assert wait_until(lambda: stored() > 30, 60)
        for node in cluster.nodes:
            node.stop()
            cluster.wait_ready(120)
            node.start()
            cluster.wait_ready(180)  # the next node goes down next: this one must be current first
            progressing(f"restart {node.name}")
        for i, w in enumerate(workers):
            w.stop()
            workers[i] = Worker(conf, tmp_path / f"worker{i + 1}.log")
            assert workers[i].wait_reading(), workers[i].log.read_text()[-2000:]
            progressing(f"restart worker {i + 1}")
        postgres_cluster.stop()
        time.sleep(2)
        postgres_cluster.start()
        progressing("restart PostgreSQL")
        cluster[1].kill()
        cluster.wait_ready(120)
        progressing("SIGKILL n2")
        cluster[1].start()
        cluster.wait_ready(120, healthy=False)  # only a worker is killed next: a quorum is enough
        workers[0].kill()
        workers[0] = Worker(conf, tmp_path / "worker1.log")
        assert workers[0].wait_reading(), workers[0].log.read_text()[-2000:]
        progressing("SIGKILL worker 1")
        drain_all(units, 300)
    finally:
        stop_all(units, workers)
    assert len(faults) == 3 + 2 + 1 + 2
    events = national.store.recent_events(Scope.all(), limit=1000)
    assert national.store.totals(Scope.all(), *day).total == UNITS * EVENTS  # none lost, none doubled
    for d in devices:
        assert sorted(units[d].recorded()) == list(range(1, EVENTS + 1))
    assert len({(e.device, e.seq) for e in events}) == len(events)
    national.store.close()
