"""Issue SMART Health Cards with our own P-256 key, for tests and the demo.

Card -> JSON (minified) -> raw DEFLATE -> compact JWS (ES256, zip DEF, kid = the key's RFC 7638
thumbprint) -> `shc:/` numeric (each character as two digits, its code minus 45). `issue_jws`
also signs arbitrary headers and payload bytes, so tests can make the forgeries a verifier
must refuse.
"""

from __future__ import annotations

import datetime as dt
import json
import zlib
from collections.abc import Iterable, Mapping
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from verifier.formats.shc import CVX_SYSTEM, b64url_encode, jwk_thumbprint

EXAMPLE_ISS = "https://shc.example.vn/issuer"


def public_jwk(key: ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey) -> dict[str, str]:
    """The public JWK of a P-256 key, with its thumbprint as kid."""
    public = key.public_key() if isinstance(key, ec.EllipticCurvePrivateKey) else key
    numbers = public.public_numbers()
    jwk = {"kty": "EC", "crv": "P-256", "x": b64url_encode(numbers.x.to_bytes(32, "big")),
           "y": b64url_encode(numbers.y.to_bytes(32, "big"))}
    return {**jwk, "kid": jwk_thumbprint(jwk), "use": "sig", "alg": "ES256"}


def jwks(*keys: ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey) -> dict[str, Any]:
    return {"keys": [public_jwk(k) for k in keys]}


def deflate_raw(data: bytes) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, -15)
    return packer.compress(data) + packer.flush()


def sign_es256(key: ec.EllipticCurvePrivateKey, data: bytes) -> bytes:
    """A raw r||s ES256 signature (the JWS form)."""
    r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def issue_jws(key: ec.EllipticCurvePrivateKey, body: bytes, header: Mapping[str, Any] | None = None) -> str:
    """A compact JWS of `body` (already compressed) under `header` (default: ES256, DEF, our kid)."""
    header = dict(header) if header is not None else {"zip": "DEF", "alg": "ES256", "kid": public_jwk(key)["kid"]}
    signing_input = (b64url_encode(json.dumps(header, separators=(",", ":")).encode())
                     + "." + b64url_encode(body))
    return signing_input + "." + b64url_encode(sign_es256(key, signing_input.encode("ascii")))


def to_numeric(jws: str) -> str:
    """The `shc:/` numeric QR content of a compact JWS."""
    return "shc:/" + "".join(f"{ord(c) - 45:02d}" for c in jws)


def card_payload(*, iss: str, nbf: dt.datetime, family: str, given: Iterable[str], birth_date: str,
                 doses: Iterable[tuple[str, str]], rid: str | None = None) -> dict[str, Any]:
    """The JWS payload of a COVID-19 vaccination card: `doses` are (CVX code, date) pairs."""
    entries: list[dict[str, Any]] = [{"fullUrl": "resource:0", "resource": {
        "resourceType": "Patient", "name": [{"family": family, "given": list(given)}], "birthDate": birth_date}}]
    for n, (cvx, when) in enumerate(doses, start=1):
        entries.append({"fullUrl": f"resource:{n}", "resource": {
            "resourceType": "Immunization", "status": "completed",
            "vaccineCode": {"coding": [{"system": CVX_SYSTEM, "code": cvx}]},
            "patient": {"reference": "resource:0"}, "occurrenceDateTime": when,
            "performer": [{"actor": {"display": "Test clinic"}}]}})
    vc: dict[str, Any] = {
        "type": ["https://smarthealth.cards#health-card", "https://smarthealth.cards#immunization",
                 "https://smarthealth.cards#covid19"],
        "credentialSubject": {"fhirVersion": "4.0.1",
                              "fhirBundle": {"resourceType": "Bundle", "type": "collection", "entry": entries}}}
    if rid is not None:
        vc["rid"] = rid
    return {"iss": iss, "nbf": int(nbf.timestamp()), "vc": vc}


def issue_card(key: ec.EllipticCurvePrivateKey, payload: Mapping[str, Any]) -> str:
    """A signed card as `shc:/` numeric QR content."""
    body = deflate_raw(json.dumps(payload, separators=(",", ":")).encode("utf-8"))
    return to_numeric(issue_jws(key, body))
