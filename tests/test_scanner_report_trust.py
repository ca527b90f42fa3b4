"""TrustKeeper: only newer, correctly signed bundles; atomic cache of two; live over MQTT."""

from __future__ import annotations

import base64
import json
import threading
from datetime import datetime, timedelta, timezone

import paho.mqtt.publish as publish
import pytest

from keys import ca
from scanner.outbox import Outbox
from scanner.trust_sync import TrustKeeper, TrustSyncError
from tests.test_scanner_report_support import make_link, wait_until

NOW = datetime.now(timezone.utc).replace(microsecond=0)


@pytest.fixture(scope="module")
def other_trust_key():
    return ca.generate_trust_list_key()


def bundle(ministry, version: int, **kwargs) -> bytes:
    """A signed bundle without policies (policies are the verifier's concern, not sync's)."""
    kwargs.setdefault("policies", {})
    return ministry.bundle(version=version, **kwargs)


def cached(keeper: TrustKeeper) -> list[str]:
    return sorted(p.name for p in keeper.cache_dir.iterdir())


def test_accepts_newer_refuses_older_same_forged_garbage(tmp_path, ministry, other_trust_key):
    keeper = TrustKeeper(tmp_path / "trust", ministry.anchor_pem)
    assert [keeper.current, keeper.too_old(NOW, None)] == [None, True]  # (no narrowing: offers change it)
    heard: list[int] = []
    keeper.add_listener(lambda b: heard.append(b.version) if b is not None else None)
    v1 = bundle(ministry, 1, issued_at=NOW - timedelta(hours=2))
    assert keeper.offer(v1, "test").accepted
    assert keeper.current.version == 1 and keeper.store is not None and heard == [1]
    assert keeper.offer(v1, "test").reason == "already in use (version 1)"
    v3 = bundle(ministry, 3)
    assert keeper.offer(v3, "test").accepted and keeper.current.version == 3

    older = keeper.offer(bundle(ministry, 2), "test")
    assert not older.accepted and "older" in older.reason and "2" in older.reason
    same_version = keeper.offer(bundle(ministry, 3, issued_at=NOW + timedelta(seconds=5)), "test")
    assert not same_version.accepted
    forged = keeper.offer(bundle(ministry, 9, signer=other_trust_key), "test")
    assert not forged.accepted and "pinned trust anchor" in forged.reason
    document = json.loads(bundle(ministry, 10))
    payload = json.loads(base64.b64decode(document["payload"]))
    payload["dscs"].append(payload["dscs"][0])  # tamper with the signed content
    document["payload"] = base64.b64encode(json.dumps(payload).encode()).decode()
    tampered = keeper.offer(json.dumps(document).encode(), "test")
    assert not tampered.accepted and "signature" in tampered.reason
    for junk in (b"", b"\xff\xfe garbage", b'{"format": "something else"}', b"[]"):
        result = keeper.offer(junk, "test")
        assert not result.accepted and result.reason
    huge = keeper.offer(b" " * (16 * 1024 * 1024 + 1), "test")
    assert not huge.accepted and "bytes" in huge.reason
    assert keeper.current.version == 3 and heard == [1, 3]
    assert cached(keeper) == ["bundle-1.json", "bundle-3.json"]


def test_keeps_the_last_two_and_reloads_after_restart(tmp_path, ministry):
    keeper = TrustKeeper(tmp_path / "trust", ministry.anchor_pem)
    for version in (1, 2, 3):
        assert keeper.offer(bundle(ministry, version), "test").accepted
    assert cached(keeper) == ["bundle-2.json", "bundle-3.json"]
    restarted = TrustKeeper(tmp_path / "trust", ministry.anchor_pem)
    assert restarted.current.version == 3 and restarted.problems == []
    assert restarted.current.raw == keeper.current.raw


