"""Signed trust bundles: accepted only when well-formed, signed by the pinned anchor and new enough."""

from __future__ import annotations

import base64
import datetime as dt
import json

import pytest

from keys import ca
from verifier.bundle import (
    BundleError,
    BundleFormatError,
    BundleSignatureError,
    BundleVersionError,
    parse_bundle,
)
from verifier.revocation import uci_hash

UTC = dt.timezone.utc


def test_good_bundle_gives_a_trust_store(ministry):
    bundle = parse_bundle(ministry.bundle(version=5, policies={}), ministry.anchor_pem)
    assert bundle.version == 5 and bundle.issued_at.tzinfo is not None
    store = bundle.trust_store()
    assert store.version == 5
    assert len(store.find(ministry.general.kid)) == 1
    assert store.find(ministry.dscs["test"].kid)[0].types == frozenset({"t"})
    assert store.find(ministry.rogue.kid) == []
    assert uci_hash(ministry.revoked_uci) in store.revocations.uci


def test_anchor_may_be_a_key_object(ministry):
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    assert parse_bundle(ministry.bundle(policies={}), load_pem_public_key(ministry.anchor_pem)).version == 1


def test_bundle_signed_by_another_key_is_refused(ministry):
    other = ca.generate_trust_list_key()
    with pytest.raises(BundleSignatureError, match="other than the pinned"):
        parse_bundle(ministry.bundle(policies={}, signer=other), ministry.anchor_pem)


def test_bundle_with_forged_signer_id_is_refused(ministry):
    other = ca.generate_trust_list_key()
    document = json.loads(ministry.bundle(policies={}, signer=other))
    document["signer"] = json.loads(ministry.bundle(policies={}))["signer"]
    with pytest.raises(BundleSignatureError, match="signature does not match"):
        parse_bundle(json.dumps(document).encode(), ministry.anchor_pem)


def test_tampered_payload_is_refused(ministry):
    document = json.loads(ministry.bundle(policies={}))
    payload = json.loads(base64.b64decode(document["payload"]))
    payload["revocations"]["UCI"] = []
    document["payload"] = base64.b64encode(json.dumps(payload).encode()).decode()
    with pytest.raises(BundleSignatureError):
        parse_bundle(json.dumps(document).encode(), ministry.anchor_pem)


def test_older_version_is_refused(ministry):
    data = ministry.bundle(version=3, policies={})
    assert parse_bundle(data, ministry.anchor_pem, min_version=3).version == 3
    with pytest.raises(BundleVersionError) as caught:
        parse_bundle(data, ministry.anchor_pem, min_version=4)
    assert "version 3" in str(caught.value)


@pytest.mark.parametrize("data", [b"", b"not json", b"[]", b'{"format": "other/1"}',
                                  b'{"format": "chot-trust-bundle/1", "payload": "%%%", "signature": "", "signer": ""}',
                                  b"\xff\xfe"])
def test_malformed_bundles_are_refused_with_a_reason(ministry, data):
    with pytest.raises(BundleFormatError) as caught:
        parse_bundle(data, ministry.anchor_pem)
    assert str(caught.value).startswith("trust bundle refused: ")


def _signed(ministry, payload: dict) -> bytes:
    from keys.bundle import sign_bundle

    return sign_bundle(json.dumps(payload).encode(), ministry.trust_key)


@pytest.mark.parametrize("change, words", [
    (lambda p: p.update(version=0), "version"),
    (lambda p: p.update(version="7"), "version"),
    (lambda p: p.update(dscs={}), "dscs"),
    (lambda p: p["dscs"][0].update(types=["x"]), "types"),
    (lambda p: p["dscs"][0].update(certificate=base64.b64encode(b"junk").decode()), "unreadable"),
    (lambda p: p.update(revocations={"NAMES": []}), "revocations"),
    (lambda p: p.pop("issued_at"), "issued_at"),
])
def test_signed_but_invalid_payloads_are_refused(ministry, change, words):
    payload = json.loads(base64.b64decode(json.loads(ministry.bundle(policies={}))["payload"]))
    change(payload)
    with pytest.raises(BundleFormatError, match=words):
        parse_bundle(_signed(ministry, payload), ministry.anchor_pem)


def test_bad_anchor_is_a_bundle_error(ministry):
    with pytest.raises(BundleError):
        parse_bundle(ministry.bundle(policies={}), b"not a pem")
