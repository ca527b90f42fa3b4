"""Units and the ingest on the 3-node cluster: a node is SIGKILLed mid-run, nothing is lost or doubled.

Real processes: three nats-server nodes, three unit processes (outbox + MqttLink,
testbed/cluster_unit.py), the ingest speaking MQTT 3.1.1 to the cluster.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from dashboard.ingest import MqttIngest
from dashboard.scope import Scope
from tests.support.central import wait_until
from testbed.cluster_unit import UnitProcess, drain_all, stop_all, unit_config
from tests.support.nats import NationalCentral, national  # noqa: F401 - national is a fixture

pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.timeout(240)]
EVENTS = 150


def test_units_move_to_another_node_and_exactly_once_holds(tmp_path: Path, national: NationalCentral) -> None:
    devices = [f"u{i}" for i in range(1, 4)]
    passwords = {d: national.add_device(d, "IC7").password for d in devices}
    ingest = MqttIngest(national.store, national.config)
    ingest.start(timeout=30)
    cluster = national.cluster
    units = {d: UnitProcess(unit_config(tmp_path / f"{d}.json", device=d, checkpoint="IC7",
                                        password=passwords[d], addresses=cluster.addresses(),
                                        record=EVENTS, pace=0.04, seconds=120)) for d in devices}
    try:
        assert wait_until(lambda: all(u.brokers() for u in units.values()), 30), {d: u.lines[-3:] for d, u in units.items()}
        assert wait_until(lambda: ingest.stats.stored >= 60, 60)
        # The node carrying most units dies, mid-run, with events in flight.
        on = Counter(u.brokers()[-1] for u in units.values())
        victim_address = on.most_common(1)[0][0]
        victim = next(n for n in cluster.nodes if f"127.0.0.1:{n.mqtt_port}" == victim_address)
        moved = [d for d, u in units.items() if u.brokers()[-1] == victim_address]
        victim.kill()
        drain_all(units, 180)
        for d in moved:
            assert units[d].brokers()[-1] != victim_address, f"{d} never left the dead node"
        assert ingest.wait_idle(30)
    finally:
        stop_all(units)
        ingest.stop()
    events = national.store.recent_events(Scope.all(), limit=10 * EVENTS)
    for d in devices:
        seqs = sorted(e.seq for e in events if e.device == d)
        assert seqs == sorted(units[d].recorded()) == list(range(1, EVENTS + 1)), f"{d}: lost or doubled"
    # Device health names the node each unit ended on (its status since the move).
    for d in moved:
        assert wait_until(lambda d=d: (national.store.get_device(d).broker or victim_address) != victim_address, 15)
    print(f"killed {victim.name} carrying {moved}; {ingest.stats.stored} stored,"
          f" {ingest.stats.duplicates} duplicates absorbed")