@pytest.mark.parametrize("damage", ["truncate", "flip", "empty", "wrong_name"])
def test_corrupt_cache_falls_back_to_the_previous_copy(tmp_path, ministry, damage):
    keeper = TrustKeeper(tmp_path / "trust", ministry.anchor_pem)
    keeper.offer(bundle(ministry, 4), "test")
    keeper.offer(bundle(ministry, 5), "test")
    newest = tmp_path / "trust" / "bundle-5.json"
    data = newest.read_bytes()
    if damage == "truncate":
        newest.write_bytes(data[: len(data) // 2])
    elif damage == "flip":
        document = json.loads(data)
        sig = bytearray(base64.b64decode(document["signature"]))
        sig[-1] ^= 1
        document["signature"] = base64.b64encode(bytes(sig)).decode()
        newest.write_bytes(json.dumps(document).encode())
    elif damage == "empty":
        newest.write_bytes(b"")
    else:  # a valid bundle stored under the wrong version's name
        newest.write_bytes((tmp_path / "trust" / "bundle-4.json").read_bytes())
    restarted = TrustKeeper(tmp_path / "trust", ministry.anchor_pem)
    assert restarted.current.version == 4
    assert len(restarted.problems) == 1 and "bundle-5.json" in restarted.problems[0]
    assert (tmp_path / "trust" / "bundle-5.json.corrupt").exists()  # kept for a human to look at
    # A fresh copy of version 5 is accepted again.
    assert restarted.offer(bundle(ministry, 5), "test").accepted


def test_load_file_and_bad_anchor(tmp_path, ministry):
    keeper = TrustKeeper(tmp_path / "trust", ministry.anchor_pem)
    missing = keeper.load_file(tmp_path / "usb" / "chot-trust.json")
    assert not missing.accepted and "cannot read" in missing.reason
    stick = tmp_path / "chot-trust.json"
    stick.write_bytes(bundle(ministry, 6))
    assert keeper.load_file(stick).accepted and keeper.current.version == 6
    with pytest.raises(TrustSyncError, match="PEM"):
        TrustKeeper(tmp_path / "other", b"not a key")


def test_trust_age_against_policy_limit(tmp_path, ministry):
    keeper = TrustKeeper(tmp_path / "trust", ministry.anchor_pem)
    keeper.offer(bundle(ministry, 1, issued_at=NOW - timedelta(hours=30)), "test")
    assert keeper.age(NOW) == timedelta(hours=30)
    assert keeper.too_old(NOW, 24) and not keeper.too_old(NOW, 48) and not keeper.too_old(NOW, None)


@pytest.mark.broker
@pytest.mark.timeout(60)
def test_new_bundle_on_retained_topic_is_picked_up_live(tmp_path, ministry, mosquitto, other_trust_key):
    keeper = TrustKeeper(tmp_path / "trust", ministry.anchor_pem)
    keeper.offer(bundle(ministry, 1), "provisioning")
    seen: list[int | None] = []
    stop = threading.Event()

    def judge_frames() -> None:  # stands in for the pipeline: reads the trust list every frame
        while not stop.is_set():
            bundle = keeper.current
            seen.append(None if bundle is None else bundle.version)

    results = []
    outbox = Outbox(tmp_path / "outbox.sqlite")
    link = make_link(outbox, mosquitto.port, on_trust=lambda data: results.append(keeper.offer(data, "mqtt")))
    frames = threading.Thread(target=judge_frames, daemon=True)
    frames.start()
    link.start()

    def send(data: bytes) -> None:
        publish.single("chot/v1/trust", data, qos=1, retain=True, hostname="127.0.0.1", port=mosquitto.port)

    try:
        wait_until(lambda: link.connected, 10, "the link")
        send(bundle(ministry, 2))
        wait_until(lambda: keeper.current.version == 2, 10, "version 2 live")
        send(bundle(ministry, 7, signer=other_trust_key))
        send(bundle(ministry, 1))
        send(b"garbage")
        wait_until(lambda: len(results) >= 4, 10, "the refused bundles to be judged")
        assert [r.accepted for r in results] == [True, False, False, False]
        assert "pinned trust anchor" in results[1].reason and "older" in results[2].reason
        assert keeper.current.version == 2
    finally:
        stop.set()
        frames.join(5)
        link.stop()
        outbox.close()
    versions = [v for v in seen if v is not None]
    assert versions == seen and versions == sorted(versions) and versions[-1] == 2  # no gap, never back
