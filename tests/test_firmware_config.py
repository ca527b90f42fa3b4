"""firmware-config/: systemd units, TOML templates, broker configs and the provisioning scripts.

Everything runs the real tools: systemd-analyze, Mosquitto, shellcheck, bash and openssl.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import fnmatch
import getpass
import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import threading
import time
import typing
from collections.abc import Callable, Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from dashboard.config import DashboardConfig, load_config, parse_config
from dashboard.devices import add_device, init_broker
from dashboard.store import SqliteStore
from scanner.config import GpioPins, UnitConfig, load_unit_config
from testbed.ministry import Ministry
from tests.support.broker import Mosquitto, free_port

pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).resolve().parent.parent
FW = ROOT / "firmware-config"
UNITS = sorted(u for u in (FW / "systemd").glob("*.service") if "@" not in u.name) + sorted((FW / "systemd").glob("*.timer"))
TEMPLATES = sorted((FW / "systemd").glob("*@.service"))
PROVISION = FW / "provision.sh"
PROVISION_CENTRAL = FW / "provision-central.sh"
VENV_BIN = Path(os.environ.get("VIRTUAL_ENV", ROOT / ".venv")) / "bin"
# Where the scripts install chot on a unit or the central; mapped to this checkout's venv here.
INSTALLED_VENV = "/opt/chot/venv"
# Binaries that exist only on a unit (cage, the kiosk's compositor); a stand-in takes their
# place for systemd-analyze when this machine lacks them. Every other path must really exist.
UNIT_ONLY_BINARIES = ("/usr/bin/cage",)


# -- systemd units ------------------------------------------------------------------------------

def unit_directives(path: Path) -> dict[str, list[str]]:
    """`Key` -> values of a unit file (all sections; later lines add to the list)."""
    found: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, _, value = line.partition("=")
        found.setdefault(key.strip(), []).append(value.strip())
    return found


def installable_copy(unit: Path, tmp: Path, text: str | None = None) -> Path:
    """A copy of `unit` whose install paths point at this machine's binaries."""
    text = unit.read_text() if text is None else text
    text = text.replace(INSTALLED_VENV, str(VENV_BIN.parent))
    for binary in UNIT_ONLY_BINARIES:
        if binary in text and not Path(binary).exists():
            stand_in = tmp / "bin" / Path(binary).name
            stand_in.parent.mkdir(parents=True, exist_ok=True)
            stand_in.write_text("#!/bin/sh\nexit 0\n")
            stand_in.chmod(0o755)
            text = text.replace(binary, str(stand_in))
    copy = tmp / unit.name
    copy.write_text(text)
    return copy


def verify_problems(unit_file: Path) -> list[str]:
    """What `systemd-analyze verify` says about one unit file: [] when it is clean.

    verify exits 0 on unknown keys and unparsable values (it only warns), so any line naming
    the file counts as a problem too.
    """
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", "--generators=no", str(unit_file)],
        capture_output=True, text=True, timeout=60, env={**os.environ, "SYSTEMD_LOG_COLOR": "0"},
    )
    lines = [ln for ln in (result.stdout + result.stderr).splitlines() if unit_file.name in ln]
    if result.returncode != 0 and not lines:
        lines = [f"exit {result.returncode}: {result.stderr.strip()}"]
    return lines


def exposure(unit_file: Path) -> float:
    """systemd's own hardening score for a unit (0 = locked down, 10 = fully exposed)."""
    result = subprocess.run(["systemd-analyze", "security", "--offline=true", "--no-pager", str(unit_file)],
                            capture_output=True, text=True, timeout=60)
    match = re.search(r"Overall exposure level for \S+: ([0-9.]+)", result.stdout)
    assert match, result.stdout + result.stderr
    return float(match.group(1))


def test_every_expected_unit_is_shipped() -> None:
    assert {u.name for u in UNITS} == {"chot-scanner.service", "chot-kiosk.service", "chot-broker.service",
                                       "chot-ingest.service", "chot-dashboard.service", "chot-rosters.service",
                                       "chot-rosters.timer"}
    assert [t.name for t in TEMPLATES] == ["chot-ingest@.service"]


def worker_instance(tmp_path: Path, worker: int = 2) -> Path:
    """The Mosquitto-profile worker template as systemd loads instance `worker` of it."""
    copy = installable_copy(FW / "systemd" / "chot-ingest@.service", tmp_path)
    return copy.rename(copy.with_name(f"chot-ingest@{worker}.service"))


def test_ingest_worker_template_passes_verify_and_hardening(tmp_path: Path) -> None:
    unit = worker_instance(tmp_path)
    assert verify_problems(unit) == []
    assert exposure(unit) <= 1.5


def test_ingest_worker_template_agrees_with_the_single_ingest_and_the_config() -> None:
    single = unit_directives(FW / "systemd" / "chot-ingest.service")
    worker = unit_directives(FW / "systemd" / "chot-ingest@.service")
    assert worker["ExecStart"] == [single["ExecStart"][0] + " --worker %i"]
    assert worker["Conflicts"] == ["chot-ingest.service"]  # one layout or the other, never both
    assert "chot-broker.service" in worker["After"][0].split()
    # The same restart policy as the single ingest (and the demo, chot/demo/supervise.py).
    for key in ("Restart", "RestartSec", "StartLimitIntervalSec", "StartLimitBurst", "TimeoutStopSec"):
        assert worker[key] == single[key], key
    # Everything else of the single ingest's sandbox is kept.
    for key, values in single.items():
        if key not in ("ExecStart", "Description", "Documentation", "After", "LoadCredential"):
            assert worker.get(key) == values, key
    # Its credentials: the ingest's broker password (every worker account shares it) and the
    # PostgreSQL URL that several workers need.
    central = load_config(FW / "central.toml")
    credentials = {c.split(":")[0] for c in worker["LoadCredential"]}
    assert credentials == {central.mqtt.ingest.password_credential, central.store.url_credential}
    config = parse_config({"data_dir": "/var/lib/chot-dashboard", "store": {"url": "postgresql://h/chot"},
                           "ingest": {"workers": 3}})
    from dashboard.devices import ingest_usernames

    assert ingest_usernames(config) == ["chot-ingest", "chot-ingest-2", "chot-ingest-3"]  # one account per %i


