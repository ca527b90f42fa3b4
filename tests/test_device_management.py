"""Adding, re-keying and revoking units works the same on Mosquitto and on the NATS cluster.

The same calls (dashboard.devices, `chot dashboard ...`, the admin pages) run against a real
broker of each kind; a revoked or re-keyed unit's open connection is closed at the reload.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from chot.cli import main
from common import tomlwrite
from dashboard.devices import remove_device, rotate_password
from dashboard.store import UnknownDevice
from dashboard.web import create_app
from tests.support.central import start_central, wait_until
from tests.support.dashboard_web import ACCOUNTS, login, page_token, password_hash
from tests.support.mqttclient import Client, logs_in
from tests.support.nats import NatsCluster, national_config_data, start_national_central

pytestmark = [pytest.mark.broker, pytest.mark.cluster, pytest.mark.timeout(180)]


class Managed:
    """One central of either kind: its config, store, a port per node, and a reload counter."""

    def __init__(self, kind: str, central: Any) -> None:
        self.kind = kind
        self.central = central
        self.config = central.config
        self.store = central.store
        if kind == "nats":
            self.ports = [n.mqtt_port for n in central.cluster.nodes]
            self.reloads: Callable[[], int] = central.reloads
        else:
            self.ports = [central.port]
            self.reloads = central._reloads

    def after_reload(self, action: Callable[[], Any]) -> Any:
        """Run `action` and wait until the broker (every node) has reread its files."""
        before = self.reloads()
        result = action()
        if self.kind == "nats":
            self.central.wait_reloaded(before)
        else:
            wait_until(lambda: self.reloads() > before, 10)
        return result


@pytest.fixture(params=["mosquitto", "nats"])
def managed(request: pytest.FixtureRequest, tmp_path: Path, mosquitto_factory: Callable[..., Any],
            nats_cluster_factory: Callable[..., NatsCluster]) -> Iterator[Managed]:
    if request.param == "nats":
        central: Any = start_national_central(tmp_path, nats_cluster_factory)
    else:
        central = start_central(tmp_path, mosquitto_factory)
    yield Managed(request.param, central)
    central.store.close()


def test_revoking_a_unit_closes_its_open_connection_at_once(managed: Managed) -> None:
    creds = managed.central.add_device("u1", "IC7")
    keep = managed.central.add_device("u2", "IC7")
    unit = Client(managed.ports[-1], "u1", creds.password, "u1")
    other = Client(managed.ports[-1], "u2", keep.password, "u2")
    assert unit.ok and other.ok
    assert managed.after_reload(lambda: remove_device(managed.store, managed.config, "u1"))
    assert unit.closed.wait(15)  # cut by the reload, not at its next publish
    assert not other.closed.is_set()  # the others stay connected
    assert all(not Client(port, "u1", creds.password, "u1-again").ok for port in managed.ports)
    assert managed.store.get_device("u1") is None
    assert not remove_device(managed.store, managed.config, "u1")
    other.close()


def test_a_new_password_locks_the_old_one_out_and_cuts_the_old_login(managed: Managed) -> None:
    old = managed.central.add_device("u1", "IC7")
    unit = Client(managed.ports[0], "u1", old.password, "u1")
    assert unit.ok
    new = managed.after_reload(lambda: rotate_password(managed.store, managed.config, "u1"))
    assert new.password != old.password and (new.device, new.checkpoint) == ("u1", "IC7")
    assert unit.closed.wait(15)
    for port in managed.ports:
        assert not logs_in(port, "u1", old.password, "u1-old")
        # A cluster node may still be closing the old login's session under this client id.
        assert wait_until(lambda: logs_in(port, "u1", new.password, "u1"), 15)  # noqa: B023 - called right here
    with pytest.raises(UnknownDevice):
        rotate_password(managed.store, managed.config, "nobody")


def _password(output: str) -> str:
    match = re.search(r"mqtt password \(shown once\): (\S+)", output)
    assert match, output
    return match.group(1)


def test_the_cli_manages_units_on_the_cluster(tmp_path: Path, nats_cluster_factory: Callable[..., NatsCluster]) -> None:
    data = national_config_data(tmp_path)
    conf = tmp_path / "central.toml"
    conf.write_text(tomlwrite.dumps(data))
    runner = CliRunner()

    def chot(*args: str) -> Any:
        return runner.invoke(main, ["dashboard", "-c", str(conf), *args])

    assert chot("init").exit_code == 0
    from dashboard.config import load_config

    cluster = nats_cluster_factory(load_config(conf).broker)
    ports = [n.mqtt_port for n in cluster.nodes]
    added = chot("add-device", "u1", "--checkpoint", "IC7", "--district", "017", "--province", "01")
    assert added.exit_code == 0, added.output
    first = _password(added.output)
    assert wait_until(lambda: logs_in(ports[1], "u1", first, "u1"), 15)
    rotated = chot("rotate-password", "u1")
    assert rotated.exit_code == 0, rotated.output
    second = _password(rotated.output)
    assert wait_until(lambda: not logs_in(ports[2], "u1", first, "u1"), 15)
    assert wait_until(lambda: logs_in(ports[2], "u1", second, "u1"), 15)
    assert chot("remove-device", "u1").exit_code == 0
    assert wait_until(lambda: not logs_in(ports[0], "u1", second, "u1"), 15)
    unknown = chot("rotate-password", "u1")
    assert unknown.exit_code != 0 and "Traceback" not in unknown.output


def test_the_admin_page_rotates_a_password(managed: Managed) -> None:
    password, role, scope = ACCOUNTS["admin"]
    managed.store.create_user("admin", password_hash(password), role, scope)
    old = managed.central.add_device("u1", "IC7")
    app = create_app(managed.config, {"TESTING": True, "SECRET_KEY": "admin-test-key"})
    web = app.test_client()
    assert login(web, "admin").status_code == 302
    page = web.get("/admin/devices")
    assert b'data-test-id="rotate-u1"' in page.data
    token = page_token(web, "/admin/devices")
    before = managed.reloads()
    answer = web.post("/admin/devices/u1/rotate", data={"csrf_token": token})
    assert answer.status_code == 200
    text = answer.get_data(as_text=True)
    match = re.search(r"(?:Mật khẩu mới của u1|New password of u1)[^:]*: ([A-Za-z0-9_-]+)", text)
    assert match, text
    new = match.group(1)
    if managed.kind == "nats":
        managed.central.wait_reloaded(before)
    assert wait_until(lambda: not logs_in(managed.ports[0], "u1", old.password, "u1"), 15)
    assert wait_until(lambda: logs_in(managed.ports[0], "u1", new, "u1"), 15)
    missing = web.post("/admin/devices/nobody/rotate", data={"csrf_token": token})
    assert missing.status_code == 400
