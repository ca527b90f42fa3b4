"""SMART Health Cards: `shc:/` numeric QR -> compact JWS -> raw DEFLATE -> JSON -> FHIR bundle.

Steps (each failure a red reason): numeric digits (pairs of two digits, each + 45 a character;
the deprecated chunked `shc:/N/M/` form refused), compact JWS with header `alg` ES256 only,
`zip` DEF and a `kid`; the raw DEFLATE payload inflated under a hard cap; JSON nested at most
MAX_DEPTH deep; the issuer `iss` looked up in the trust store's SHC issuers and the `kid` among
that issuer's keys only (a key of one issuer never vouches for another's `iss`); ES256 over
P-256 with the raw r||s signature; `nbf` (and `exp` when present) against `now`; revocation by
`vc.rid` when the issuer's key has a CRL; then the FHIR R4 bundle's Patient and completed
Immunizations, mapped to the DCC vocabulary the policies read (`verifier/data/shc/cvx.json`).

The DCC view the policy sees: one vaccination entry whose `dn` is the number of recognised
COVID-19 doses on the card, `sd` the primary series length of the latest dose's product (so a
mixed series counts, and a one-dose product completes in one), `dt` the latest dose's date and
`mp` its EU product code. A card with no recognised COVID-19 immunization is red `fhir`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from importlib import resources
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from verifier.errors import (
    AlgorithmUnsupported,
    BadSignature,
    FhirError,
    InputTooLarge,
    IssuerKeyMismatch,
    JsonLimitsError,
    JwsError,
    KidMissing,
    PrefixError,
    Revoked,
    ShcChunked,
    ShcExpired,
    ShcNotYetValid,
    ShcNumeric,
    UnknownKid,
    ZlibBomb,
    ZlibError,
)

PREFIX = "shc:/"
MAX_PAYLOAD_CHARS = 8192   # a version-40 QR holds at most 7089 digits
MAX_INFLATED = 64 * 1024   # real cards inflate to a few kilobytes
MAX_DEPTH = 32             # a FHIR bundle nests about 10 deep
CVX_SYSTEM = "http://hl7.org/fhir/sid/cvx"
COVID_DISEASE = "840539006"  # SNOMED CT COVID-19, the DCC `tg`
_CHUNKED = re.compile(r"\d+/\d+/")
# Two decimal digits read as one hex byte -> their character (value + 45), 0 for a pair over 77.
_PAIR_TO_CHAR = bytes((h >> 4) * 10 + (h & 15) + 45 if (h >> 4) * 10 + (h & 15) <= 77 and (h & 15) <= 9 else 0
                      for h in range(256))


@dataclass(frozen=True)
class ShcIssuer:
    """One SMART Health Card issuer: its `iss` URL, its ES256 keys by kid, their revoked rids."""

    iss: str
    keys: Mapping[str, ec.EllipticCurvePublicKey]
    revoked: Mapping[str, Mapping[str, int | None]] = field(default_factory=dict)
    """kid -> rid -> None (revoked) or a time: cards issued (nbf) before it are revoked."""

    @classmethod
    def from_jwks(cls, iss: str, jwks: Mapping[str, Any],
                  crls: Iterable[Mapping[str, Any]] = ()) -> ShcIssuer:
        """Build from the issuer's JWKS (`/.well-known/jwks.json`) and its CRLs.

        Keys other than EC P-256 signing keys are skipped (an issuer may publish others);
        a key whose `kid` is not its RFC 7638 thumbprint, as the SHC spec requires, is refused.

        :raises ValueError: on a malformed JWKS or a kid that is not the key's thumbprint.
        """
        if not isinstance(iss, str) or not iss or not isinstance(jwks, Mapping):
            raise ValueError("an issuer needs an iss URL and a JWKS object")
        keys: dict[str, ec.EllipticCurvePublicKey] = {}
        for jwk in jwks.get("keys", ()):
            if not isinstance(jwk, Mapping) or jwk.get("kty") != "EC" or jwk.get("crv") != "P-256":
                continue
            if jwk.get("use", "sig") != "sig" or jwk.get("alg", "ES256") != "ES256":
                continue
            kid = jwk.get("kid")
            if kid != jwk_thumbprint(jwk):
                raise ValueError(f"issuer {iss}: kid {kid!r} is not the key's thumbprint")
            x, y = (int.from_bytes(_b64url(jwk[c]), "big") for c in ("x", "y"))
            keys[kid] = ec.EllipticCurvePublicNumbers(x, y, ec.SECP256R1()).public_key()
        revoked: dict[str, dict[str, int | None]] = {}
        for crl in crls:
            if crl.get("method") != "rid" or crl.get("kid") not in keys:
                raise ValueError(f"issuer {iss}: a CRL for an unknown key or method")
            entries = revoked.setdefault(crl["kid"], {})
            for item in crl.get("rids", ()):
                rid, _, when = str(item).partition(".")
                entries[rid] = int(when) if when.isdigit() else None
        return cls(iss, keys, revoked)


def issuers_from_document(doc: Mapping[str, Any]) -> dict[str, ShcIssuer]:
    """Issuers from `{"<iss>": {"keys": [...], "crls": [...]}}` (a JWKS per issuer, CRLs optional).

    :raises ValueError: on anything malformed.
    """
    if not isinstance(doc, Mapping):
        raise ValueError("SHC issuers: a JSON object of iss URL -> JWKS")  # callers catch ValueError
    return {iss: ShcIssuer.from_jwks(iss, jwks, jwks.get("crls", ()) if isinstance(jwks, Mapping) else ())
            for iss, jwks in doc.items()}


def jwk_thumbprint(jwk: Mapping[str, Any]) -> str:
    """RFC 7638 thumbprint of an EC public JWK: base64url SHA-256 of its required members."""
    members = json.dumps({k: jwk[k] for k in ("crv", "kty", "x", "y")}, separators=(",", ":"), sort_keys=True)
    return b64url_encode(hashlib.sha256(members.encode("ascii")).digest())


def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url(text: Any) -> bytes:
    if not isinstance(text, str) or not text.isascii():
        raise ValueError("not base64url text")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as err:
        raise ValueError("not base64url text") from err


def numeric_to_jws(payload: str) -> str:
    """The compact JWS a `shc:/` numeric QR holds.

    :raises ShcChunked: for the deprecated multi-QR form `shc:/N/M/...`.
    :raises ShcNumeric: on an odd digit count, a non-digit, or a pair above 77.
    """
    if not isinstance(payload, str):
        raise PrefixError("payload is not text")
    if len(payload) > MAX_PAYLOAD_CHARS:
        raise InputTooLarge(f"{len(payload)} characters")
    text = payload.strip()
    if text[:len(PREFIX)].lower() != PREFIX:
        raise PrefixError("missing shc:/ prefix")
    digits = text[len(PREFIX):]
    if _CHUNKED.match(digits):
        raise ShcChunked("chunked form shc:/N/M/")
    if not digits or not digits.isascii() or not digits.isdigit():
        raise ShcNumeric("not only digits after shc:/")
    if len(digits) % 2:
        raise ShcNumeric("odd number of digits")
    # Read as hex, each pair of decimal digits is one byte (0x56 for "56"), which one table maps
    # to its character: both steps run in C.
    chars = bytes.fromhex(digits).translate(_PAIR_TO_CHAR)
    if 0 in chars:  # 77 + 45 = 'z', the last base64url character
        raise ShcNumeric("a digit pair above 77")
    return chars.decode("ascii")


@dataclass(frozen=True)
class Jws:
    header: dict[str, Any]
    body: bytes          # still compressed
    signing_input: bytes
    signature: bytes


def parse_jws(jws: str) -> Jws:
    """Split and check a compact JWS: header alg ES256, zip DEF, a kid.

    :raises JwsError: malformed. :raises AlgorithmUnsupported: alg other than ES256.
    :raises KidMissing: no kid.
    """
    parts = jws.split(".")
    if len(parts) != 3:
        raise JwsError("not three dot-separated parts")
    try:
        header_bytes, body, signature = (_b64url(p) for p in parts)
    except ValueError as err:
        raise JwsError("a part is not base64url") from err
    if len(header_bytes) > 1024:
        raise JwsError("header too long")
    header = load_json(header_bytes)
    if not isinstance(header, dict):
        raise JwsError("header is not a JSON object")
    if header.get("alg") != "ES256":
        raise AlgorithmUnsupported(f"JWS alg {str(header.get('alg'))[:16]!r}")
    if header.get("zip") != "DEF":
        raise JwsError("header zip is not DEF")
    if "crit" in header:
        raise JwsError("header has crit")
    if not isinstance(header.get("kid"), str) or not header["kid"]:
        raise KidMissing("JWS header has no kid")
    if len(signature) != 64:
        raise BadSignature(f"ES256 signature of {len(signature)} bytes")
    return Jws(header, body, (parts[0] + "." + parts[1]).encode("ascii"), signature)


def inflate_raw(data: bytes, max_size: int = MAX_INFLATED) -> bytes:
    """Inflate raw DEFLATE (RFC 1951), never holding more than `max_size` bytes of output.

    :raises ZlibBomb: output over `max_size`. :raises ZlibError: corrupt or truncated.
    """
    inflater = zlib.decompressobj(-15)
    try:
        out = inflater.decompress(data, max_size + 1)
    except zlib.error as err:
        raise ZlibError(f"raw deflate: {err}") from err
    if len(out) > max_size:
        raise ZlibBomb(f"inflates past {max_size} bytes")
    if not inflater.eof:
        raise ZlibError("raw deflate stream truncated")
    return out


def load_json(data: bytes) -> Any:
    """Parse JSON, refusing nesting deeper than MAX_DEPTH.

    The C parser stops itself (RecursionError) long before the stack is at risk; what it
    parsed is then walked without recursion to enforce the much lower MAX_DEPTH.

    :raises JsonLimitsError: too deep, not UTF-8, or not JSON.
    """
    try:
        value = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as err:
        raise JsonLimitsError("not UTF-8") from err
    except RecursionError as err:
        raise JsonLimitsError("JSON nested too deeply to parse") from err
    except ValueError as err:
        raise JsonLimitsError("not JSON") from err
    level: list[Any] = [value]
    for _ in range(MAX_DEPTH):  # after it, `level` would hold depth MAX_DEPTH + 1
        nested = [v for item in level if isinstance(item, (dict, list))
                  for v in (item.values() if isinstance(item, dict) else item)]
        if not nested:
            return value
        level = nested
    raise JsonLimitsError(f"JSON nested deeper than {MAX_DEPTH}")


def check_signature(jws: Jws, key: ec.EllipticCurvePublicKey) -> None:
    """ES256: the raw 64-byte r||s signature over `header.payload`.

    :raises BadSignature: when it does not verify.
    """
    r = int.from_bytes(jws.signature[:32], "big")
    s = int.from_bytes(jws.signature[32:], "big")
    try:
        key.verify(encode_dss_signature(r, s), jws.signing_input, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature as err:
        raise BadSignature("ES256 signature does not verify") from err


@dataclass(frozen=True)
class Card:
    """A verified card: who signed it, the DCC view for the policy, and the verdict's fields."""

    iss: str
    kid: str
    dcc: dict[str, Any]
    issued_at: datetime | None
    expires_at: datetime | None
    family_name: str | None
    given_name: str | None
    dob: str | None
    detail: dict[str, Any]


