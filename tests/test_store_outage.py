"""PostgreSQL out of reach: clear words at start, no acks (so nothing lost) while it is gone,
503 pages instead of stack traces, and recovery by itself when it returns. Each test has a
cluster of its own, so it can stop and start it."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from chot.cli import main
from common.localnet import free_port
from dashboard.ingest import MqttIngest
from dashboard.scope import Scope
from dashboard.store import SqliteStore, StoreUnavailable, open_store
from dashboard.store.postgres import MIGRATIONS as POSTGRES_MIGRATIONS
from dashboard.store.postgres import PostgresStore, redact_url
from tests.support.central import start_central, wait_until
from tests.support.dashboard_web import login, make_app, seed
from tests.support.postgres import PostgresCluster
from tests.test_dashboard_ingest import DAY, stored_total
from tests.test_ingest_workers import AckedUnit

pytestmark = [pytest.mark.timeout(180)]


@pytest.fixture
def own_cluster() -> Iterator[PostgresCluster]:
    cluster = PostgresCluster()
    cluster.start()
    yield cluster
    cluster.remove()


def test_redacted_urls_keep_everything_but_the_password() -> None:
    assert redact_url("postgresql://chot:s3cr%40t@db.example:5433/chot?sslmode=require") == \
        "postgresql://chot:***@db.example:5433/chot?sslmode=require"
    assert redact_url("postgresql://chot@db/chot") == "postgresql://chot@db/chot"


def test_unreachable_at_start_is_one_line_naming_the_url_without_its_password(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    url = f"postgresql://chot:very-secret-pw@127.0.0.1:{port}/chot"
    conf = tmp_path / "central.toml"
    conf.write_text(f'data_dir = "{tmp_path / "data"}"\n[store]\nurl = "{url}"\n')
    SqliteStore(tmp_path / "old.db").close()  # something for migrate-store to copy
    for command in (["init"], ["ingest"], ["serve"], ["create-user", "x", "--role", "admin"], ["prune"],
                    ["migrate-store", "--from", str(tmp_path / "old.db")]):
        result = CliRunner().invoke(main, ["dashboard", "-c", str(conf), *command],
                                    env={"CHOT_NEW_USER_PASSWORD": "long-enough-password"})
        assert result.exit_code != 0, result.output
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in result.output, result.output
        assert f"postgresql://chot:***@127.0.0.1:{port}/chot" in lines[0] and "unreachable" in lines[0]
        assert "very-secret-pw" not in result.output
    with pytest.raises(StoreUnavailable):
        open_store(url)


def test_init_creates_then_upgrades_nothing_on_postgres(tmp_path: Path, postgres_url: str) -> None:
    conf = tmp_path / "central.toml"
    conf.write_text(f'data_dir = "{tmp_path / "data"}"\n[store]\nurl = "{postgres_url}"\n')
    for _ in range(2):  # the second run finds the schema current
        result = CliRunner().invoke(main, ["dashboard", "-c", str(conf), "init"])
        assert result.exit_code == 0, result.output
        assert "store ready: postgresql://postgres:***@" in result.output
        assert postgres_url.split(":")[2].split("@")[0] not in result.output  # the password
    store = PostgresStore(postgres_url)
    assert store.schema_version() == len(POSTGRES_MIGRATIONS)
    store.close()


def test_a_newer_schema_is_refused_with_a_reason(postgres_url: str) -> None:
    store = PostgresStore(postgres_url)
    store._conn().execute("INSERT INTO schema_version (version, applied_at) VALUES (99, 0)")
    store.close()
    with pytest.raises(Exception, match="schema version 99, newer"):
        PostgresStore(postgres_url)


def test_ingest_stops_acking_while_postgres_is_gone_and_recovers_by_itself(
        tmp_path: Path, mosquitto_factory: Callable[..., Any], own_cluster: PostgresCluster,
        caplog: pytest.LogCaptureFixture) -> None:
    central = start_central(tmp_path, mosquitto_factory, store_target=own_cluster.create_database("chot"))
    unit = AckedUnit(central, "u1", central.add_device("u1", "IC7").password)
    ingest = MqttIngest(central.store, central.config)
    ingest.start()
    try:
        unit.events(range(1, 11))
        assert wait_until(lambda: sorted(set(unit.acked)) == list(range(1, 11)), 20)
        own_cluster.stop()
        unit.events(range(11, 21))  # the broker takes them; the ingest cannot store them
        assert wait_until(lambda: "store unavailable" in caplog.text, 20)
        assert not any(seq > 10 for seq in unit.acked)  # no ack: the unit keeps them
        own_cluster.start()
        assert wait_until(lambda: sorted(set(unit.acked)) == list(range(1, 21)), 40)
        assert stored_total(central.store) == 20 and ingest.stats.duplicates == 0
    finally:
        ingest.stop()
        unit.close()
        central.store.close()


def test_pages_say_the_store_is_unavailable_and_come_back(tmp_path: Path, own_cluster: PostgresCluster) -> None:
    seeded = seed(own_cluster.create_database("web"))
    app = make_app(seeded, tmp_path / "instance")
    client = app.test_client()
    assert login(client, "admin").status_code == 302
    assert client.get("/").status_code == 200
    own_cluster.stop()
    page = client.get("/")
    text = page.get_data(as_text=True)
    assert page.status_code == 503 and page.headers["Retry-After"]
    assert "Kho dữ liệu tạm thời không truy cập được" in text and "Traceback" not in text
    api = client.get("/api/v1/overview")
    assert api.status_code == 503 and json.loads(api.get_data())["status"] == 503
    own_cluster.start()
    assert wait_until(lambda: client.get("/").status_code == 200, 30)  # no restart needed
    assert seeded.store.totals(Scope.all(), *DAY).total >= 0
    seeded.close()


def test_a_live_stream_ends_cleanly_when_the_store_goes(tmp_path: Path, own_cluster: PostgresCluster) -> None:
    seeded = seed(own_cluster.create_database("live"))
    app = make_app(seeded, tmp_path / "instance", CHOT_STREAM_MAX_S=60.0)
    client = app.test_client()
    assert login(client, "admin").status_code == 302
    stream = client.get("/stream/overview", buffered=False)
    chunks = iter(stream.response)
    assert b"retry: 1000" in next(chunks) and b"event: update" in next(chunks)
    own_cluster.stop()
    rest = b"".join(chunks)  # ends by itself (well before its 60 s), no exception
    assert b"retry: 3000" in rest and b"event: unavailable" in rest
    stream.close()
    assert client.get("/stream/overview").status_code == 503  # a new stream is refused with a reason
    own_cluster.start()
    assert wait_until(lambda: client.get("/").status_code == 200, 30)
    seeded.close()
