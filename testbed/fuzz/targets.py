"""What the fuzzers drive: the real scan path, from bytes to a Verdict, with its invariants.

Shared by the atheris harnesses (bench/fuzz/) and the bounded hypothesis suite
(tests/test_fuzz_scan_path.py), so both check the same promises: `verify` never raises, every
verdict is one of three colours with a known reason, and the image path never crashes.
"""

from __future__ import annotations

import base64
import json
import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from verifier import TrustStore, Verdict, VerifyOptions, verify
from verifier.policy import Policy, builtin_policy
from verifier.trust import SignerKey, compute_kid
from verifier.verdict import RESULTS

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[2]
DCC_DIR = ROOT / "tests" / "data" / "dcc"
NOW = datetime(2021, 6, 1, 12, 0, tzinfo=timezone.utc)
MAX_IMAGE_SIDE = 2048  # larger fuzz images only cost time: the decoder itself caps at 8192


class InvariantBroken(AssertionError):
    """The scan path broke a promise (a crash is reported by the fuzzer on its own)."""


@dataclass(frozen=True)
class Fixture:
    """Trust store (every DSC of the DCC test cases), policy and options used for every input."""

    trust: TrustStore
    policy: Policy
    options: VerifyOptions


@lru_cache(maxsize=1)
def fixture() -> Fixture:
    """Trust every DSC from the test data, so mutated inputs reach the signature and beyond."""
    signers = {}
    for case in dcc_cases():
        cert = (case.get("TESTCTX") or {}).get("CERTIFICATE")
        if not isinstance(cert, str):
            continue
        try:
            der = base64.b64decode(cert)
            signers[der] = SignerKey.from_certificate(der, kid=compute_kid(der))
        except Exception:  # noqa: BLE001 - some test cases carry deliberately broken DSCs
            continue
    from testbed.fuzz.hostile import fuzz_signer_key

    trust = TrustStore([*signers.values(), fuzz_signer_key()], shc_issuers=shc_fuzz_issuers())
    return Fixture(trust, builtin_policy("vn-2021"), VerifyOptions(uci_key=b"fuzz-unit-secret"))


