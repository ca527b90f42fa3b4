"""verify(): one scanned payload string in, one Verdict out. Never raises, never hangs.

Steps (each failure is a red verdict with its own reason code): HC1 prefix, Base45, zlib
(capped), COSE_Sign1, alg, kid, signer lookup, signature, the EU's special cases applied to the
DCC (verifier.quirks: trimmed, nulls dropped), signer validity, key usage, CWT times, DCC schema,
one event only, revocation, the policy's event dates readable, then the checkpoint policy (an
EU rules policy also gets the CWT's iat, exp and issuer).

Untrusted clock and stale trust: the core never looks at a clock, so the unit tells it through
VerifyOptions. When `clock_trusted` is False, a result the policy would make green or
yellow becomes yellow with reason `clock_untrusted` (red if the policy's `on_untrusted_clock`
is "refuse"). When `trust_age` exceeds the allowed age (the policy's `max_trust_age` if it has
one, else `VerifyOptions.max_trust_age`), green or yellow becomes yellow with reason
`trust_stale`. Either way the officer must check by other means. Red stays red: a forged or
revoked certificate is red whatever the clock says. The policy always sees the `now` it is given.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, cast

from verifier import cose, cwt, hcert, quirks
from verifier.cbor import MAP_TYPES
from verifier.errors import (
    BadSignature,
    FormatUnsupported,
    InternalError,
    PolicyError,
    UnknownKid,
    VerificationError,
)
from verifier.formats import DCC, SHC, UNKNOWN, detect, shc
from verifier.schema import validate_dcc
from verifier.trust import SignerKey, TrustStore
from verifier.verdict import (
    DESCRIBE,
    RED,
    RESULTS,
    YELLOW,
    Holder,
    Verdict,
    red_verdict,
)

logger = logging.getLogger(__name__)
_LISTS = (list, tuple)


class PolicyLike(Protocol):
    """What verify() needs of a policy (verifier.policy.Policy satisfies it)."""

    @property
    def name(self) -> str | None:
        """Recorded in the verdict (None: an unnamed policy, as in tests)."""

    @property
    def on_untrusted_clock(self) -> str:
        """"warn" or "refuse" (verifier.policy.CLOCK_CHOICES)."""

    @property
    def max_trust_age(self) -> timedelta | None:
        """Oldest trust bundle judged normally (None: the unit's VerifyOptions decide)."""

    def decide(self, dcc: Mapping[str, Any], now: datetime) -> tuple[str, str, str, str]: ...


@dataclass(frozen=True)
class VerifyOptions:
    """Per-unit settings for verify()."""

    clock_skew: timedelta = timedelta(minutes=5)
    """Allowance either side of `iat`/`exp` for a unit clock that drifts."""
    uci_key: bytes | None = None
    """Per-unit secret for the keyed hash of the certificate identifier (None: no hash)."""
    clock_trusted: bool = True
    """False when the unit's clock is known to be wrong (earlier than its bundle or last run)."""
    trust_age: timedelta | None = None
    """How old the unit's trust bundle is, if known."""
    max_trust_age: timedelta | None = None
    """Oldest acceptable trust bundle when the policy does not say (None: no limit)."""
    max_inflated: int = hcert.MAX_INFLATED
    """Hard cap on the inflated size of the COSE data."""
    check_signer_validity: bool = True
    """Check the DSC's notBefore/notAfter against `now` (conformance runs may turn it off)."""
    check_value_sets: bool = True
    """Refuse a coded field whose code is not in the trust store's value sets (reason `value_set`)."""


_CLOCK_UNTRUSTED = (
    "clock_untrusted",
    "The unit's clock is wrong: check the certificate dates by hand.",
    "Đồng hồ thiết bị sai: hãy kiểm tra ngày của chứng nhận bằng mắt.",
)
_TRUST_STALE = (
    "trust_stale",
    "The trust list on this unit is out of date: check the certificate by other means.",
    "Danh sách tin cậy trên thiết bị đã cũ: hãy kiểm tra chứng nhận bằng cách khác.",
)


def _str_or_none(value: Any) -> str | None:
    return value if type(value) is str else None


def cert_type_of(dcc: Mapping[str, Any]) -> str | None:
    """The certificate type: "v", "t" or "r" (the first present), or None."""
    for kind in ("v", "t", "r"):
        if kind in dcc:
            return kind
    return None


def _entry(dcc: Mapping[str, Any], kind: str | None) -> Mapping[str, Any]:
    group = dcc.get(kind) if kind else None
    if type(group) in _LISTS and group and type(group[0]) in MAP_TYPES:
        first: Mapping[str, Any] = group[0]
        return first
    return {}


_DETAIL_FIELDS = {"v": ("dn", "sd", "mp", "dt", "co"), "t": ("tt", "sc", "tr", "co"), "r": ("fr", "df", "du", "co")}


def _holder(dcc: Mapping[str, Any]) -> Holder | None:
    found = dcc.get("nam")
    if type(found) not in MAP_TYPES:
        return None
    nam = cast(Mapping[str, Any], found)
    fn, gn, fnt, gnt, dob = nam.get("fn"), nam.get("gn"), nam.get("fnt"), nam.get("gnt"), dcc.get("dob")
    return Holder.of(
        fn if type(fn) is str else None,
        gn if type(gn) is str else None,
        fnt if type(fnt) is str else None,
        gnt if type(gnt) is str else None,
        dob if type(dob) is str else None,
    )


def keyed_uci_hash(uci: str, key: bytes) -> str:
    """HMAC-SHA256 of the certificate identifier under the unit's key (hex): spots repeats, reveals nothing."""
    pads = _hmac_pads.get(key)
    if pads is None:
        pads = _hmac_pads_of(key)
    inner, outer = pads[0].copy(), pads[1].copy()
    inner.update(uci.encode("utf-8"))
    outer.update(inner.digest())
    return outer.hexdigest()


_hmac_pads: dict[bytes, tuple[hashlib._Hash, hashlib._Hash]] = {}


def _hmac_pads_of(key: bytes) -> tuple[hashlib._Hash, hashlib._Hash]:
    """SHA-256 states after the HMAC inner and outer pads (RFC 2104): made once per unit key."""
    block = hashlib.sha256(key).digest() if len(key) > _SHA256_BLOCK else key
    block = block.ljust(_SHA256_BLOCK, b"\0")
    pads = (hashlib.sha256(block.translate(_IPAD)), hashlib.sha256(block.translate(_OPAD)))
    if len(_hmac_pads) < 16:  # a unit has one key; tests and tools a few
        _hmac_pads[key] = pads
    return pads


_SHA256_BLOCK = 64
_IPAD = bytes(b ^ 0x36 for b in range(256))
_OPAD = bytes(b ^ 0x5C for b in range(256))


def _described(claims: cwt.Claims, kind: str | None, entry: Mapping[str, Any],
               uci_key: bytes | None) -> dict[str, Any]:
    """The verdict fields about the holder and the certificate; defensive, as the DCC may be malformed."""
    uci = entry.get("ci")
    uci_hash = None
    if type(uci) is str and uci_key:
        try:
            uci_hash = keyed_uci_hash(uci, uci_key)
        except UnicodeError:  # a lone surrogate cannot come from CBOR text, but never raise here
            uci_hash = None
    return {
        "holder": _holder(claims.dcc),
        "detail": {k: entry[k] for k in _DETAIL_FIELDS[kind] if k in entry} if kind else {},
        "uci_hash": uci_hash, "issued_at": claims.issued_at, "expires_at": claims.expires_at,
    }


def _check_signature(msg: cose.Sign1, trust: TrustStore, kid: bytes) -> SignerKey:
    """Find the signer whose key verifies the message; kids can collide, so try each."""
    candidates = trust.find(kid)
    if not candidates:
        raise UnknownKid(kid)
    failure: VerificationError = BadSignature()
    for signer in candidates:
        try:
            cose.verify_signature(msg, signer.public_key)
            return signer
        except VerificationError as err:
            failure = err
    raise failure


def _cap(verdict_fields: dict[str, Any], policy: PolicyLike, options: VerifyOptions) -> None:
    """Cap green/yellow when the clock or the trust list cannot be relied on.

    An untrusted clock gives yellow, or red when the policy's `on_untrusted_clock` is "refuse";
    a trust list older than allowed gives yellow.
    """
    if verdict_fields["result"] == RED or (options.clock_trusted and options.trust_age is None):
        return
    if not options.clock_trusted:
        reason, message_en, message_vi = _CLOCK_UNTRUSTED
        result = RED if policy.on_untrusted_clock == "refuse" else YELLOW
    else:
        limit = policy.max_trust_age or options.max_trust_age
        if limit is None or options.trust_age is None or options.trust_age <= limit:
            return
        result, (reason, message_en, message_vi) = YELLOW, _TRUST_STALE
    verdict_fields.update(result=result, reason=reason, message_en=message_en, message_vi=message_vi)


def _decide(policy: PolicyLike, dcc: Mapping[str, Any], now: datetime,
            claims: cwt.Claims | None = None) -> tuple[str, str, str, str]:
    try:
        with_claims = getattr(policy, "decide_claims", None)  # EU rules read the CWT's iat, exp, iss too
        if with_claims is not None and claims is not None:
            outcome = with_claims(dcc, now, iat=claims.iat, exp=claims.exp, issuer_country=claims.iss)
        else:
            outcome = policy.decide(dcc, now)  # the decoded DCC is ours alone: no copy needed
        result, reason, message_en, message_vi = outcome
    except VerificationError:
        raise
    except Exception as err:  # a policy fault must give red, not crash the unit
        raise PolicyError(f"{type(err).__name__}: {err}") from err
    if result not in RESULTS or not isinstance(reason, str):
        raise PolicyError(f"policy returned {result!r}")
    return result, reason, str(message_en), str(message_vi)


def _verify(payload: str, trust: TrustStore, now: datetime, policy: PolicyLike,
            options: VerifyOptions, context: dict[str, Any]) -> Verdict:
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    if type(payload) is not str or not payload.startswith("HC1:"):  # HC1 is the hot path
        kind_of_code = detect(payload)
        if kind_of_code != DCC:
            context["format"] = kind_of_code
            if kind_of_code == SHC:
                return _verify_shc(payload, trust, now, policy, options, context)
            if kind_of_code != UNKNOWN:
                raise FormatUnsupported(f"{kind_of_code} is recognised but not verified yet")
    msg = cose.parse_sign1(hcert.decode_transport(payload, options.max_inflated))
    cose.check_alg(msg)
    kid = cose.require_kid(msg)
    context["kid"] = _b64(kid)
    signer = _check_signature(msg, trust, kid)
    claims = cwt.parse_claims(msg.payload)
    dcc = quirks.normalise(claims.dcc)  # the EU's special cases: trimmed, nulls dropped
    kind = cert_type_of(dcc)
    entry = _entry(dcc, kind)
    # Signed data from here on: the officer may see who it is even when the verdict is red. The
    # holder, detail, hash and times are made when first read (most verdicts only show a colour).
    context.update(issuer=claims.iss, cert_type=kind)
    context[DESCRIBE] = functools.partial(_described, claims, kind, entry, options.uci_key)
    if options.check_signer_validity:
        signer.check_valid_at(now)
    signer.check_type(kind)
    cwt.check_times(claims, now, options.clock_skew)
    validate_dcc(dcc, trust.value_sets if options.check_value_sets else False)
    quirks.check_single_event(dcc, kind)  # versions before 1.3.0 allow several; the EU refuses them
    if trust.revocations:  # most units carry an empty list
        _check_revoked(trust, dcc[kind], msg)
    unreadable = quirks.unreadable_date(entry, kind)  # the schema no longer checks date formats
    if unreadable is not None:
        raise quirks.UnreadableDate(unreadable)
    result, reason, message_en, message_vi = _decide(policy, dcc, now, claims)
    context.update(result=result, reason=reason, message_en=message_en, message_vi=message_vi)
    _cap(context, policy, options)
    return Verdict.complete(context)


def _verify_shc(payload: str, trust: TrustStore, now: datetime, policy: PolicyLike,
                options: VerifyOptions, context: dict[str, Any]) -> Verdict:
    """A SMART Health Card (verifier.formats.shc), decided by the same policy on its DCC view."""
    card = shc.read_card(payload, getattr(trust, "shc_issuers", {}), now, options.clock_skew,
                         options.max_inflated, context)
    context[DESCRIBE] = functools.partial(_shc_described, card)
    result, reason, message_en, message_vi = _decide(policy, card.dcc, now)
    context.update(result=result, reason=reason, message_en=message_en, message_vi=message_vi)
    _cap(context, policy, options)
    return Verdict.complete(context)


def _shc_described(card: shc.Card) -> dict[str, Any]:
    return {"holder": Holder.of(card.family_name, card.given_name, None, None, card.dob),
            "detail": dict(card.detail), "uci_hash": None, "issued_at": card.issued_at,
            "expires_at": card.expires_at}


def _check_revoked(trust: TrustStore, entries: Any, msg: cose.Sign1) -> None:
    """Every entry's identifier (schema versions before 1.3.0 allow several entries per type)."""
    for entry in entries:
        trust.revocations.check(_str_or_none(entry.get("ci")), _str_or_none(entry.get("co")),
                                msg.signature, msg.alg)


_kid_text: dict[bytes, str] = {}


def _b64(kid: bytes) -> str:
    """The kid as base64 text; a unit sees a handful of kids, so keep a small cache."""
    text = _kid_text.get(kid)
    if text is None:
        text = base64.b64encode(kid).decode("ascii")
        if len(_kid_text) < 1024:
            _kid_text[kid] = text
    return text


def verify(payload: str, trust: TrustStore, now: datetime, policy: PolicyLike,
           options: VerifyOptions = VerifyOptions()) -> Verdict:
    """Verify one scanned payload against the trust store at time `now` under `policy`.

    Never raises: every failure is a red Verdict whose `reason` is a stable code.

    :param payload: the scanned text, expected to start with ``HC1:``.
    :param trust: the document signer keys and revocation list.
    :param now: the validation time (aware; naive means UTC).
    :param policy: decides green / yellow / red for a valid certificate.
    :param options: per-unit settings (clock skew, keyed-hash key, clock and trust state).
    """
    # Every Verdict field but the result and the described ones (see verifier.verdict.DESCRIBE):
    # the verdict is built from this dict without checks.
    context: dict[str, Any] = {
        "policy": policy.name, "trust_version": trust.version,
        "kid": None, "issuer": None, "cert_type": None, "error_detail": "", "format": DCC,
    }
    try:
        return _verify(payload, trust, now, policy, options, context)
    except VerificationError as err:
        logger.info("red: %s (kid %s)", err.code, context.get("kid"))
        return red_verdict(err, **_with_description(context))
    except BaseException as err:
        if isinstance(err, (KeyboardInterrupt, SystemExit)):
            raise
        logger.error("internal verifier error %s", type(err).__name__)
        return red_verdict(InternalError(type(err).__name__), **_with_description(context))


def _with_description(context: dict[str, Any]) -> dict[str, Any]:
    """The context with the described fields made now (a red verdict is rare: no need to defer)."""
    describe = context.pop(DESCRIBE, None)
    if describe is not None:
        context.update(describe())
    return context