@pytest.mark.parametrize("unit", UNITS, ids=lambda u: u.name)
def test_systemd_analyze_verify_passes(unit: Path, tmp_path: Path) -> None:
    if unit.suffix == ".timer":  # a timer is verified beside the service it starts
        installable_copy(unit.with_suffix(".service"), tmp_path)
    assert verify_problems(installable_copy(unit, tmp_path)) == []


@pytest.mark.parametrize("mistake, expected", [
    (("Restart=on-failure", "Restart=on-failur"), "Failed to parse service restart"),
    (("ProtectSystem=strict", "ProtectSytem=strict"), "Unknown key"),
    (("WatchdogSec=30", "WatchdogSec=thirty"), "Failed to parse sec value"),
    (("chot scanner run", "chot-scanner run"), "not executable"),
])
def test_verify_catches_a_real_mistake(mistake: tuple[str, str], expected: str, tmp_path: Path) -> None:
    unit = FW / "systemd" / "chot-scanner.service"
    text = unit.read_text()
    assert mistake[0] in text
    copy = installable_copy(unit, tmp_path, text.replace(mistake[0], mistake[1]))
    problems = verify_problems(copy)
    assert any(expected in p for p in problems), problems


def test_uninstalled_binary_paths_are_not_papered_over(tmp_path: Path) -> None:
    # Without the venv mapping the unit names /opt/chot/venv/bin/chot, which this machine lacks.
    unit = FW / "systemd" / "chot-ingest.service"
    copy = tmp_path / unit.name
    copy.write_text(unit.read_text())
    assert any("not executable" in p for p in verify_problems(copy))


@pytest.mark.parametrize("unit, limit", [
    ("chot-scanner.service", 2.0), ("chot-broker.service", 1.5), ("chot-ingest.service", 1.5),
    ("chot-dashboard.service", 1.5), ("chot-kiosk.service", 5.0), ("chot-rosters.service", 1.5),
])
def test_hardening_score(unit: str, limit: float, tmp_path: Path) -> None:
    score = exposure(installable_copy(FW / "systemd" / unit, tmp_path))
    assert score <= limit, f"{unit} exposure {score} above {limit}"


def test_scanner_unit_keeps_camera_access_and_its_contract() -> None:
    d = unit_directives(FW / "systemd" / "chot-scanner.service")
    assert d["Type"] == ["notify"] and d["Restart"] == ["on-failure"] and int(d["WatchdogSec"][0]) > 0
    assert d["User"] == ["chot"] and set(d["SupplementaryGroups"][0].split()) == {"video", "gpio"}
    assert d["ProtectSystem"] == ["strict"] and d["NoNewPrivileges"] == ["yes"] and d["PrivateTmp"] == ["yes"]
    # Options that would hide /dev/video*, /dev/media* or /dev/dma_heap from the camera stack.
    assert d.get("PrivateDevices", ["no"]) == ["no"] and d.get("PrivateUsers", ["no"]) == ["no"]
    allowed = {v.split()[0] for v in d["DeviceAllow"]}
    assert {"char-video4linux", "char-media", "char-dma_heap", "char-gpiochip"} <= allowed
    assert "AF_NETLINK" in d["RestrictAddressFamilies"][0]  # libcamera's udev monitor


def test_units_agree_with_the_templates() -> None:
    unit_cfg = load_unit_config(FW / "unit.toml")
    scanner = unit_directives(FW / "systemd" / "chot-scanner.service")
    assert unit_cfg.mqtt is not None
    assert scanner["LoadCredential"][0].split(":")[0] == unit_cfg.mqtt.password_credential
    writable = [Path(p) for p in scanner["ReadWritePaths"][0].split()]
    for path in (unit_cfg.storage.data_dir, unit_cfg.trust.cache_dir):
        assert any(path == w or w in path.parents for w in writable), path
    assert all("/etc/chot/unit.toml" in v for v in scanner["ExecStart"] + scanner["ExecStartPre"])
    kiosk = unit_directives(FW / "systemd" / "chot-kiosk.service")
    assert f"--app=http://{unit_cfg.screen.host}:{unit_cfg.screen.port}/" in kiosk["ExecStart"][0]
    assert "--incognito" in kiosk["ExecStart"][0]  # names on screen never reach a disk cache

    central = load_config(FW / "central.toml")
    ingest = unit_directives(FW / "systemd" / "chot-ingest.service")
    dash = unit_directives(FW / "systemd" / "chot-dashboard.service")
    broker_unit = unit_directives(FW / "systemd" / "chot-broker.service")
    assert {c.split(":")[0] for c in ingest["LoadCredential"]} == {central.mqtt.ingest.password_credential}
    assert {c.split(":")[0] for c in dash["LoadCredential"]} == {
        central.mqtt.dashboard.password_credential, central.web.secret_key_credential, "dashboard-metrics-token"}
    assert str(central.broker.mosquitto_conf) in broker_unit["ExecStart"][0]
    for d in (ingest, dash, broker_unit):
        assert str(central.data_dir) in d["ReadWritePaths"][0].split()
    for d in (ingest, dash):
        assert "CHOT_DASHBOARD_CONFIG=/etc/chot/central.toml" in d["Environment"][0].split()


