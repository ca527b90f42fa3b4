"""MqttLink against a real Mosquitto: order, window, offline backlog, status and will, credentials."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone

import paho.mqtt.publish as publish
import pytest

from scanner.config import MqttConfig
from scanner.mqtt import MqttLink
from scanner.outbox import Outbox
from tests.test_scanner_report_support import (
    Collector,
    WireCounter,
    event_fields,
    make_link,
    wait_until,
)

pytestmark = [pytest.mark.broker, pytest.mark.timeout(120)]
T0 = datetime(2026, 11, 25, 10, 0, tzinfo=timezone.utc)
STATUS = "chot/v1/ic7/unit-1/status"


@pytest.fixture
def closer() -> Iterator[Callable]:
    """Register things to stop or close at teardown (last registered, first closed)."""
    cleanups: list[Callable[[], object]] = []

    def register(thing, how: str = "close"):
        cleanups.append(getattr(thing, how))
        return thing

    yield register
    for cleanup in reversed(cleanups):
        cleanup()


@pytest.fixture
def outbox(tmp_path) -> Iterator[Outbox]:
    box = Outbox(tmp_path / "outbox.sqlite")
    yield box
    box.close()


def fill(outbox: Outbox, n: int) -> None:
    for i in range(n):
        outbox.record(event_fields(i), T0 + timedelta(seconds=i))


def started(closer, link: MqttLink) -> MqttLink:
    link.start()
    return closer(link, "stop")


def test_events_drain_in_seq_order_and_leave_the_outbox(outbox, mosquitto, closer):
    collector = closer(Collector(mosquitto.port, ack=True))
    fill(outbox, 40)
    link = started(closer, make_link(outbox, mosquitto.port, max_inflight=4))
    wait_until(lambda: outbox.backlog() == 0 and len(collector.events()) >= 40, 20, "drain")
    events = collector.events()
    assert [e["seq"] for e in events] == list(range(1, 41))
    assert events[0] == {"seq": 1, "ts": "2026-11-25T10:00:00.000000Z", "result": "green",
                         "reason": "complete_series", "policy": "vn-2021", "trust_version": 7}
    assert link.sent == 40 and link.peak_inflight <= 4
    # A verdict recorded later goes out at once on wake().
    outbox.record(event_fields(0), T0)
    link.wake()
    wait_until(lambda: len(collector.events()) == 41, 5, "the woken event")


def test_broker_down_backlog_grows_then_drains_in_order(outbox, mosquitto, closer):
    collector = closer(Collector(mosquitto.port, ack=True))  # persistent session: queued while away
    mosquitto.stop()
    link = started(closer, make_link(outbox, mosquitto.port))
    fill(outbox, 25)
    link.wake()
    time.sleep(1.0)
    assert not link.connected and outbox.backlog() == 25
    fill(outbox, 25)
    mosquitto.start()
    wait_until(lambda: outbox.backlog() == 0, 20, "the backlog to drain after the broker returns")
    wait_until(lambda: len(collector.distinct_seqs()) == 50, 20, "the collector to get all 50")
    seqs = [e["seq"] for e in collector.events()]
    assert seqs == sorted(seqs) and set(seqs) == set(range(1, 51))


def test_thousands_drain_without_exceeding_the_window(outbox, mosquitto, closer):
    counter = closer(WireCounter(mosquitto.port))
    collector = closer(Collector(mosquitto.port, ack=True))
    fill(outbox, 2000)
    begin = time.monotonic()
    started(closer, make_link(outbox, counter.port, max_inflight=8))
    wait_until(lambda: outbox.backlog() == 0, 60, "2000 events to drain")
    elapsed = time.monotonic() - begin
    wait_until(lambda: len(collector.distinct_seqs()) == 2000, 20, "the collector to get 2000")
    print(f"drained 2000 events in {elapsed:.2f}s, wire peak in flight {counter.peak}")
    assert counter.published == 2000  # nothing sent twice on a steady link
    assert 1 <= counter.peak <= 8  # measured on the wire, outside the link
    assert [e["seq"] for e in collector.events()] == list(range(1, 2001))


def test_window_obeys_the_brokers_receive_maximum(outbox, mosquitto_factory, closer):
    broker = mosquitto_factory(extra="max_inflight_messages 3\n")  # sent as Receive Maximum 3
    counter = closer(WireCounter(broker.port))
    closer(Collector(broker.port, ack=True))
    fill(outbox, 200)
    link = started(closer, make_link(outbox, counter.port, max_inflight=10))
    wait_until(lambda: outbox.backlog() == 0, 30, "200 events to drain")
    assert 1 <= counter.peak <= 3 and counter.published == 200 and link.connects == 1


def test_events_across_broker_restart_arrive_exactly_once(outbox, mosquitto, closer):
    collector = closer(Collector(mosquitto.port, ack=True))
    fill(outbox, 600)
    link = started(closer, make_link(outbox, mosquitto.port, max_inflight=5))
    wait_until(lambda: link.sent >= 100, 20, "sending to be under way")
    awaiting = [restart_counting_unacknowledged(mosquitto, outbox)]  # mid-send: PUBLISHes in flight
    fill(outbox, 100)  # verdicts keep coming while the link reconnects
    wait_until(lambda: link.connects >= 2 and link.sent >= 250, 20, "sending to resume")
    awaiting.append(restart_counting_unacknowledged(mosquitto, outbox))
    wait_until(lambda: outbox.backlog() == 0, 30, "the outbox to drain")
    wait_until(lambda: len(collector.distinct_seqs()) == 700, 20, "all 700 at the collector")
    assert collector.distinct_seqs() == set(range(1, 701))
    collector.assert_duplicates_identical()
    assert link.connects >= 3
    # Repeats per restart: only what the central had not acknowledged when the broker went (the
    # collector acks as the ingest does; how many that is depends on the machine's load), and
    # the window in flight.
    assert len(collector.events()) - 700 <= sum(awaiting) + 2 * 5


def restart_counting_unacknowledged(mosquitto, outbox: Outbox) -> int:
    """Restart the broker; the events handed over and not acknowledged by the central while it
    was down (nothing is sent or acknowledged then)."""
    mosquitto.stop()
    awaiting = outbox.backlog() - outbox.unsent()
    mosquitto.start()
    return awaiting


def test_retained_status_updates_on_change_and_says_offline_on_stop(outbox, mosquitto, closer):
    collector = closer(Collector(mosquitto.port, ack=True))
    state = {"clock": "ok"}
    link = started(closer, make_link(
        outbox, mosquitto.port,
        status_fn=lambda: {"trust_version": 7, "clock": state["clock"], "uptime_s": int(time.monotonic())}))
    wait_until(lambda: collector.statuses(STATUS), 10, "the first status")
    first = collector.statuses(STATUS)[0]
    assert first["state"] == "online" and first["clock"] == "ok" and first["trust_version"] == 7
    time.sleep(2.5)
    assert len(collector.statuses(STATUS)) == 1  # only uptime moved: not a change
    state["clock"] = "behind_bundle"
    wait_until(lambda: collector.statuses(STATUS)[-1]["clock"] == "behind_bundle", 5, "a changed status")
    link.stop()
    wait_until(lambda: collector.statuses(STATUS)[-1] == {"state": "offline"}, 5, "offline on stop")
    # Retained: a newcomer sees the last state at once.
    late = closer(Collector(mosquitto.port, topic=STATUS, client_id="late"))
    wait_until(lambda: late.messages, 5, "the retained status")
    assert late.messages[-1][2] is True and json.loads(late.messages[-1][1]) == {"state": "offline"}


def test_a_faulty_status_fn_never_stops_events(outbox, mosquitto, closer):
    collector = closer(Collector(mosquitto.port, ack=True))
    calls = []

    def flaky_status() -> dict:
        calls.append(1)
        if len(calls) % 2:
            raise RuntimeError("sensor gone")
        return {"since": datetime(2026, 1, 1, tzinfo=timezone.utc)}  # not JSON by itself

    fill(outbox, 20)
    started(closer, make_link(outbox, mosquitto.port, status_fn=flaky_status))
    wait_until(lambda: outbox.backlog() == 0, 10, "delivery despite the status")
    wait_until(lambda: len(collector.statuses(STATUS)) >= 2, 10, "both kinds of status")
    assert collector.statuses(STATUS)[0] == {"state": "online"}
    assert collector.statuses(STATUS)[1] == {"since": "2026-01-01 00:00:00+00:00", "state": "online"}


def test_status_is_resent_every_interval(outbox, mosquitto, closer):
    collector = closer(Collector(mosquitto.port, ack=True))
    started(closer, make_link(outbox, mosquitto.port, status_interval=1.0))
    wait_until(lambda: len(collector.statuses(STATUS)) >= 3, 10, "periodic status")


def test_trust_topic_reaches_on_trust(outbox, mosquitto, closer):
    got: list[bytes] = []

    def send(data: bytes) -> None:
        publish.single("chot/v1/trust", data, qos=1, retain=True, hostname="127.0.0.1", port=mosquitto.port)

    send(b"bundle-bytes-1")
    started(closer, make_link(outbox, mosquitto.port, on_trust=got.append))
    wait_until(lambda: got == [b"bundle-bytes-1"], 10, "the retained bundle")
    send(b"bundle-bytes-2")
    wait_until(lambda: got[-1:] == [b"bundle-bytes-2"], 10, "a live bundle")


def _link(config: MqttConfig, outbox: Outbox, device: str = "unit-1") -> MqttLink:
    return MqttLink(config, device, "ic7", outbox, dict, lambda b: None, backoff_min=0.1, backoff_max=0.3)


def test_password_from_environment_and_wrong_password_refused(outbox, mosquitto_factory, monkeypatch, closer):
    broker = mosquitto_factory(passwords={"unit-1": "s3cret"})
    fill(outbox, 3)
    monkeypatch.setenv("CHOT_TEST_MQTT_PW", "wrong")
    config = MqttConfig(host="127.0.0.1", port=broker.port, password_env="CHOT_TEST_MQTT_PW",
                        password_credential="none", keepalive=10)
    link = started(closer, _link(config, outbox))
    time.sleep(1.5)
    assert not link.connected and link.connects == 0 and outbox.backlog() == 3
    link.stop()
    monkeypatch.setenv("CHOT_TEST_MQTT_PW", "s3cret")
    link = started(closer, _link(config, outbox))
    wait_until(lambda: outbox.unsent() == 0, 10, "delivery with the right password")
    assert link.connects == 1


def test_events_refused_by_the_acl_stay_in_the_outbox(outbox, mosquitto_factory, closer):
    """A unit whose topics the broker's ACL denies must keep its events, not drop them as sent."""
    broker = mosquitto_factory(passwords={"unit-1": "pw"},
                               acl="pattern write chot/v1/+/%u/#\npattern read chot/v1/trust\n")
    fill(outbox, 2)
    config = MqttConfig(host="127.0.0.1", port=broker.port, username="unit-1", password="pw", keepalive=10)
    link = started(closer, _link(config, outbox, device="unit-2"))  # topics say unit-2: denied
    wait_until(lambda: link.connected, 10, "the connection")
    time.sleep(1.0)
    assert outbox.backlog() == 2 and link.sent == 0


