"""CWT claims (RFC 8392) of an HCERT: issuer, issued-at, expiry and the DCC payload (-260/1)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any, NamedTuple

from verifier import cbor
from verifier.errors import CoseError, CwtError, CwtExpired, CwtNotYetValid

CLAIM_ISS = 1
CLAIM_EXP = 4
CLAIM_IAT = 6
CLAIM_HCERT = -260
HCERT_DCC = 1


class Claims(NamedTuple):
    """The CWT claims a verifier uses; times are seconds since the epoch."""

    iss: str | None
    iat: int | None
    exp: int | None
    dcc: Mapping[str, Any]

    @property
    def issued_at(self) -> datetime | None:
        """`iat` as an aware UTC datetime."""
        return _to_datetime(self.iat)

    @property
    def expires_at(self) -> datetime | None:
        """`exp` as an aware UTC datetime."""
        return _to_datetime(self.exp)


def _to_datetime(seconds: int | None) -> datetime | None:
    if seconds is None:
        return None
    try:
        return datetime.fromtimestamp(seconds, timezone.utc)
    except (OverflowError, OSError, ValueError):
        return None


def _time_claim(claims: Mapping[Any, Any], label: int, name: str) -> int | None:
    value = claims.get(label)
    if value is None:
        return None
    if type(value) is float and value == value and abs(value) < 1e12:
        return int(value)
    if type(value) is not int:
        raise CwtError(f"claim {name} is not a number")
    return value


def parse_claims(payload: bytes) -> Claims:
    """Decode the CWT payload and pick out iss, iat, exp and the DCC.

    :raises CwtError: when the claims are not a map or the DCC is missing.
    :raises CborLimitsError: when the CBOR breaks a size or depth limit.
    """
    try:
        claims = cbor.loads(payload, "CWT")
    except CoseError as err:  # a payload that is not CBOR is a CWT fault, not a COSE one
        raise CwtError(err.detail) from err
    if type(claims) not in cbor.MAP_TYPES:
        raise CwtError("claims are not a map")
    iss = claims.get(CLAIM_ISS)
    if iss is not None and not isinstance(iss, str):
        raise CwtError("claim iss is not text")
    hcert = claims.get(CLAIM_HCERT)
    if type(hcert) not in cbor.MAP_TYPES:
        raise CwtError("no health certificate claim (-260)")
    dcc = hcert.get(HCERT_DCC)
    if type(dcc) not in cbor.MAP_TYPES:
        raise CwtError("no DCC in the health certificate claim (-260/1)")
    # The DCC's own limits are checked with its schema; here only what surrounds it. Most
    # claims are small integers: skip the walk for those.
    if len(claims) > cbor.MAX_ITEMS or len(hcert) > 1:
        cbor.check_limits(claims, skip=dcc)
    else:
        for key, value in claims.items():
            if type(key) is int and (type(value) is int or value is hcert):
                continue
            if type(key) is int and type(value) is str and len(value) <= cbor.MAX_STRING:
                continue  # iss
            cbor.check_limits(key)
            cbor.check_limits(value)
    iat, exp = claims.get(CLAIM_IAT), claims.get(CLAIM_EXP)
    if type(iat) is not int:  # whole seconds are the rule; anything else is checked and converted
        iat = _time_claim(claims, CLAIM_IAT, "iat")
    if type(exp) is not int:
        exp = _time_claim(claims, CLAIM_EXP, "exp")
    return Claims(iss, iat, exp, dcc)


def check_times(claims: Claims, now: datetime, skew: timedelta = timedelta(0)) -> None:
    """Check `iat <= exp` and `iat <= now <= exp`, the last two widened by the allowed clock skew.

    :raises CwtError: when issued after it expires (valid at no time; the skew must not rescue it).
    :raises CwtNotYetValid: when issued after `now` + skew.
    :raises CwtExpired: when expired before `now` - skew.
    """
    if claims.iat is not None and claims.exp is not None and claims.iat > claims.exp:
        raise CwtError(f"iat {claims.iat} after exp {claims.exp}")
    t = now.timestamp()
    allowance = skew.total_seconds()
    if claims.iat is not None and claims.iat > t + allowance:
        raise CwtNotYetValid(f"iat {claims.iat} after {int(t)}")
    if claims.exp is not None and claims.exp < t - allowance:
        raise CwtExpired(f"exp {claims.exp} before {int(t)}")