def read_card(payload: str, issuers: Mapping[str, ShcIssuer], now: datetime,
              clock_skew: timedelta = timedelta(minutes=5), max_inflated: int = MAX_INFLATED,
              context: dict[str, Any] | None = None) -> Card:
    """Decode and verify a `shc:/` payload against the SHC issuers; raise the first failure.

    `context` (optional) receives `kid` and, once the signature is checked, `issuer`.
    """
    context = context if context is not None else {}
    jws = parse_jws(numeric_to_jws(payload))
    kid = jws.header["kid"]
    context["kid"] = kid[:64]
    claims = load_json(inflate_raw(jws.body, max_inflated))
    if not isinstance(claims, dict) or not isinstance(claims.get("iss"), str):
        raise JwsError("payload has no iss")
    iss = claims["iss"]
    issuer = issuers.get(iss)
    key = issuer.keys.get(kid) if issuer is not None else None
    if issuer is None or key is None:
        if any(kid in other.keys for other in issuers.values()):
            raise IssuerKeyMismatch("the kid belongs to another issuer than the card's iss")
        raise UnknownKid(detail="SHC issuer or kid not in the trust store")
    check_signature(jws, key)
    context.update(issuer=iss, cert_type="v")
    issued_at = _time(claims.get("nbf"), "nbf")
    expires_at = _time(claims.get("exp"), "exp")
    if issued_at is None:
        raise JwsError("payload has no nbf")
    if issued_at > now + clock_skew:
        raise ShcNotYetValid(f"nbf {issued_at:%Y-%m-%d}")
    if expires_at is not None and expires_at < now - clock_skew:
        raise ShcExpired(f"exp {expires_at:%Y-%m-%d}")
    vc = claims.get("vc")
    if not isinstance(vc, dict):
        raise FhirError(detail="payload has no vc object")
    _check_revoked(issuer, kid, vc.get("rid"), claims.get("nbf"))
    return _card_from_vc(vc, iss, kid, issued_at, expires_at)