def test_usb_trust_sticks_are_mounted_where_the_scanner_looks() -> None:
    rule = next(ln for ln in (FW / "pi/99-chot-usb-trust.rules").read_text().splitlines() if ln.startswith("ACTION"))
    mount_point = re.search(r"\$devnode (\S+)\"", rule)
    assert mount_point is not None and "ro," in rule and "noexec" in rule
    config = load_unit_config(FW / "unit.toml")
    assert config.trust.usb_glob is not None
    assert fnmatch.fnmatch(f"{mount_point.group(1)}/chot-trust-7.json", config.trust.usb_glob)


# -- TOML templates ----------------------------------------------------------------------------

def template_keys(path: Path) -> dict[str, set[str]]:
    """Section -> keys written in a template, set (`key = `) or shown commented (`# key = `)."""
    keys: dict[str, set[str]] = {"": set()}
    section = ""
    for line in path.read_text().splitlines():
        # `[[a.b]]`, shown commented too: an array of tables (the national cluster's nodes).
        if m := re.match(r"^\[([\w.]+)\]\s*$", line) or re.match(r"^(?:# )?\[\[([\w.]+)\]\]\s*$", line):
            section = m.group(1)
            keys.setdefault(section, set())
        elif m := re.match(r"^(?:# )?(\w+) = ", line):
            keys[section].add(m.group(1))
    return keys


def config_fields(cls: type, section: str = "") -> dict[str, set[str]]:
    """Section -> field names of a config dataclass, nested dataclasses as sub-sections."""
    fields: dict[str, set[str]] = {section: set()}
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        inner = [a for a in typing.get_args(tp) if a is not type(None)] or [tp]
        if isinstance(inner[0], type) and dataclasses.is_dataclass(inner[0]):
            fields.update(config_fields(inner[0], f"{section}.{f.name}" if section else f.name))
        else:
            fields[section].add(f.name)
    return {k: v for k, v in fields.items() if v or k}


def test_unit_template_loads_through_the_scanner_loader() -> None:
    config = load_unit_config(FW / "unit.toml")
    assert config.camera.backend == "picamera2" and config.mqtt is not None and config.mqtt.tls
    assert config.mqtt.password is None  # secrets only as credentials
    assert config.storage.data_dir == Path("/var/lib/chot")


def test_central_template_loads_through_the_dashboard_loader() -> None:
    config = load_config(FW / "central.toml")
    assert config.mqtt.ingest.password is None and config.web.secret_key is None
    assert config.broker.tls_port == 8883 and config.web.host == "127.0.0.1"


@pytest.mark.parametrize("template, cls", [("unit.toml", UnitConfig), ("central.toml", DashboardConfig)])
def test_templates_document_every_field(template: str, cls: type) -> None:
    written = template_keys(FW / template)
    for section, names in config_fields(cls).items():
        missing = names - written.get(section, set())
        assert not missing, f"[{section}] of {template} does not show {sorted(missing)}"
    # ...and each set or shown key has a comment above it or its group.
    lines = (FW / template).read_text().splitlines()
    for i, line in enumerate(lines):
        if re.match(r"^\w+ = ", line):
            above = lines[max(0, i - 6):i]
            assert any(a.startswith("#") for a in above), f"{template}:{i + 1} {line!r} has no comment"


def test_readme_wiring_matches_the_default_pins() -> None:
    readme = (FW / "README.md").read_text()
    for name, pin in dataclasses.asdict(GpioPins()).items():
        row = next((ln for ln in readme.splitlines() if ln.startswith("|") and f"GPIO{pin} " in ln), None)
        assert row is not None and name in row.lower(), f"no wiring row for {name} on GPIO{pin}"


# -- the central broker config, from the central template, on a real Mosquitto -----------------

def _self_signed(tmp: Path) -> tuple[Path, Path]:
    """A server certificate for 127.0.0.1 made by openssl, as an operator would."""
    cert, key = tmp / "broker.crt", tmp / "broker.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True, timeout=30)
    return cert, key


class Listener:
    """An MQTT client that records what it receives (topic -> payloads)."""

    def __init__(self, port: int, username: str | None, password: str | None, *,
                 ca: Path | None = None, subscribe: str | None = None) -> None:
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        if username is not None:
            self.client.username_pw_set(username, password)
        if ca is not None:
            self.client.tls_set(ca_certs=str(ca))
        self.received: dict[str, list[bytes]] = {}
        self.connected = threading.Event()
        self.outcome = "timeout"
        self.subscribed = threading.Event()
        self.client.on_connect = self._on_connect
        self.client.on_message = lambda c, u, msg: self.received.setdefault(msg.topic, []).append(bytes(msg.payload))
        self.client.on_subscribe = lambda *a: self.subscribed.set()
        self.subscribe = subscribe
        self.client.connect("127.0.0.1", port, keepalive=10)
        self.client.loop_start()
        self.connected.wait(10)

    def _on_connect(self, client: mqtt.Client, u: object, flags: object, reason: mqtt.ReasonCode,
                    props: object) -> None:
        self.outcome = "ok" if not reason.is_failure else str(reason)
        if self.subscribe and not reason.is_failure:
            client.subscribe(self.subscribe, qos=1)
        self.connected.set()

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)

    def try_publish(self, topic: str, payload: bytes) -> None:
        """Publish, accepting that the broker may cut the connection over it."""
        info = self.client.publish(topic, payload, qos=1)
        try:
            info.wait_for_publish(2)
        except RuntimeError:
            pass

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def wait_for(check: Callable[[], bool], timeout: float = 5.0) -> bool:
    """Poll `check` until it holds or `timeout` seconds pass; its last answer."""
    deadline = time.monotonic() + timeout
    while not check() and time.monotonic() < deadline:
        time.sleep(0.05)
    return check()