def test_stop_is_bounded_when_the_broker_never_answers(outbox, closer):
    """A port that accepts TCP but never speaks MQTT must not hang the link or its stop()."""
    silent = closer(socket.create_server(("127.0.0.1", 0)))
    link = make_link(outbox, silent.getsockname()[1], connack_timeout=0.5)
    link.start()
    time.sleep(1.0)
    assert not link.connected
    thread = link._thread
    assert thread is not None and thread.is_alive()
    link.stop(timeout=60)  # a hang guard: an unbounded wait for the CONNACK would run it out
    assert not thread.is_alive()


def _tls_files(directory, name: str):
    """A CA and a server certificate for 127.0.0.1 made with cryptography, as PEM files."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    def cert(subject, issuer, public_key, signing_key, *, ca: bool):
        now = datetime.now(timezone.utc)
        builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
                   .public_key(public_key).serial_number(x509.random_serial_number())
                   .not_valid_before(now - timedelta(hours=1)).not_valid_after(now + timedelta(days=1))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if not ca:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        return builder.sign(signing_key, hashes.SHA256())

    ca_key, server_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{name} test CA")])
    server_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    ca_cert = cert(ca_name, ca_name, ca_key.public_key(), ca_key, ca=True)
    server_cert = cert(server_name, ca_name, server_key.public_key(), ca_key, ca=False)
    paths = {k: directory / f"{name}-{k}.pem" for k in ("ca", "cert", "key")}
    paths["ca"].write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    paths["cert"].write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    paths["key"].write_bytes(server_key.private_bytes(serialization.Encoding.PEM,
                                                      serialization.PrivateFormat.PKCS8,
                                                      serialization.NoEncryption()))
    return paths


def test_tls_to_a_broker_checked_against_the_configured_ca(tmp_path, outbox, mosquitto_factory, closer):
    server = _tls_files(tmp_path, "broker")
    stranger = _tls_files(tmp_path, "stranger")
    broker = mosquitto_factory(
        "user {user}\nlistener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
        "log_dest file {workdir}/mosquitto.log\n"
        f"cafile {server['ca']}\ncertfile {server['cert']}\nkeyfile {server['key']}\n")
    fill(outbox, 5)
    wrong = MqttConfig(host="127.0.0.1", port=broker.port, tls=True, ca_file=stranger["ca"], keepalive=10)
    link = started(closer, _link(wrong, outbox))
    time.sleep(1.0)
    assert not link.connected and outbox.backlog() == 5  # an unknown server is not trusted
    link.stop()
    right = MqttConfig(host="127.0.0.1", port=broker.port, tls=True, ca_file=server["ca"], keepalive=10)
    link = started(closer, _link(right, outbox))
    wait_until(lambda: outbox.unsent() == 0, 10, "delivery over TLS")
    assert link.sent == 5


def test_reconnects_back_off_exponentially(outbox, closer):
    """A broker that hangs up at once must see fewer and fewer attempts, not a tight loop.

    The link draws each pause from its jitter (random.uniform(delay / 2, delay) by default); the
    test's jitter records the window the link asks for, and answers with the shortest pause so the
    test is quick, then with an hour: one attempt per pause, and none while it lasts."""
    windows: list[tuple[float, float]] = []

    def schedule(low: float, high: float) -> float:
        windows.append((low, high))
        return low if len(windows) < 6 else 3600.0

    server = closer(socket.create_server(("127.0.0.1", 0)))
    server.settimeout(0.2)
    link = started(closer, make_link(outbox, server.getsockname()[1], backoff_min=0.1, backoff_max=0.8,
                                     jitter=schedule))
    attempts = 0
    quiet_until = None  # once the hour-long pause has begun, watch 1 s more for a stray attempt
    hang_guard = time.monotonic() + 60
    while time.monotonic() < hang_guard and (quiet_until is None or time.monotonic() < quiet_until):
        if len(windows) >= 6 and quiet_until is None:
            quiet_until = time.monotonic() + 1.0
        try:
            conn, _ = server.accept()
        except TimeoutError:
            continue
        attempts += 1
        conn.close()
    assert len(windows) == 6, windows
    # Doubling from backoff_min, capped at backoff_max, each pause jittered over [delay/2, delay].
    assert [bound for window in windows for bound in window] == pytest.approx(
        [0.05, 0.1, 0.1, 0.2, 0.2, 0.4, 0.4, 0.8, 0.4, 0.8, 0.4, 0.8])
    assert attempts == 6  # one attempt before each pause; none during the hour-long sixth
    link.stop(timeout=30)
