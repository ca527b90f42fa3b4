"""Admin pages against the real back end: a unit added from the web can log in to the real broker."""

from __future__ import annotations

import io
import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from dashboard.web import create_app
from keys import ca
from tests.support.central import Central, start_central
from tests.support.dashboard_web import ACCOUNTS, login, page_token, password_hash

pytestmark = [pytest.mark.broker, pytest.mark.timeout(60)]


@pytest.fixture
def central(tmp_path: Path, mosquitto_factory: Callable[..., Any], ministry: Any) -> Iterator[Central]:
    anchor = tmp_path / "anchor.pem"
    pem = ministry.anchor_pem
    anchor.write_bytes(pem if isinstance(pem, bytes) else pem.encode())
    c = start_central(tmp_path, mosquitto_factory, anchor_file=str(anchor))
    for username in ("admin", "sup_lc"):
        password, role, scope = ACCOUNTS[username]
        c.store.create_user(username, password_hash(password), role, scope)
    yield c
    c.store.close()


@pytest.fixture
def admin(central: Central) -> Any:
    app = create_app(central.config, {"TESTING": True, "SECRET_KEY": "admin-test-key"})
    client = app.test_client()
    assert login(client, "admin").status_code == 302
    return client


def mqtt_wait(port: int, username: str, password: str, setup: Callable[[mqtt.Client, threading.Event], None],
              timeout: float = 5.0) -> None:
    """Connect as `username`, let `setup` attach callbacks (they set the event when done), wait, leave."""
    done = threading.Event()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"probe-{username}-{time.monotonic_ns()}",
                         protocol=mqtt.MQTTv311)
    client.username_pw_set(username, password)
    setup(client, done)
    client.connect("127.0.0.1", port, keepalive=5)
    client.loop_start()
    try:
        done.wait(timeout)
    finally:
        client.disconnect()
        client.loop_stop()