@pytest.fixture
def clients() -> Iterator[list[Listener]]:
    made: list[Listener] = []
    yield made
    for c in made:
        c.close()


@dataclasses.dataclass
class CentralBroker:
    """A central broker rendered from central.toml and running, with two registered units."""

    port: int                 # loopback listener (ingest, dashboard)
    unit_port: int            # where units connect: the TLS listener when there is one
    ca: Path | None
    passwords: dict[str, str]


def start_central_from_template(tmp_path: Path, mosquitto_factory: Callable[..., Mosquitto],
                                tls: bool) -> CentralBroker:
    """central.toml's values with paths and ports moved to this test; units unit-ic7-01/02."""
    shipped = load_config(FW / "central.toml")
    port, tls_port = free_port(), free_port()
    broker = {"user": getpass.getuser(), "listen_port": port, "template": str(FW / "mosquitto" / "mosquitto.conf"),
              "tls_port": None}
    ca = None
    if tls:
        cert, key = _self_signed(tmp_path)
        broker |= {"tls_port": tls_port, "tls_host": "127.0.0.1", "tls_certfile": str(cert), "tls_keyfile": str(key)}
        ca = cert
    data = {"data_dir": str(tmp_path / "central"), "timezone": shipped.timezone,
            "mqtt": {"port": port, "ingest": {"username": shipped.mqtt.ingest.username, "password": "ingest-pw"},
                     "dashboard": {"username": shipped.mqtt.dashboard.username, "password": "dash-pw"}},
            "broker": broker}
    config = parse_config(data)
    assert config.database is not None
    store = SqliteStore(config.database)
    try:
        init_broker(store, config)
        passwords = {d: add_device(store, config, d, "IC7", "001", "01", reload=False).password
                     for d in ("unit-ic7-01", "unit-ic7-02")}
    finally:
        store.close()
    assert config.broker.mosquitto_conf is not None
    mosquitto_factory(conf_text=config.broker.mosquitto_conf.read_text(), port=port)
    return CentralBroker(port, tls_port if tls else port, ca, passwords)


@pytest.mark.broker
@pytest.mark.parametrize("tls", [False, True], ids=["loopback", "tls-listener"])
def test_central_broker_from_the_template_enforces_its_acl(
        tls: bool, tmp_path: Path, mosquitto_factory: Callable[..., Mosquitto], clients: list[Listener]) -> None:
    central = start_central_from_template(tmp_path, mosquitto_factory, tls)
    port, unit_port, ca = central.port, central.unit_port, central.ca
    password = central.passwords["unit-ic7-01"]

    def client(user: str | None, password: str | None, *, on: int = unit_port, sub: str | None = None) -> Listener:
        c = Listener(on, user, password, ca=ca if on != port else None, subscribe=sub)
        clients.append(c)
        return c

    ingest = client("chot-ingest", "ingest-pw", on=port, sub="chot/v1/#")
    assert ingest.outcome == "ok" and ingest.subscribed.wait(5)
    assert client(None, None).outcome != "ok"                      # no anonymous clients
    assert client("unit-ic7-01", "wrong").outcome != "ok"          # no wrong passwords
    # Forbidden publishes, each on its own connection: the broker drops the message (and on the
    # TLS listener Mosquitto 2.0.11 also drops the connection); either way nothing gets through.
    for topic in ("chot/v1/IC7/unit-ic7-02/event", "chot/v1/trust", "chot/v1/XX/unit-ic7-01/event"):
        intruder = client("unit-ic7-01", password)
        assert intruder.outcome == "ok"
        intruder.try_publish(topic, b'{"forged": true}')
    unit = client("unit-ic7-01", password, sub="chot/v1/trust")
    assert unit.outcome == "ok" and unit.subscribed.wait(5)
    unit.publish("chot/v1/IC7/unit-ic7-01/event", b'{"seq": 1}')         # its own topic
    dashboard = client("chot-dashboard", "dash-pw", on=port)
    dashboard.publish("chot/v1/trust", b'{"format": "chot-trust-bundle/1"}', retain=True)
    assert wait_for(lambda: "chot/v1/IC7/unit-ic7-01/event" in ingest.received
                    and "chot/v1/trust" in unit.received)
    assert ingest.received["chot/v1/IC7/unit-ic7-01/event"] == [b'{"seq": 1}']
    assert set(ingest.received) == {"chot/v1/IC7/unit-ic7-01/event", "chot/v1/trust"}
    assert ingest.received["chot/v1/trust"] == [b'{"format": "chot-trust-bundle/1"}']
    assert unit.received["chot/v1/trust"] == [b'{"format": "chot-trust-bundle/1"}']


# -- provisioning scripts ----------------------------------------------------------------------

def run_script(script: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if k != "CHOT_MQTT_PASSWORD"}
    full_env |= {"CHOT_PYTHON": str(VENV_BIN / "python"), **(env or {})}
    return subprocess.run(["bash", str(script), *args], capture_output=True, text=True, timeout=60, env=full_env)


def has_package(name: str) -> bool:
    result = subprocess.run(["dpkg-query", "-W", "-f=${Status}", name], capture_output=True, text=True, timeout=10)
    return "ok installed" in result.stdout


