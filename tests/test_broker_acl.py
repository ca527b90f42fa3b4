"""The shipped broker config and the generated password/ACL files, on a real Mosquitto."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import re
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from dashboard import broker
from dashboard.broker import base as broker_base
from dashboard.broker import mosquitto
from dashboard.devices import remove_device
from dashboard.ingest import MqttIngest
from dashboard.scope import Scope
from protocol import topics
from tests.support.broker import free_port
from tests.support.central import Central, central, start_central, wait_until  # noqa: F401 - central is a fixture


@pytest.fixture
def backend() -> str:
    """The broker is under test here, not the store: the central runs on SQLite only."""
    return "sqlite"

pytestmark = [pytest.mark.broker, pytest.mark.timeout(90)]
NOW = dt.datetime.now(dt.timezone.utc)
DAY = (NOW - dt.timedelta(days=1), NOW + dt.timedelta(days=1))


def event(seq: int) -> bytes:
    return json.dumps({"seq": seq, "ts": dt.datetime.now(dt.timezone.utc).isoformat(), "result": "red",
                       "reason": "signature", "policy": "vn-2021", "trust_version": 1}).encode()


def connect(port: int, username: str | None, password: str | None, *, tls_ca: Path | None = None,
            client_id: str | None = None, protocol: mqtt.MQTTProtocolVersion = mqtt.MQTTv5,
            ) -> tuple[mqtt.Client, str]:
    """Connect and return (client, "ok" or the broker's refusal)."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id or "", protocol=protocol)
    if username is not None:
        client.username_pw_set(username, password)
    if tls_ca is not None:
        client.tls_set(ca_certs=str(tls_ca))
    outcome: list[str] = []
    done = threading.Event()

    def on_connect(c: mqtt.Client, u: object, flags: object, reason: mqtt.ReasonCode, props: object) -> None:
        outcome.append("ok" if not reason.is_failure else str(reason))
        done.set()

    client.on_connect = on_connect
    client.reconnect_delay_set(5, 5)
    client.connect("127.0.0.1", port, keepalive=10)
    client.loop_start()
    done.wait(10)
    if outcome[:1] != ["ok"]:
        client.disconnect()
        client.loop_stop()
    return client, outcome[0] if outcome else "timeout"


@pytest.fixture
def ingest(central: Central) -> Iterator[MqttIngest]:
    i = MqttIngest(central.store, central.config)
    i.start()
    yield i
    i.stop()


def test_rendered_config_is_the_shipped_template(central: Central) -> None:
    assert central.config.broker.mosquitto_conf is not None
    text = central.config.broker.mosquitto_conf.read_text()
    assert "allow_anonymous false" in text
    assert f"password_file {central.config.broker.password_file}" in text
    assert f"acl_file {central.config.broker.acl_file}" in text
    assert f"listener {central.port} 127.0.0.1" in text
    assert "${" not in text
    passwords = central.config.broker.password_file.read_text()  # type: ignore[union-attr]
    assert passwords.count("$7$") == 2 and "chot-ingest:" in passwords


def _opened_ports(central: Central) -> set[int]:
    log = central.config.broker.log_file.read_text()  # type: ignore[union-attr]
    return {int(p) for p in re.findall(r"Opening ipv[46] listen socket on port (\d+)", log)}


def test_broker_opens_only_the_configured_listener(central: Central) -> None:
    assert wait_until(lambda: _opened_ports(central) != set(), 5)
    assert _opened_ports(central) == {central.port}  # no stray default listener on 1883


def test_no_login_and_wrong_password_are_refused(central: Central) -> None:
    creds = central.add_device("u1", "IC7")
    assert connect(central.port, None, None)[1] != "ok"
    assert connect(central.port, "u1", "not-the-password")[1] != "ok"
    assert connect(central.port, "nobody", creds.password)[1] != "ok"
    client, outcome = connect(central.port, "u1", creds.password)
    assert outcome == "ok"
    client.disconnect()
    client.loop_stop()


def test_a_unit_cannot_publish_as_another_or_read_others(central: Central, ingest: MqttIngest) -> None:
    a = central.add_device("ua", "IC7")
    central.add_device("ub", "IC7")
    central.store.upsert_checkpoint("IC8", "IC8", "002", "01")
    time.sleep(0.5)  # the broker reloads asynchronously; a client connecting meanwhile can be dropped
    # MQTT 5 tells a refused publish apart: the broker answers "Not authorized".
    v5, outcome = connect(central.port, "ua", a.password)
    assert outcome == "ok"
    acks: dict[int, str] = {}
    v5.on_publish = lambda c, u, mid, reason, props: acks.__setitem__(mid, str(reason))
    mid = v5.publish("chot/v1/IC7/ub/event", event(1), qos=1).mid
    assert wait_until(lambda: mid in acks, 5) and acks[mid] == "Not authorized"
    v5.disconnect()
    v5.loop_stop()
    # Mosquitto 2.0 also drops a client after a refused publish, so each forgery gets its own
    # connection: as another unit, under another checkpoint, on the trust topic.
    for topic in ("chot/v1/IC7/ub/event", "chot/v1/IC8/ua/event", "chot/v1/IC8/ub/event", topics.TRUST):
        forger, outcome = connect(central.port, "ua", a.password, protocol=mqtt.MQTTv311)
        assert outcome == "ok"
        forger.publish(topic, event(1), qos=1, retain=topic == topics.TRUST)
        time.sleep(0.1)
        forger.disconnect()
        forger.loop_stop()
    # Then its own, legitimate event: once that is stored, anything forged before would be too.
    spy, outcome = connect(central.port, "ua", a.password, protocol=mqtt.MQTTv311)
    assert outcome == "ok"
    seen: list[str] = []
    spy.on_message = lambda c, u, m: seen.append(m.topic)
    spy.subscribe("chot/v1/#", qos=1)
    spy.publish("chot/v1/IC7/ua/event", event(2), qos=1).wait_for_publish(5)
    assert wait_until(lambda: ingest.stats.stored == 1)
    assert ingest.wait_idle(5)
    events = central.store.recent_events(Scope.all())
    assert [(e.device, e.checkpoint, e.seq) for e in events] == [("ua", "IC7", 2)]
    assert ingest.stats.received == 1  # the forged ones never reached the ingest
    assert seen == []  # a unit reads nothing of others (and the trust topic is still empty)
    spy.disconnect()
    spy.loop_stop()


def test_removing_a_unit_revokes_it(central: Central, ingest: MqttIngest) -> None:
    creds = central.add_device("u1", "IC7")
    time.sleep(0.3)
    client, outcome = connect(central.port, "u1", creds.password, protocol=mqtt.MQTTv311)
    assert outcome == "ok"
    assert remove_device(central.store, central.config, "u1")
    # Whatever the broker does with a session that was open at revocation, nothing more counts.
    client.publish("chot/v1/IC7/u1/event", event(1), qos=1)
    assert wait_until(lambda: ingest.stats.rejected["unregistered_device"] == 1 or not client.is_connected(), 5)
    client.disconnect()
    client.loop_stop()
    assert central.store.totals(Scope.all(), *DAY).total == 0
    assert wait_until(lambda: connect(central.port, "u1", creds.password)[1] != "ok", 5)
    assert "u1" not in central.config.broker.acl_file.read_text()  # type: ignore[union-attr]
    assert central.store.get_device("u1") is None
    assert not remove_device(central.store, central.config, "u1")


def test_concurrent_registrations_lose_no_login(tmp_path: Path) -> None:
    path = tmp_path / "passwd"
    errors: list[BaseException] = []

    def register(start: int) -> None:
        try:
            for i in range(start, start + 15):
                broker_base.set_password(path, f"u{i:03d}", "pw", mosquitto.hash_password)
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=register, args=(n * 100,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == [] and len(broker.read_password_file(path)) == 60


def test_password_hash_format_matches_mosquitto() -> None:
    hashed = mosquitto.hash_password("secret", rounds=101, salt=b"0123456789ab")
    kind, rounds, salt, digest = hashed.split("$")[1:]
    assert (kind, rounds, salt) == ("7", "101", "MDEyMzQ1Njc4OWFi")
    assert len(digest) == 88  # 64-byte SHA-512 output in base64


def _make_tls(tmp: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1, made here with real keys."""
    now = dt.datetime.now(dt.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "chot test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    tmp.mkdir(parents=True, exist_ok=True)
    ca_file, cert_file, key_file = tmp / "ca.pem", tmp / "server.pem", tmp / "server.key"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return ca_file, cert_file, key_file


def test_units_and_ingest_over_tls(tmp_path: Path, mosquitto_factory: Callable[..., object]) -> None:
    ca_file, cert_file, key_file = _make_tls(tmp_path / "tls")
    tls_port = free_port()
    central = start_central(
        tmp_path, mosquitto_factory,
        broker={"tls_port": tls_port, "tls_host": "127.0.0.1", "tls_certfile": str(cert_file),
                "tls_keyfile": str(key_file)},
    )
    assert central.config.broker.mosquitto_conf is not None
    assert f"listener {tls_port} 127.0.0.1" in central.config.broker.mosquitto_conf.read_text()
    assert wait_until(lambda: _opened_ports(central) == {central.port, tls_port}, 5)
    # The ingest connects over TLS too, checking the broker's certificate against the CA.
    central.config.mqtt.port, central.config.mqtt.tls, central.config.mqtt.ca_file = tls_port, True, ca_file
    ingest = MqttIngest(central.store, central.config)
    ingest.start()
    try:
        creds = central.add_device("u1", "IC7")
        unit, outcome = connect(tls_port, "u1", creds.password, tls_ca=ca_file)
        assert outcome == "ok"
        unit.publish("chot/v1/IC7/u1/event", event(1), qos=1).wait_for_publish(5)
        assert wait_until(lambda: central.store.totals(Scope.all(), *DAY).red == 1)
        unit.disconnect()
        unit.loop_stop()
        # A client that does not trust the CA is refused at the TLS handshake.
        stranger = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        stranger.tls_set(cert_reqs=ssl.CERT_REQUIRED)
        with pytest.raises(ssl.SSLError):
            stranger.connect("127.0.0.1", tls_port, keepalive=5)
    finally:
        ingest.stop()
        central.store.close()


# -- the CLI and trust publishing, end to end ---------------------------------------------------

def _password_from(output: str) -> str:
    return next(line.rsplit(": ", 1)[1] for line in output.splitlines() if "password (shown once)" in line)


def test_cli_init_add_and_remove_device(tmp_path: Path, mosquitto_factory: Callable[..., object]) -> None:
    import getpass

    from click.testing import CliRunner

    from chot.cli import main

    port = free_port()
    conf = tmp_path / "central.toml"
    conf.write_text(f'data_dir = "{tmp_path / "data"}"\n[broker]\nuser = "{getpass.getuser()}"\n'
                    f"listen_port = {port}\n[mqtt]\nport = {port}\n")
    runner = CliRunner()
    result = runner.invoke(main, ["dashboard", "-c", str(conf), "init"])
    assert result.exit_code == 0, result.output
    assert "generated ingest password" in result.output
    again = runner.invoke(main, ["dashboard", "-c", str(conf), "init"])
    assert again.exit_code == 0 and "generated" not in again.output  # service logins are kept
    mosquitto_factory(conf_text=(tmp_path / "data" / "mosquitto" / "mosquitto.conf").read_text(), port=port)
    result = runner.invoke(main, ["dashboard", "-c", str(conf), "add-device", "u1", "--checkpoint", "IC7",
                                  "--district", "017", "--province", "01"])
    assert result.exit_code == 0, result.output
    password = _password_from(result.output)
    time.sleep(0.3)  # SIGHUP is handled asynchronously
    client, outcome = connect(port, "u1", password)
    assert outcome == "ok"
    client.disconnect()
    client.loop_stop()
    result = runner.invoke(main, ["dashboard", "-c", str(conf), "remove-device", "u1"])
    assert result.exit_code == 0, result.output
    assert wait_until(lambda: connect(port, "u1", password)[1] != "ok", 5)
    result = runner.invoke(main, ["dashboard", "-c", str(conf), "remove-device", "u1"])
    assert result.exit_code != 0 and "not registered" in result.output
    result = runner.invoke(main, ["dashboard", "-c", str(conf), "add-device", "u2", "--checkpoint", "NOPE"])
    assert result.exit_code != 0 and "not registered" in result.output and "Traceback" not in result.output


def test_trust_bundle_is_checked_published_retained_and_kept(
        tmp_path: Path, mosquitto_factory: Callable[..., object], ministry: object) -> None:
    from dashboard import trust
    from verifier.bundle import parse_bundle

    anchor = tmp_path / "anchor.pem"
    anchor.write_bytes(ministry.anchor_pem)  # type: ignore[attr-defined]
    central = start_central(tmp_path, mosquitto_factory, anchor_file=str(anchor))
    try:
        creds = central.add_device("u1", "IC7")
        time.sleep(0.3)
        record = trust.accept_bundle(central.store, central.config, ministry.bundle(version=4), "root")  # type: ignore[attr-defined]
        assert record.version == 4 and central.store.latest_trust_bundle().version == 4  # type: ignore[union-attr]
        # A unit connecting later gets it (retained) and can verify it with its pinned anchor.
        unit, outcome = connect(central.port, "u1", creds.password)
        assert outcome == "ok"
        got: list[bytes] = []
        unit.on_message = lambda c, u, m: got.append(m.payload)
        unit.subscribe(topics.TRUST, qos=1)
        assert wait_until(lambda: bool(got), 5)
        assert parse_bundle(got[0], ministry.anchor_pem).version == 4  # type: ignore[attr-defined]
        unit.disconnect()
        unit.loop_stop()
        # Same or older version, wrong signer, garbage: refused with a reason, nothing published.
        for data, words in ((ministry.bundle(version=4), "version"),  # type: ignore[attr-defined]
                            (ministry.bundle(version=3), "version"),  # type: ignore[attr-defined]
                            (b"{}", "bundle"), (b"\xff" * 10, "bundle")):
            with pytest.raises(trust.TrustPublishError) as e:
                trust.accept_bundle(central.store, central.config, data)
            assert words in str(e.value).lower()
        from keys import ca

        rogue = ministry.bundle(version=9, signer=ca.generate_trust_list_key())  # type: ignore[attr-defined]
        with pytest.raises(trust.TrustPublishError, match="(?i)signed by a key other than the pinned"):
            trust.accept_bundle(central.store, central.config, rogue)
        assert central.store.latest_trust_bundle().version == 4  # type: ignore[union-attr]
        assert trust.republish_latest(central.store, central.config).version == 4
    finally:
        central.store.close()