def _time(value: Any, name: str) -> datetime | None:
    if value is None:
        return None
    if type(value) not in (int, float) or not 0 <= value < 1e11:
        raise JwsError(f"{name} is not a NumericDate")
    return datetime.fromtimestamp(value, tz=timezone.utc)


def _check_revoked(issuer: ShcIssuer, kid: str, rid: Any, nbf: Any) -> None:
    revoked = issuer.revoked.get(kid)
    if not revoked or not isinstance(rid, str):
        return
    if rid in revoked:
        until = revoked[rid]
        if until is None or nbf < until:
            raise Revoked(f"rid listed in the CRL of kid {kid[:12]}")


@lru_cache(maxsize=1)
def cvx_codes() -> dict[str, dict[str, Any]]:
    """The CVX codes the verifier maps (verifier/data/shc/cvx.json)."""
    text = resources.files("verifier.data.shc").joinpath("cvx.json").read_text("utf-8")
    return dict(json.loads(text)["codes"])


def _product(resource: Mapping[str, Any]) -> tuple[str, dict[str, Any]] | None:
    code = resource.get("vaccineCode")
    codings = code.get("coding") if isinstance(code, Mapping) else None
    for coding in codings if isinstance(codings, list) else ():
        if isinstance(coding, Mapping) and coding.get("system") == CVX_SYSTEM:
            product = cvx_codes().get(str(coding.get("code")))
            if product is not None:
                return str(coding.get("code")), product
    return None


