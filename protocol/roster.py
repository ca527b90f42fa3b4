"""The signed officer roster (`chot-roster/1`): who may sign in on a checkpoint's units.

The dashboard keeps the officers and signs one roster per checkpoint with its roster key; the
roster key's public half is listed in the ministry-signed trust bundle (`roster_keys`), so a
unit trusts exactly the rosters the ministry lets that dashboard sign. Format, like the bundle:
`{format, payload, signature, signer}`, `payload` = base64 of UTF-8 JSON
`{version, checkpoint, issued_at, expires_at, devices, officers}` signed ECDSA P-256 / SHA-256
(DER); `signer` = the first 8 bytes of SHA-256 over the key's SubjectPublicKeyInfo.

A roster holds only its own checkpoint's officers, each with a scrypt hash of their PIN under a
salt of their own, so a stolen unit gives away no other checkpoint's staff and its PINs cost a
slow hash per guess. Pure: no disk, network or clock (times are compared by the caller).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from protocol.fields import ID, OFFICER_ID
from verifier.bundle import b64_field, signer_id, time_field  # the trust bundle's key id and fields
from verifier.errors import VerificationError

FORMAT = "chot-roster/1"
MAX_ROSTER_BYTES = 256 * 1024
MAX_OFFICERS = 500
DEVICE_ID = ID
PIN = re.compile(r"^[0-9]{4,8}$")
ROLES = ("police", "health", "supervisor", "staff")
# scrypt cost: 16 MiB and 48 ms of CPU per guess on the development machine (bench/pin.py),
# several times that on a Pi; memory-hard, so GPUs gain less than on PBKDF2. The bounds stop a roster
# (signed, but still parsed) from asking a unit for gigabytes or minutes per PIN.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
_N_RANGE = (2**10, 2**17)
_SALT_BYTES = 16
_KEY_BYTES = 32


class RosterError(VerificationError):
    """A roster was refused; the message says why."""

    code = "roster"
    message_en = "The officer list update was refused."
    message_vi = "Bản cập nhật danh sách cán bộ bị từ chối."

    def __str__(self) -> str:
        return f"roster refused: {self.detail}" if self.detail else self.message_en


class RosterFormatError(RosterError):
    """Not a well-formed chot-roster/1 document."""

    code = "roster_format"


class RosterSignatureError(RosterError):
    """Not signed by a roster key the trust bundle lists."""

    code = "roster_signature"


class RosterVersionError(RosterError):
    """Not newer than the roster already held."""

    code = "roster_version"

    def __init__(self, version: int, min_version: int) -> None:
        self.version = version
        self.min_version = min_version
        super().__init__(f"version {version} is not newer than the roster held (needs {min_version} or more)")


class RosterCheckpointError(RosterError):
    """A roster for another checkpoint."""

    code = "roster_checkpoint"


@dataclass(frozen=True)
class PinHash:
    """scrypt parameters, salt and derived key of one officer's PIN."""

    n: int
    r: int
    p: int
    salt: bytes = field(repr=False)
    key: bytes = field(repr=False)

    def matches(self, pin: str) -> bool:
        """True if `pin` is this PIN (constant-time comparison; one slow hash)."""
        if not isinstance(pin, str) or not PIN.match(pin):
            return False
        derived = hashlib.scrypt(pin.encode("ascii"), salt=self.salt, n=self.n, r=self.r, p=self.p,
                                 maxmem=256 * self.n * self.r + (1 << 20), dklen=len(self.key))
        return hmac.compare_digest(derived, self.key)

    def to_json(self) -> dict[str, Any]:
        """The `pin` object of a roster entry."""
        return {"alg": "scrypt", "n": self.n, "r": self.r, "p": self.p,
                "salt": base64.b64encode(self.salt).decode(), "hash": base64.b64encode(self.key).decode()}


def hash_pin(pin: str, salt: bytes, *, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P) -> PinHash:
    """The scrypt hash of a 4-8 digit PIN under `salt` (the caller draws a fresh random salt)."""
    if not isinstance(pin, str) or not PIN.match(pin):
        raise RosterFormatError("a PIN is 4 to 8 digits")
    if len(salt) < _SALT_BYTES:
        raise RosterFormatError(f"a PIN salt has at least {_SALT_BYTES} bytes")
    key = hashlib.scrypt(pin.encode("ascii"), salt=salt, n=n, r=r, p=p, maxmem=256 * n * r + (1 << 20),
                         dklen=_KEY_BYTES)
    return PinHash(n, r, p, bytes(salt), key)