def has_user(name: str) -> bool:
    return subprocess.run(["getent", "passwd", name], capture_output=True, timeout=10).returncode == 0


def tree(root: Path) -> dict[str, tuple[int, bytes | None]]:
    """Every path under root with its mode and (for files) content."""
    out: dict[str, tuple[int, bytes | None]] = {}
    for p in sorted(root.rglob("*")):
        st = p.lstat()
        out[str(p.relative_to(root))] = (st.st_mode, p.read_bytes() if p.is_file() else None)
    return out


@pytest.fixture(scope="module")
def enrolment(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """What a unit is enrolled with: the ministry's anchor and bundle, a broker CA, a password."""
    d = tmp_path_factory.mktemp("enrol")
    ministry, stranger = Ministry(seed=5), Ministry(seed=6)
    files = {"anchor": d / "anchor.pem", "bundle": d / "bundle.json", "other_anchor": d / "other.pem",
             "other_bundle": d / "other-bundle.json", "password": d / "password", "ca": d / "ca.pem",
             "people": d / "people.txt"}
    files["anchor"].write_bytes(ministry.anchor_pem)
    files["bundle"].write_bytes(ministry.bundle(version=4))
    files["other_anchor"].write_bytes(stranger.anchor_pem)
    files["other_bundle"].write_bytes(stranger.bundle(version=9))
    files["password"].write_text("unit-pw-Xq81\n")
    files["ca"].write_bytes(ministry.anchor_pem)  # any PEM stands in for the broker CA file
    by_name = {s.name: s for s in ministry.samples(dt.datetime.now(dt.timezone.utc))}
    files["people"].write_text(by_name["complete_series"].payload + "\n")  # one person, for the camera
    return files


def enrol_args(files: dict[str, Path], prefix: Path, *extra: str) -> list[str]:
    return ["--prefix", str(prefix), "--device-id", "unit-lc-03", "--checkpoint", "LC-GATE",
            "--policy", "workplace", "--broker-host", "central.example.org", "--broker-port", "8884",
            "--ca-file", str(files["ca"]), "--anchor", str(files["anchor"]), "--bundle", str(files["bundle"]),
            "--password-file", str(files["password"]), *extra]


@pytest.mark.parametrize("script", [PROVISION, PROVISION_CENTRAL, FW / "provision-lib.sh", FW / "chot-central"],
                         ids=lambda p: p.name)
def test_scripts_pass_shellcheck(script: Path) -> None:
    # -x follows the shared provision-lib.sh, so it is checked as the scripts use it.
    result = subprocess.run(["shellcheck", "-x", "--severity=info", str(script)], capture_output=True, text=True,
                            timeout=60, cwd="/")
    assert result.returncode == 0, result.stdout


@pytest.mark.parametrize("script", [PROVISION, PROVISION_CENTRAL], ids=lambda p: p.name)
def test_scripts_have_help(script: Path) -> None:
    result = run_script(script, "--help")
    assert result.returncode == 0 and "--dry-run" in result.stdout and "--prefix" in result.stdout


def test_dry_run_prints_every_step_and_changes_nothing(enrolment: dict[str, Path], tmp_path: Path) -> None:
    prefix = tmp_path / "root"
    prefix.mkdir()
    user_existed = has_user("chot")
    result = run_script(PROVISION, *enrol_args(enrolment, prefix, "--dry-run"))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    steps = [ln for ln in out.splitlines() if ln.startswith("would  ")]
    # Exactly the packages this machine lacks are asked for (the OS's picamera2 and libcamera
    # among them, off a Pi).
    wanted = ["python3-venv", "python3-pip", "python3-picamera2", "python3-libcamera", "rpicam-apps-lite",
              "libzbar0", "mosquitto-clients", "systemd-timesyncd", "python3-gpiozero", "python3-lgpio",
              "cage", "chromium"]
    missing = [p for p in wanted if not has_package(p)]
    packages_step = next((s for s in steps if "apt-get install" in s), "would  apt-get install")
    assert packages_step.split("apt-get install", 1)[1].split() == missing
    for expected in (f"{prefix}/opt/chot/venv", "pip install chot",
                     f"install {prefix}/etc/chot/trust-anchor.pem",
                     f"install {prefix}/etc/chot/trust-bundle.json",
                     f"write MQTT credential {prefix}/etc/chot/credentials/mqtt-password (mode 0600)",
                     f"install {prefix}/etc/chot/unit.toml",
                     f"install {prefix}/etc/systemd/system/chot-scanner.service",
                     f"install {prefix}/etc/systemd/journald.conf.d/chot.conf",
                     f"install {prefix}/etc/systemd/system.conf.d/chot-watchdog.conf",
                     f"{prefix}/boot/firmware/config.txt",
                     "enable and start chot-scanner.service chot-kiosk.service"):
        assert any(expected in s for s in steps), f"no step {expected!r} in:\n{out}"
    assert "check  trust bundle version 4" in out
    assert out.rstrip().endswith("dry run: nothing was changed")
    assert "unit-pw-Xq81" not in out + result.stderr
    assert tree(prefix) == {}
    # The user is created only where it is missing, and the dry run did not create it.
    assert ("would  create system user chot" in out) != user_existed
    assert has_user("chot") == user_existed


def test_provision_into_a_prefix_writes_a_loadable_unit(enrolment: dict[str, Path], tmp_path: Path) -> None:
    prefix = tmp_path / "root"
    result = run_script(PROVISION, *enrol_args(enrolment, prefix, "--no-gpio"))
    assert result.returncode == 0, result.stderr
    assert "unit-pw-Xq81" not in result.stdout + result.stderr
    etc = prefix / "etc" / "chot"
    config = load_unit_config(etc / "unit.toml")
    assert (config.unit.device_id, config.unit.checkpoint, config.unit.policy) == ("unit-lc-03", "LC-GATE",
                                                                                   "workplace")
    assert config.mqtt is not None
    assert (config.mqtt.host, config.mqtt.port, config.mqtt.tls) == ("central.example.org", 8884, True)
    assert config.mqtt.ca_file == Path("/etc/chot/broker-ca.pem") and not config.gpio.enabled
    assert config.mqtt.password is None and "unit-pw" not in (etc / "unit.toml").read_text()
    cred = etc / "credentials" / "mqtt-password"
    assert cred.read_text() == "unit-pw-Xq81\n"
    assert stat.S_IMODE(cred.stat().st_mode) == 0o600 and stat.S_IMODE(cred.parent.stat().st_mode) == 0o700
    assert (etc / "trust-anchor.pem").read_bytes() == enrolment["anchor"].read_bytes()
    assert (etc / "trust-bundle.json").read_bytes() == enrolment["bundle"].read_bytes()
    assert (prefix / "etc/systemd/system/chot-scanner.service").read_bytes() == \
        (FW / "systemd/chot-scanner.service").read_bytes()
    boot = (prefix / "boot/firmware/config.txt").read_text()
    assert "# BEGIN chot" in boot and "dtparam=watchdog=on" in boot
    assert (prefix / "opt/chot/src/scanner/config.py").is_file()
    assert (prefix / "etc/udev/rules.d/99-chot-usb-trust.rules").is_file()
    # Every file the config names was installed: `chot scanner check-config` finds them all
    # once the absolute paths are read inside the prefix.
    inside = tmp_path / "unit-inside-prefix.toml"
    inside.write_text((etc / "unit.toml").read_text().replace('"/etc/chot/', f'"{prefix}/etc/chot/')
                      .replace('"/var/lib/chot', f'"{prefix}/var/lib/chot'))
    check = subprocess.run([str(VENV_BIN / "chot"), "scanner", "check-config", str(inside)],
                           capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stderr
    assert "unit unit-lc-03 at LC-GATE, policy workplace" in check.stdout

    before = tree(prefix)
    again = run_script(PROVISION, *enrol_args(enrolment, prefix, "--no-gpio"))
    assert again.returncode == 0, again.stderr
    assert not [ln for ln in again.stdout.splitlines() if ln.startswith("doing")], again.stdout
    assert tree(prefix) == before

    # A local edit survives re-enrolment; the enrolment keys are updated in place.
    (etc / "unit.toml").write_text((etc / "unit.toml").read_text().replace("verdict_seconds = 4.0",
                                                                             "verdict_seconds = 6.0"))
    moved = run_script(PROVISION, "--prefix", str(prefix), "--checkpoint", "LC-GATE-2", "--no-gpio")
    assert moved.returncode == 0, moved.stderr
    config = load_unit_config(etc / "unit.toml")
    assert config.unit.checkpoint == "LC-GATE-2" and config.screen.verdict_seconds == 6.0
    assert config.unit.device_id == "unit-lc-03"


def test_a_pinned_anchor_is_not_replaced_silently(enrolment: dict[str, Path], tmp_path: Path) -> None:
    prefix = tmp_path / "root"
    assert run_script(PROVISION, *enrol_args(enrolment, prefix)).returncode == 0
    before = tree(prefix)
    args = enrol_args(enrolment, prefix)
    args[args.index("--anchor") + 1] = str(enrolment["other_anchor"])
    args[args.index("--bundle") + 1] = str(enrolment["other_bundle"])
    result = run_script(PROVISION, *args)
    assert result.returncode != 0 and "--replace-anchor" in result.stderr
    assert tree(prefix) == before


@pytest.mark.parametrize("option, value, reason", [
    ("--bundle", "other_bundle", "refused"),                  # signed by a key nobody pinned
    ("--device-id", "unit/../x", "ids may hold only"),
    ("--broker-port", "80a", "not a port"),
    ("--password-file", "/nonexistent/password", "cannot read"),
    ("--frobnicate", None, "unknown option"),
])
def test_bad_input_is_refused_with_a_reason(option: str, value: str | None, reason: str,
                                            enrolment: dict[str, Path], tmp_path: Path) -> None:
    prefix = tmp_path / "root"
    args = enrol_args(enrolment, prefix)
    if option in args:
        args[args.index(option) + 1] = str(enrolment[value]) if value in enrolment else str(value)
    else:
        args.append(option)
    result = run_script(PROVISION, *args)
    assert result.returncode != 0
    assert reason in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert not (prefix / "etc/chot/unit.toml").exists()


def test_first_enrolment_needs_a_password(enrolment: dict[str, Path], tmp_path: Path) -> None:
    args = enrol_args(enrolment, tmp_path / "root")
    i = args.index("--password-file")
    del args[i:i + 2]
    result = run_script(PROVISION, *args)
    assert result.returncode != 0 and "no MQTT password" in result.stderr
    # The environment variable is the other way in.
    ok = run_script(PROVISION, *args, env={"CHOT_MQTT_PASSWORD": "from-env-pw"})
    assert ok.returncode == 0, ok.stderr
    assert (tmp_path / "root/etc/chot/credentials/mqtt-password").read_text() == "from-env-pw\n"
    assert "from-env-pw" not in ok.stdout


def test_central_dry_run_prints_steps_and_changes_nothing(tmp_path: Path) -> None:
    prefix = tmp_path / "root"
    prefix.mkdir()
    result = run_script(PROVISION_CENTRAL, "--prefix", str(prefix), "--dry-run")
    assert result.returncode == 0, result.stderr
    steps = [ln for ln in result.stdout.splitlines() if ln.startswith("would  ")]
    for expected in (f"install {prefix}/etc/chot/central.toml", "dashboard-secret-key (mode 0600)",
                     "ingest-mqtt-password (mode 0600)", f"{prefix}/etc/systemd/system/chot-broker.service",
                     "enable and start chot-broker.service chot-ingest.service chot-dashboard.service chot-rosters.timer",
                     f"{prefix}/etc/systemd/system/chot-rosters.timer", f"{prefix}/etc/systemd/system/chot-ingest@.service"):
        assert any(expected in s for s in steps), f"no step {expected!r} in:\n{result.stdout}"
    assert tree(prefix) == {}


def test_central_provision_into_a_prefix(tmp_path: Path) -> None:
    prefix = tmp_path / "root"
    result = run_script(PROVISION_CENTRAL, "--prefix", str(prefix))
    assert result.returncode == 0, result.stderr
    etc = prefix / "etc" / "chot"
    config = load_config(etc / "central.toml")
    assert config.broker.template == Path("/opt/chot/src/firmware-config/mosquitto/mosquitto.conf")
    assert (prefix / "opt/chot/src/firmware-config/mosquitto/mosquitto.conf").is_file()
    wrapper = prefix / "usr/local/sbin/chot-central"
    assert wrapper.read_bytes() == (FW / "chot-central").read_bytes() and os.access(wrapper, os.X_OK)
    secrets = {p.name: p.read_text() for p in (etc / "credentials").iterdir()}
    assert set(secrets) == {"dashboard-secret-key", "dashboard-metrics-token", "ingest-mqtt-password",
                            "dashboard-mqtt-password"}
    assert all(len(v.strip()) >= 24 for v in secrets.values()) and len(set(secrets.values())) == 4
    assert all(stat.S_IMODE((etc / "credentials" / n).stat().st_mode) == 0o600 for n in secrets)
    assert not any(v.strip() in result.stdout for v in secrets.values())
    before = tree(prefix)
    again = run_script(PROVISION_CENTRAL, "--prefix", str(prefix))
    assert again.returncode == 0 and tree(prefix) == before  # secrets are made once, then kept


def test_a_config_that_does_not_load_is_not_installed(enrolment: dict[str, Path], tmp_path: Path) -> None:
    prefix = tmp_path / "root"
    assert run_script(PROVISION, *enrol_args(enrolment, prefix)).returncode == 0
    config = prefix / "etc/chot/unit.toml"
    config.write_text(config.read_text().replace("[clock]", "[clock]\nmax_skew_secs = 5"))
    broken = config.read_bytes()
    result = run_script(PROVISION, "--prefix", str(prefix), "--policy", "eu-validity")
    assert result.returncode != 0
    assert "clock.max_skew_secs: unknown key" in result.stderr and "Traceback" not in result.stderr
    assert config.read_bytes() == broken  # left for the operator to fix, not half-rewritten


def test_read_only_root_puts_the_data_partition_in_fstab(enrolment: dict[str, Path], tmp_path: Path) -> None:
    prefix = tmp_path / "root"
    (prefix / "etc").mkdir(parents=True)
    (prefix / "etc/fstab").write_text("proc /proc proc defaults 0 0\n")
    refused = run_script(PROVISION, *enrol_args(enrolment, prefix, "--read-only-root"))
    assert refused.returncode != 0 and "--read-only-root needs --data-device" in refused.stderr
    args = enrol_args(enrolment, prefix, "--read-only-root", "--data-device", "/dev/mmcblk0p3")
    first = run_script(PROVISION, *args)
    assert first.returncode == 0, first.stderr
    assert "turn on the overlay root file system" in first.stdout  # raspi-config: listed, not run here
    lines = (prefix / "etc/fstab").read_text().splitlines()
    data = [ln.split() for ln in lines if "/var/lib/chot" in ln]
    assert lines[0] == "proc /proc proc defaults 0 0"
    assert len(data) == 1 and data[0][:3] == ["/dev/mmcblk0p3", "/var/lib/chot", "ext4"]
    assert "noexec" in data[0][3]
    assert run_script(PROVISION, *args).returncode == 0
    assert (prefix / "etc/fstab").read_text().splitlines() == lines  # added once


@pytest.fixture
def notify_socket() -> Iterator[tuple[str, socket.socket]]:
    """systemd's notify socket, as a datagram socket of our own (short path: AF_UNIX limit)."""
    folder = tempfile.mkdtemp(prefix="chot-fw-")
    path = os.path.join(folder, "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    try:
        yield path, sock
    finally:
        sock.close()
        shutil.rmtree(folder)


def notifications(sock: socket.socket, until: Callable[[list[bytes]], bool], timeout: float,
                  seen: list[bytes]) -> list[bytes]:
    """Collect notify datagrams into `seen` until `until(seen)` or the timeout."""
    deadline = time.monotonic() + timeout
    while not until(seen) and time.monotonic() < deadline:
        sock.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            seen.append(sock.recv(512))
        except TimeoutError:
            break
    return seen


def seconds(value: str) -> float:
    """A systemd time span as used in our units: "30", "30s", "2min"."""
    m = re.fullmatch(r"(\d+)(s|min)?", value)
    assert m, value
    return float(m.group(1)) * (60 if m.group(2) == "min" else 1)


@pytest.mark.broker
@pytest.mark.slow
def test_a_provisioned_unit_runs_as_its_service_would(
        enrolment: dict[str, Path], tmp_path: Path, mosquitto_factory: Callable[..., Mosquitto],
        clients: list[Listener], notify_socket: tuple[str, socket.socket]) -> None:
    """provision.sh's files, started the way chot-scanner.service starts them, report to the
    central broker rendered from central.toml. Only the camera is swapped (no Pi camera here)."""
    central = start_central_from_template(tmp_path, mosquitto_factory, tls=False)
    password_file = tmp_path / "unit.pw"
    password_file.write_text(central.passwords["unit-ic7-01"] + "\n")
    prefix = tmp_path / "root"
    args = enrol_args(enrolment, prefix, "--no-gpio", "--no-tls")
    for option, value in (("--device-id", "unit-ic7-01"), ("--checkpoint", "IC7"), ("--policy", "vn-2021"),
                          ("--broker-host", "127.0.0.1"), ("--broker-port", str(central.port)),
                          ("--password-file", str(password_file))):
        args[args.index(option) + 1] = value
    i = args.index("--ca-file")
    del args[i:i + 2]
    provisioned = run_script(PROVISION, *args)
    assert provisioned.returncode == 0, provisioned.stderr

    service = unit_directives(prefix / "etc/systemd/system/chot-scanner.service")
    # What systemd would do: credentials copied under their ids, absolute paths inside the prefix.
    creds = tmp_path / "credentials"
    creds.mkdir(mode=0o700)
    for spec in service["LoadCredential"]:
        cred_id, path = spec.split(":", 1)
        shutil.copy(prefix / path.lstrip("/"), creds / cred_id)
    config_text = (prefix / "etc/chot/unit.toml").read_text()
    config_text = (config_text.replace('"/etc/chot/', f'"{prefix}/etc/chot/')
                   .replace('"/var/lib/chot', f'"{prefix}/var/lib/chot'))
    config_text = re.sub(r'(?m)^backend = "picamera2"$', "backend = \"scripted\"\nloop = false\nhold_frames = 12",
                         config_text)
    config_text = re.sub(r'(?m)^source = ""$', f'source = "{enrolment["people"]}"', config_text)
    config_text = re.sub(r'(?m)^port = 8080$', "port = 0", config_text)  # the screen; 8080 may be taken here
    config = tmp_path / "unit.toml"
    config.write_text(config_text)

    def command(line: str) -> list[str]:
        return [a.replace(INSTALLED_VENV, str(VENV_BIN.parent)).replace("/etc/chot/unit.toml", str(config))
                for a in line.split()]

    exec_start, pre = command(service["ExecStart"][0]), command(service["ExecStartPre"][0])
    watchdog_s = seconds(service["WatchdogSec"][0])
    path, sock = notify_socket
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CHOT_", "NOTIFY_", "WATCHDOG_"))}
    env |= {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": str(int(watchdog_s * 1e6)), "CREDENTIALS_DIRECTORY": str(creds),
            "PYTHONUNBUFFERED": "1"}

    check = subprocess.run(pre, capture_output=True, text=True, timeout=60, env=env)
    assert check.returncode == 0, check.stderr
    ingest = Listener(central.port, "chot-ingest", "ingest-pw", subscribe="chot/v1/#")
    clients.append(ingest)
    assert ingest.subscribed.wait(5)
    unit = subprocess.Popen(exec_start, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    seen: list[bytes] = []
    try:
        notifications(sock, lambda s: any(m.startswith(b"READY=1") for m in s), seconds(service["TimeoutStartSec"][0]),
                      seen)
        assert any(m.startswith(b"READY=1") for m in seen), seen
        notifications(sock, lambda s: b"WATCHDOG=1" in s, watchdog_s, seen)
        assert b"WATCHDOG=1" in seen  # fed well inside WatchdogSec
        event_topic, status_topic = "chot/v1/IC7/unit-ic7-01/event", "chot/v1/IC7/unit-ic7-01/status"
        assert wait_for(lambda: event_topic in ingest.received and status_topic in ingest.received, 30)
        event = json.loads(ingest.received[event_topic][0])
        assert (event["seq"], event["result"], event["reason"], event["policy"]) == (1, "green", "complete_series",
                                                                                    "vn-2021")
        assert json.loads(ingest.received[status_topic][0])["state"] == "online"
        unit.send_signal(signal.SIGTERM)
        unit.wait(seconds(service["TimeoutStopSec"][0]))
    finally:
        if unit.poll() is None:
            unit.kill()
            unit.wait(5)
    output = unit.stdout.read().decode(errors="replace") if unit.stdout else ""
    assert unit.returncode == 0, output
    notifications(sock, lambda s: b"STOPPING=1" in s, 5, seen)
    assert b"STOPPING=1" in seen
    assert wait_for(lambda: json.loads(ingest.received[status_topic][-1])["state"] == "offline", 5)
    # Nothing personal in what the service wrote to its journal (its stdout and stderr).
    person = enrolment["people"].read_text().strip()
    assert person[:40] not in output and central.passwords["unit-ic7-01"] not in output


def test_rosters_are_republished_well_inside_their_validity() -> None:
    """Units stop taking sign-ins when their roster expires: the timer must run long before that."""
    from dashboard.config import OfficersConfig

    timer = unit_directives(FW / "systemd" / "chot-rosters.timer")
    service = unit_directives(FW / "systemd" / "chot-rosters.service")
    assert timer["OnCalendar"] == ["daily"] and timer["Persistent"] == ["true"]
    assert timer["Unit"] == ["chot-rosters.service"] and service["Type"] == ["oneshot"]
    assert service["ExecStart"][0].endswith("chot dashboard publish-rosters")
    assert OfficersConfig().roster_days >= 3  # a day's period plus its random delay, with room to miss two runs
