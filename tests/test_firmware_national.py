"""The national layout's systemd units (firmware-config/systemd/national/), checked by systemd itself."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from dashboard.config import parse_config
from tests.test_firmware_config import FW, exposure, installable_copy, unit_directives, verify_problems

pytestmark = pytest.mark.timeout(120)

NATIONAL = FW / "systemd" / "national"
# Template -> an instance as the national layout starts it.
INSTANCES = {"chot-nats@.service": "n1", "chot-ingest@.service": "2", "chot-dashboard@.service": "8081"}


def instance_copy(template: str, tmp_path: Path) -> Path:
    """The template as systemd would load one instance of it (its name carries the instance)."""
    copy = installable_copy(NATIONAL / template, tmp_path)
    named = copy.with_name(template.replace("@.", f"@{INSTANCES[template]}."))
    copy.rename(named)
    return named


def test_every_national_unit_is_shipped() -> None:
    assert {p.name for p in NATIONAL.glob("*.service")} == set(INSTANCES)
    assert (NATIONAL / "postgresql@.service.d" / "chot.conf").is_file()


@pytest.mark.parametrize("template", sorted(INSTANCES))
def test_systemd_analyze_verify_passes(template: str, tmp_path: Path) -> None:
    assert verify_problems(instance_copy(template, tmp_path)) == []


@pytest.mark.parametrize("template", sorted(INSTANCES))
def test_hardening_score(template: str, tmp_path: Path) -> None:
    score = exposure(instance_copy(template, tmp_path))
    assert score <= 1.5, f"{template} exposure {score} above 1.5"


def test_a_broker_node_stops_in_lame_duck_mode_and_reads_the_rendered_config() -> None:
    d = unit_directives(NATIONAL / "chot-nats@.service")
    assert d["KillSignal"] == ["SIGUSR2"]  # nats-server's lame-duck signal: clients move off first
    assert d["ExecStart"] == ["/usr/sbin/nats-server -c /var/lib/chot-dashboard/nats/%i/nats.conf"]
    # The path the unit reads is where `chot dashboard init` renders that node's config.
    cfg = parse_config({"data_dir": "/var/lib/chot-dashboard", "broker": {
        "kind": "nats", "nodes": [{"name": "n1", "mqtt_port": 1883, "client_port": 4222, "cluster_port": 6222}]}})
    from dashboard.broker.nats import node_dir  # noqa: PLC0415

    assert node_dir(cfg.broker, cfg.broker.nodes[0]) / "nats.conf" == Path("/var/lib/chot-dashboard/nats/n1/nats.conf")
    template = (FW / "nats" / "nats-node.conf").read_text()
    assert re.search(r"^lame_duck_duration: ", template, re.M)
    timeout = int(d["TimeoutStopSec"][0])
    assert timeout > 30 + 5  # lame_duck_duration + grace: systemd must not SIGKILL it midway


def test_workers_and_web_processes_take_their_instance() -> None:
    assert unit_directives(NATIONAL / "chot-ingest@.service")["ExecStart"] == [
        "/opt/chot/venv/bin/chot dashboard ingest --worker %i"]
    assert "--port %i" in unit_directives(NATIONAL / "chot-dashboard@.service")["ExecStart"][0]