@dataclass(frozen=True)
class Officer:
    """One officer allowed on the checkpoint (staff data: id and name may appear in reports)."""

    id: str
    name: str
    role: str
    pin: PinHash = field(repr=False)

    def to_json(self) -> dict[str, Any]:
        """The roster entry."""
        return {"id": self.id, "name": self.name, "role": self.role, "pin": self.pin.to_json()}


@dataclass(frozen=True)
class Roster:
    """A checked roster."""

    version: int
    checkpoint: str
    issued_at: datetime
    expires_at: datetime
    devices: tuple[str, ...]
    officers: tuple[Officer, ...]
    raw: bytes = field(repr=False)

    def officer(self, officer_id: str) -> Officer | None:
        """The officer with this id, or None (revoked officers are simply absent)."""
        return next((o for o in self.officers if o.id == officer_id), None)

    def allows_device(self, device: str) -> bool:
        """The unit is still registered at this checkpoint (a removed unit is left out)."""
        return device in self.devices


def load_public_keys(entries: Iterable[Any]) -> list[ec.EllipticCurvePublicKey]:
    """Roster keys as the bundle lists them (PEM text) or as key objects; unusable ones raise."""
    keys = []
    for entry in entries:
        if isinstance(entry, ec.EllipticCurvePublicKey):
            keys.append(entry)
            continue
        try:
            key = serialization.load_pem_public_key(entry.encode("ascii") if isinstance(entry, str) else bytes(entry))
        except (ValueError, TypeError, UnicodeEncodeError) as err:
            raise RosterSignatureError(f"a roster key is not a PEM public key: {err}") from None
        if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
            raise RosterSignatureError("a roster key is not an ECDSA P-256 key")
        keys.append(key)
    return keys