def _card_from_vc(vc: Mapping[str, Any], iss: str, kid: str, issued_at: datetime,
                  expires_at: datetime | None) -> Card:
    subject = vc.get("credentialSubject")
    bundle = subject.get("fhirBundle") if isinstance(subject, Mapping) else None
    entries = bundle.get("entry") if isinstance(bundle, Mapping) else None
    if not isinstance(entries, list):
        raise FhirError(detail="no FHIR bundle entries")
    patient: Mapping[str, Any] | None = None
    doses: list[tuple[str, str, dict[str, Any]]] = []  # (date, cvx, product)
    for entry in entries:
        resource = entry.get("resource") if isinstance(entry, Mapping) else None
        if not isinstance(resource, Mapping):
            continue
        kind = resource.get("resourceType")
        if kind == "Patient" and patient is None:
            patient = resource
        elif kind == "Immunization" and resource.get("status") == "completed":
            when = resource.get("occurrenceDateTime")
            found = _product(resource)
            if found is not None and isinstance(when, str) and re.match(r"\d{4}-\d{2}-\d{2}", when):
                doses.append((when[:10], found[0], found[1]))
    if patient is None:
        raise FhirError(detail="no Patient")
    if not doses:
        raise FhirError(detail="no completed COVID-19 immunization with a known CVX code")
    doses.sort(key=lambda dose: dose[0])
    date, cvx, product = doses[-1]
    family, given = _name(patient.get("name"))
    dob = patient.get("birthDate") if isinstance(patient.get("birthDate"), str) else None
    entry = {"tg": COVID_DISEASE, "mp": product["mp"], "dn": len(doses), "sd": int(product["doses"]),
             "dt": date, "is": iss, "ci": ""}
    dcc = {"ver": "1.3.0", "nam": {"fn": family, "gn": given}, "dob": dob, "v": [entry]}
    detail = {"dn": len(doses), "sd": int(product["doses"]), "dt": date, "mp": product["mp"], "cvx": cvx}
    return Card(iss, kid, dcc, issued_at, expires_at, family, given, dob, detail)


def _name(names: Any) -> tuple[str | None, str | None]:
    if not isinstance(names, list) or not names or not isinstance(names[0], Mapping):
        return None, None
    family = names[0].get("family")
    given = names[0].get("given")
    given_text = " ".join(g for g in given if isinstance(g, str)) if isinstance(given, list) else None
    return (family if isinstance(family, str) else None), (given_text or None)
