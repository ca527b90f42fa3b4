"""A unit's reporting side against the real central side: shipped broker config (accounts, ACL),
the dashboard ingest and store, and trust bundles published by the dashboard."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from dashboard import trust
from dashboard.ingest import MqttIngest
from dashboard.scope import Scope
from scanner.config import MqttConfig
from scanner.mqtt import MqttLink
from scanner.outbox import Outbox
from scanner.trust_sync import TrustKeeper
from tests.support.central import start_central
from tests.test_scanner_report_support import event_fields, wait_until

pytestmark = [pytest.mark.broker, pytest.mark.timeout(120)]


def test_unit_to_dashboard_exactly_once_across_broker_restart_and_trust_back(tmp_path, mosquitto_factory,
                                                                                 ministry):
    anchor = tmp_path / "anchor.pem"
    anchor.write_bytes(ministry.anchor_pem)
    central = start_central(tmp_path, mosquitto_factory, anchor_file=str(anchor))
    creds = central.add_device("unit-1", "ic7")
    ingest = MqttIngest(central.store, central.config)
    ingest.start()
    outbox = Outbox(tmp_path / "unit" / "outbox.sqlite")
    keeper = TrustKeeper(tmp_path / "unit" / "trust", ministry.anchor_pem)
    now = datetime.now(timezone.utc)
    for i in range(300):
        outbox.record(event_fields(i), now)
    config = MqttConfig(host="127.0.0.1", port=central.port, password=creds.password,
                        password_credential="none", password_env="CHOT_TEST_NO_SUCH_VAR",
                        max_inflight=5, keepalive=10)
    link = MqttLink(config, "unit-1", "ic7", outbox, lambda: {"backlog": outbox.backlog()},
                    lambda data: keeper.offer(data, "mqtt"), backoff_min=0.1, backoff_max=0.5)
    link.start()
    try:
        wait_until(lambda: link.sent >= 100, 20, "the unit to be sending")
        central.broker.restart()
        wait_until(lambda: outbox.backlog() == 0, 30, "the outbox to drain")
        wait_until(lambda: ingest.stats.stored >= 300, 20, "the ingest to store 300")
        assert ingest.wait_idle(10)
        day = (now - timedelta(hours=1), now + timedelta(hours=1))
        totals = central.store.totals(Scope.all(), *day)
        assert (totals.green, totals.yellow, totals.red) == (100, 100, 100)
        assert ingest.stats.stored == 300 and not ingest.stats.rejected
        assert link.connects >= 2

        # The dashboard publishes a new bundle; the unit checks it against its own anchor.
        trust.accept_bundle(central.store, central.config, ministry.bundle(version=2, policies={}))
        wait_until(lambda: keeper.current is not None and keeper.current.version == 2, 10,
                   "the unit to take the dashboard's bundle")
    finally:
        link.stop()
        ingest.stop()
        outbox.close()
        central.store.close()