def _timestamp(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise RosterFormatError("roster times need a time zone")
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def build_roster(key: ec.EllipticCurvePrivateKey, *, version: int, checkpoint: str, issued_at: datetime,
                 expires_at: datetime, devices: Sequence[str], officers: Sequence[Officer]) -> bytes:
    """Sign a roster document (the dashboard's side). Refuses what `parse_roster` would refuse."""
    payload = {
        "version": version, "checkpoint": checkpoint, "issued_at": _timestamp(issued_at),
        "expires_at": _timestamp(expires_at), "devices": sorted(devices),
        "officers": [o.to_json() for o in sorted(officers, key=lambda o: o.id)],
    }
    _check_payload(payload)
    body = json.dumps(payload, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode("utf-8")
    signature = key.sign(body, ec.ECDSA(hashes.SHA256()))
    document = {"format": FORMAT, "payload": base64.b64encode(body).decode(),
                "signature": base64.b64encode(signature).decode(),
                "signer": base64.b64encode(signer_id(key.public_key())).decode()}
    return json.dumps(document, separators=(",", ":")).encode("utf-8")


def _b64(document: Mapping[str, Any], key: str) -> bytes:
    return b64_field(document, key, RosterFormatError)


def _time(payload: Mapping[str, Any], key: str) -> datetime:
    moment = time_field(payload, key, True, RosterFormatError)
    assert moment is not None  # required
    return moment


def _pin(entry: Any, where: str) -> PinHash:
    if not isinstance(entry, Mapping) or entry.get("alg") != "scrypt":
        raise RosterFormatError(f"{where}.pin must be a scrypt hash")
    n, r, p = entry.get("n"), entry.get("r"), entry.get("p")
    if any(type(v) is not int for v in (n, r, p)):
        raise RosterFormatError(f"{where}.pin parameters must be whole numbers")
    if not (_N_RANGE[0] <= n <= _N_RANGE[1] and n & (n - 1) == 0 and 1 <= r <= 16 and 1 <= p <= 4):
        raise RosterFormatError(f"{where}.pin parameters are outside the allowed cost")
    salt, key = _b64(entry, "salt"), _b64(entry, "hash")
    if len(salt) < _SALT_BYTES or not 16 <= len(key) <= 64:
        raise RosterFormatError(f"{where}.pin salt or hash has the wrong length")
    return PinHash(n, r, p, salt, key)


def _officers(items: Any) -> tuple[Officer, ...]:
    if not isinstance(items, list) or len(items) > MAX_OFFICERS:
        raise RosterFormatError(f"`officers` must be a list of at most {MAX_OFFICERS}")
    officers: list[Officer] = []
    for index, item in enumerate(items):
        where = f"officers[{index}]"
        if isinstance(item, Officer):
            item = item.to_json()
        if not isinstance(item, Mapping) or set(item) - {"id", "name", "role", "pin"}:
            raise RosterFormatError(f"{where} must be {{id, name, role, pin}}")
        oid, name, role = item.get("id"), item.get("name"), item.get("role")
        if not isinstance(oid, str) or not OFFICER_ID.match(oid):
            raise RosterFormatError(f"{where}.id must be 1-32 letters, digits, '_', '.' or '-'")
        if not isinstance(name, str) or not 0 < len(name.strip()) <= 100:
            raise RosterFormatError(f"{where}.name must be 1-100 characters")
        if role not in ROLES:
            raise RosterFormatError(f"{where}.role must be one of {', '.join(ROLES)}")
        if any(o.id == oid for o in officers):
            raise RosterFormatError(f"{where}.id {oid} appears twice")
        officers.append(Officer(oid, name.strip(), role, _pin(item.get("pin"), where)))
    return tuple(officers)


def _check_payload(payload: Any) -> tuple[tuple[str, ...], tuple[Officer, ...]]:
    if not isinstance(payload, Mapping):
        raise RosterFormatError("payload is not a JSON object")
    unknown = set(payload) - {"version", "checkpoint", "issued_at", "expires_at", "devices", "officers"}
    if unknown:
        raise RosterFormatError(f"unknown payload keys {sorted(unknown)}")
    version = payload.get("version")
    if type(version) is not int or version < 1:
        raise RosterFormatError("`version` is not a whole number of at least 1")
    checkpoint = payload.get("checkpoint")
    if not isinstance(checkpoint, str) or not DEVICE_ID.match(checkpoint):
        raise RosterFormatError("`checkpoint` is not a checkpoint id")
    devices = payload.get("devices")
    if not isinstance(devices, list) or not all(isinstance(d, str) and DEVICE_ID.match(d) for d in devices):
        raise RosterFormatError("`devices` must be a list of device ids")
    if _time(payload, "expires_at") <= _time(payload, "issued_at"):
        raise RosterFormatError("`expires_at` must be after `issued_at`")
    return tuple(devices), _officers(payload.get("officers"))


def parse_roster(data: bytes, keys: Sequence[ec.EllipticCurvePublicKey], *, checkpoint: str,
                 min_version: int | None = None) -> Roster:
    """Check a roster's format, signature (by one of `keys`), checkpoint and version.

    :param keys: the roster keys the current trust bundle lists (`load_public_keys`).
    :param min_version: the lowest version accepted (the held version + 1 on a unit).
    :raises RosterFormatError, RosterSignatureError, RosterCheckpointError, RosterVersionError.
    """
    if len(data) > MAX_ROSTER_BYTES:
        raise RosterFormatError(f"{len(data)} bytes is more than {MAX_ROSTER_BYTES}")
    try:
        document = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise RosterFormatError("not JSON") from None
    if not isinstance(document, Mapping) or document.get("format") != FORMAT:
        raise RosterFormatError(f"not a {FORMAT} document")
    body, signature, signer = _b64(document, "payload"), _b64(document, "signature"), _b64(document, "signer")
    key = next((k for k in keys if signer_id(k) == signer), None)
    if key is None:
        raise RosterSignatureError("signed by a key the trust bundle does not list as a roster key")
    try:
        key.verify(signature, body, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise RosterSignatureError("the signature does not match the roster key") from None
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise RosterFormatError("payload is not JSON") from None
    devices, officers = _check_payload(payload)
    if payload["checkpoint"] != checkpoint:
        raise RosterCheckpointError(f"the roster is for checkpoint {payload['checkpoint']}, not {checkpoint}")
    if min_version is not None and payload["version"] < min_version:
        raise RosterVersionError(payload["version"], min_version)
    return Roster(payload["version"], checkpoint, _time(payload, "issued_at"), _time(payload, "expires_at"),
                  devices, officers, bytes(data))
