"""The demo hands each process only what it needs: a unit holds its own MQTT password and nothing
of the central's (issue 11). Checked on the real child processes through /proc/<pid>/environ."""

from __future__ import annotations

import io
import socket
from pathlib import Path

import pytest

from chot.demo.env import (
    DASHBOARD_PASSWORD,
    INGEST_PASSWORD,
    SECRET_KEY,
    STORE_URL,
    UNIT_PASSWORD,
    central_environment,
    plain_environment,
    unit_environment,
)
from chot.demo.run import UNITS, Demo
from common.localnet import free_port

BASE = {"PATH": "/usr/bin", "HOME": "/root", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "PYTHONPATH": "/src",
        "CHOT_DEMO_PASSPHRASE": "ministry-pass", "AWS_SECRET_ACCESS_KEY": "x", "CHOT_INGEST_MQTT_PASSWORD": "old"}
SECRETS = {INGEST_PASSWORD: "ingest-pw", DASHBOARD_PASSWORD: "dash-pw", SECRET_KEY: "web-key"}


def test_environments_are_built_from_plain_settings_and_the_roles_own_secrets() -> None:
    plain = {"PATH": "/usr/bin", "HOME": "/root", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "PYTHONPATH": "/src"}
    assert plain_environment(BASE) == plain
    assert unit_environment(BASE, "unit-pw") == {**plain, UNIT_PASSWORD: "unit-pw"}
    assert central_environment("mosquitto", BASE, SECRETS) == plain
    assert central_environment("ingest", BASE, SECRETS) == {**plain, INGEST_PASSWORD: "ingest-pw"}
    assert central_environment("dashboard", BASE, SECRETS) == {**plain, DASHBOARD_PASSWORD: "dash-pw",
                                                                SECRET_KEY: "web-key"}
    assert central_environment("publish-trust", BASE, SECRETS) == {**plain, DASHBOARD_PASSWORD: "dash-pw"}
    assert central_environment("publish-rosters", BASE, SECRETS) == {**plain, DASHBOARD_PASSWORD: "dash-pw"}


def test_the_postgresql_url_goes_only_to_the_central_processes_that_open_the_store() -> None:
    """The national demo's store URL holds a password: the engines and the units never get it."""
    national = {**SECRETS, STORE_URL: "postgresql://postgres:pw@127.0.0.1:5432/chot"}
    for role in ("ingest", "dashboard", "publish-trust", "publish-rosters"):
        assert central_environment(role, BASE, national)[STORE_URL] == national[STORE_URL]
    for role in ("mosquitto", "nats", "nginx", "postgres"):
        assert central_environment(role, BASE, national) == plain_environment(BASE)
    assert STORE_URL not in unit_environment({**BASE, STORE_URL: "leaked"}, "unit-pw")


def environ_of(demo: Demo, name: str) -> dict[str, str]:
    """The child's environment, read while it runs (an exited child's /proc entry has none)."""
    proc = demo.procs[name]
    alive_before = proc.poll() is None
    try:
        raw = Path(f"/proc/{proc.pid}/environ").read_bytes()
    except OSError:
        raw = b""
    if not alive_before or proc.poll() is not None:
        pytest.fail(f"{name} is not running, its environment cannot be read: {demo.exit_reason(name)}")
    return dict(item.split("=", 1) for item in raw.decode("utf-8", "replace").split("\0") if "=" in item)


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_each_demo_child_holds_only_its_own_credential(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHOT_DEMO_PASSPHRASE", "demo-ministry-passphrase")
    monkeypatch.setenv("SOME_OPERATOR_TOKEN", "never-inherited")
    demo = Demo(tmp_path / "demo", web_port=free_port(), people=12, fps=4, duration=40, out=io.StringIO())
    demo.setup()
    # Something else takes one unit's screen port before the unit starts (as any local connection
    # may): that unit is started again on another port, and runs like the others.
    squatted = UNITS[1].device
    squatter = socket.socket()
    squatter.bind(("127.0.0.1", demo.screen_ports[squatted]))
    try:
        demo.start()
        envs = {name: environ_of(demo, name) for name in demo.procs}
        assert demo.screen_ports[squatted] != squatter.getsockname()[1]
    finally:
        squatter.close()
        demo.shutdown()
    assert set(envs) == {"mosquitto", "ingest", "dashboard", *(u.device for u in UNITS)}
    unit_passwords = {u.device: demo.credentials[u.device].password for u in UNITS}
    every_secret = {*demo.secrets.values(), *unit_passwords.values(), "demo-ministry-passphrase", "never-inherited"}
    allowed = {"mosquitto": set(), "ingest": {demo.secrets[INGEST_PASSWORD]},
               "dashboard": {demo.secrets[DASHBOARD_PASSWORD], demo.secrets[SECRET_KEY]}}
    for name, env in envs.items():
        own = {unit_passwords[name]} if name in unit_passwords else allowed[name]
        held = every_secret & set(env.values())
        assert held == own, f"{name} holds {len(held - own)} secret(s) that are not its own: {sorted(env)}"
        assert "PATH" in env
    for device, password in unit_passwords.items():
        assert envs[device][UNIT_PASSWORD] == password
        assert not any(k.startswith("CHOT_") and k != UNIT_PASSWORD for k in envs[device]), sorted(envs[device])