@lru_cache(maxsize=1)
def dcc_cases() -> tuple[dict, ...]:
    """Every test case JSON under tests/data/dcc (the EU dgc-testdata set)."""
    cases = []
    for path in sorted(DCC_DIR.rglob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(data, dict):
            cases.append(data)
    return tuple(cases)


SHC_FUZZ_ISS = "https://fuzz.chot.invalid/shc"


@lru_cache(maxsize=1)
def shc_fuzz_key() -> Any:
    """The SMART Health Card issuer key the fuzz fixture trusts (fixed, so runs repeat)."""
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.derive_private_key(0x5C_23_F0_22, ec.SECP256R1())


def shc_fuzz_issuers() -> dict[str, Any]:
    from keys.shc import jwks
    from verifier.formats.shc import ShcIssuer

    return {SHC_FUZZ_ISS: ShcIssuer.from_jwks(SHC_FUZZ_ISS, jwks(shc_fuzz_key()))}


def shc_claims_to_verdict(data: bytes) -> Verdict:
    """Bytes as a SMART Health Card's JWS payload (the JSON): raw-deflated and signed by the
    trusted fuzz issuer, so every byte is judged by the steps after the signature (JSON limits,
    iss, nbf, FHIR bundle, policy)."""
    from keys.shc import deflate_raw, issue_jws, to_numeric

    return payload_to_verdict(to_numeric(issue_jws(shc_fuzz_key(), deflate_raw(data))).encode("ascii"))


def seed_shc_claims() -> list[bytes]:
    """SMART Health Card payloads (JSON bytes) of the fuzz issuer: vaccinations of every mapped CVX code."""
    from keys.shc import card_payload
    from verifier.formats.shc import cvx_codes

    out = []
    for code in sorted(cvx_codes()):
        payload = card_payload(iss=SHC_FUZZ_ISS, nbf=datetime(2021, 5, 1, tzinfo=timezone.utc), family="Fuzz",
                               given=["Test"], birth_date="1990-01-01",
                               doses=((code, "2021-03-01"), (code, "2021-04-01")))
        out.append(json.dumps(payload, separators=(",", ":")).encode("utf-8"))
    return out


def seed_payloads() -> list[bytes]:
    """The HC1 strings of every DCC test case, as bytes."""
    return [c["PREFIX"].encode("utf-8") for c in dcc_cases() if isinstance(c.get("PREFIX"), str)]


def seed_images() -> list[bytes]:
    """The QR PNGs of every DCC test case that carries one."""
    out = []
    for case in dcc_cases():
        png = case.get("2DCODE")
        if isinstance(png, str):
            try:
                out.append(base64.b64decode(png))
            except ValueError:
                continue
    return out


def check_verdict(verdict: object) -> Verdict:
    """Raise InvariantBroken unless `verdict` is a well-formed Verdict."""
    if not isinstance(verdict, Verdict):
        raise InvariantBroken(f"verify returned {type(verdict).__name__}, not a Verdict")
    if verdict.result not in RESULTS:
        raise InvariantBroken(f"verdict colour {verdict.result!r}")
    if not isinstance(verdict.reason, str) or not verdict.reason:
        raise InvariantBroken("verdict without a reason code")
    if verdict.result == "red" and verdict.holder is not None and verdict.reason in {"signature", "kid_unknown"}:
        raise InvariantBroken("an unsigned certificate exposed a holder")
    if verdict.reason == "internal":
        raise InvariantBroken("verifier reported an internal error (a bug, shown red)")
    # Only the event fields leave the unit; they must stay codes.
    fields = verdict.event_fields()
    if set(fields) != {"result", "reason", "policy", "trust_version"}:
        raise InvariantBroken(f"event fields {sorted(fields)}")
    return verdict


def payload_to_verdict(data: bytes) -> Verdict:
    """Bytes as the camera's decoder would hand them over (text), through `verify`."""
    text = data.decode("utf-8", errors="surrogateescape")
    fx = fixture()
    return check_verdict(verify(text, fx.trust, NOW, fx.policy, fx.options))


def cose_to_verdict(data: bytes) -> Verdict:
    """Bytes as the COSE_Sign1 inside the code: zlib, Base45 and the prefix added, then `verify`."""
    from keys.hc1 import wrap

    return payload_to_verdict(wrap(data).encode("ascii"))


def claims_to_verdict(data: bytes) -> Verdict:
    """Bytes as the signed CWT claims: signed by the trusted fuzz signer, so every byte is
    judged by the steps after the signature (CWT, CBOR limits, schema, value sets, policy)."""
    from testbed.fuzz.hostile import signed_hc1

    return payload_to_verdict(signed_hc1(data))


def seed_cose() -> list[bytes]:
    """The COSE_Sign1 bytes of every DCC test case."""
    from verifier import hcert

    out = []
    for case in dcc_cases():
        try:
            out.append(bytes.fromhex(case["COSE"]))
            continue
        except (KeyError, TypeError, ValueError):
            pass
        try:
            out.append(hcert.decode_transport(case["PREFIX"]))
        except Exception:  # noqa: BLE001 - a case broken on purpose in its transport layer
            continue
    return out


def seed_claims() -> list[bytes]:
    """The signed CWT claims (COSE payload) of every DCC test case."""
    import cbor2

    out = []
    for raw in seed_cose():
        try:
            msg = cbor2.loads(raw)
            while isinstance(msg, cbor2.CBORTag):
                msg = msg.value
            if isinstance(msg, (list, tuple)) and len(msg) == 4 and isinstance(msg[2], bytes):
                out.append(msg[2])
        except Exception:  # noqa: BLE001 - some cases are broken on purpose
            continue
    return out


_decoder = None


def frame_to_verdict(data: bytes) -> Verdict | None:
    """Bytes as a raw grey camera frame (what picamera2 hands over): 2 bytes width, 2 height,
    then pixels, tiled to fill the frame; through the QR decoder and `verify`."""
    global _decoder
    from scanner.qr.decode import QrDecoder

    if len(data) < 5:
        return None
    w = 16 + int.from_bytes(data[0:2], "big") % 625
    h = 16 + int.from_bytes(data[2:4], "big") % 625
    pixels = np.frombuffer(data[4:], dtype=np.uint8)
    gray = np.resize(pixels, (h, w))
    if _decoder is None:
        _decoder = QrDecoder()
    text = _decoder.decode(np.ascontiguousarray(gray))
    if text is None:
        return None
    return payload_to_verdict(text.encode("utf-8", errors="surrogateescape"))


def seed_frames() -> list[bytes]:
    """Raw grey frames of the DCC test cases' QR codes (downscaled so they fit the frame target)."""
    out = []
    for png in seed_images()[:120]:
        image = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_GRAYSCALE)
        if image is None:
            continue
        h, w = image.shape
        if max(h, w) > 640:
            scale = 640 / max(h, w)
            image = cv2.resize(image, (int(w * scale), int(h * scale)), interpolation=cv2.INTER_AREA)
            h, w = image.shape
        out.append((w - 16).to_bytes(2, "big") + (h - 16).to_bytes(2, "big") + image.tobytes())
    return out


def image_to_verdict(data: bytes) -> Verdict | None:
    """Bytes as an image file -> grey frame -> QR decoder -> verify (None: no code read)."""
    global _decoder
    from scanner.qr.decode import QrDecoder, check_frame

    from scanner.qr.decode import png_chunks_fit
    from scanner.qr.imageheader import ImageHeaderError, check_declared_size

    if data[:8] == b"\x89PNG\r\n\x1a\n" and not png_chunks_fit(data):
        return None  # as scanner.qr.decode.read_image refuses it: OpenCV would allocate gigabytes
    try:
        check_declared_size(data, 16, MAX_IMAGE_SIDE)  # as read_image does, before OpenCV allocates
    except ImageHeaderError:
        return None
    buf = np.frombuffer(data, dtype=np.uint8)
    image = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE) if buf.size else None
    if image is None or image.ndim != 2:
        return None
    if max(image.shape) > MAX_IMAGE_SIDE or min(image.shape) < 16:
        return None
    gray = check_frame(np.ascontiguousarray(image))
    if _decoder is None:
        _decoder = QrDecoder()
    _decoder.reset()
    text = _decoder.decode(gray)
    if text is None:
        return None
    if not isinstance(text, str):
        raise InvariantBroken(f"decoder returned {type(text).__name__}")
    return payload_to_verdict(text.encode("utf-8", errors="surrogateescape"))