def broker_login(port: int, username: str, password: str) -> str:
    """Try an MQTT login; returns "ok" or the broker's refusal reason."""
    outcome: list[str] = []

    def setup(client: mqtt.Client, done: threading.Event) -> None:
        def on_connect(c: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
            outcome.append("refused: " + str(reason) if reason.is_failure else "ok")
            done.set()

        client.on_connect = on_connect

    mqtt_wait(port, username, password, setup)
    return outcome[0] if outcome else "no answer"


def eventually(check: Callable[[], str], want: Callable[[str], bool], timeout: float = 5.0) -> str:
    """Retry `check` until `want` accepts its result (the broker rereads its files on SIGHUP)."""
    deadline = time.monotonic() + timeout
    result = check()
    while not want(result) and time.monotonic() < deadline:
        time.sleep(0.2)
        result = check()
    return result


def test_a_unit_added_from_the_web_logs_in_and_is_revoked_from_the_web(admin: Any, central: Central) -> None:
    resp = admin.post("/admin/devices", data={
        "device": "web-unit-1", "checkpoint": "IC7", "checkpoint_name": "IC7 Nội Bài–Lào Cai",
        "district": "080", "province": "10", "csrf_token": page_token(admin, "/admin/devices")})
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200, html
    match = re.search(r"Mật khẩu MQTT \(chỉ hiện một lần\): (\S+)</p>", html)
    assert match, html
    password = match.group(1)
    device = central.store.get_device("web-unit-1")
    assert device is not None and device.province == "10" and device.checkpoint_name == "IC7 Nội Bài–Lào Cai"
    assert 'data-test-id="admin-device-web-unit-1"' in html
    assert eventually(lambda: broker_login(central.port, "web-unit-1", password), lambda r: r == "ok") == "ok"
    assert broker_login(central.port, "web-unit-1", "wrong-password").startswith("refused")

    resp = admin.post("/admin/devices/web-unit-1/remove", data={"csrf_token": page_token(admin, "/admin/devices")})
    assert resp.status_code == 200 and "Đã gỡ thiết bị web-unit-1." in resp.get_data(as_text=True)
    assert central.store.get_device("web-unit-1") is None
    refused = eventually(lambda: broker_login(central.port, "web-unit-1", password), lambda r: r != "ok")
    assert refused.startswith("refused")


@pytest.mark.parametrize("form,reason", [
    ({"device": "<script>x</script>", "checkpoint": "IC7", "district": "080", "province": "10"}, "device id must be"),
    ({"device": "unit-9", "checkpoint": "NOWHERE"}, "is not registered"),
    ({"device": "chot-ingest", "checkpoint": "IC7", "district": "080", "province": "10"}, "service account"),
])
def test_bad_units_are_refused_with_an_escaped_reason(admin: Any, central: Central, form: dict, reason: str) -> None:
    resp = admin.post("/admin/devices", data={**form, "csrf_token": page_token(admin, "/admin/devices")})
    body = resp.get_data(as_text=True)
    assert resp.status_code == 400
    assert reason in body and "<script>x" not in body
    assert central.store.get_device(form["device"]) is None


def test_trust_page_without_a_bundle_says_so(admin: Any) -> None:
    html = admin.get("/admin/trust").get_data(as_text=True)
    assert "Chưa có danh sách tin cậy." in html and 'data-test-id="trust-form"' in html


def test_an_empty_trust_upload_is_refused(admin: Any, central: Central) -> None:
    resp = admin.post("/admin/trust", data={"csrf_token": page_token(admin, "/admin/trust")})
    assert resp.status_code == 400 and "Yêu cầu không hợp lệ." in resp.get_data(as_text=True)
    assert central.store.latest_trust_bundle() is None


def upload(admin: Any, data: bytes) -> Any:
    token = page_token(admin, "/admin/trust")
    return admin.post("/admin/trust", data={"bundle": (io.BytesIO(data), "bundle.json"), "csrf_token": token},
                      content_type="multipart/form-data")


def retained_trust(central: Central, creds: Any) -> bytes | None:
    """What a unit receives on the trust topic when it subscribes (the retained bundle)."""
    got: list[bytes] = []

    def setup(client: mqtt.Client, done: threading.Event) -> None:
        client.on_connect = lambda c, u, f, r, p: c.subscribe("chot/v1/trust", qos=1)
        def on_message(c: mqtt.Client, u: Any, m: mqtt.MQTTMessage) -> None:
            got.append(bytes(m.payload))
            done.set()

        client.on_message = on_message

    mqtt_wait(central.port, creds.device, creds.password, setup)
    return got[0] if got else None


def test_an_uploaded_bundle_is_checked_kept_and_published_retained(admin: Any, central: Central, ministry: Any) -> None:
    creds = central.add_device("lc-ic7-01", "IC7", "080", "10", "IC7 Nội Bài–Lào Cai")
    bundle = ministry.bundle(version=3)
    resp = upload(admin, bundle)
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200, html
    assert "Đã kiểm tra và phát hành danh sách tin cậy phiên bản 3." in html
    assert 'data-test-id="trust-version">3<' in html
    record = central.store.latest_trust_bundle()
    assert record is not None and record.version == 3 and record.uploaded_by == "admin"
    assert retained_trust(central, creds) == record.raw

    # The same version again, or one signed by a key nobody pinned, is refused with the reason.
    again = upload(admin, bundle)
    assert again.status_code == 400 and "version" in again.get_data(as_text=True)
    forged = upload(admin, ministry.bundle(version=4, signer=ca.generate_trust_list_key()))
    assert forged.status_code == 400 and "signed by a key other than the pinned" in forged.get_data(as_text=True)
    junk = upload(admin, b"<script>alert(1)</script>")
    assert junk.status_code == 400 and "<script>alert" not in junk.get_data(as_text=True)
    assert central.store.latest_trust_bundle().version == 3
