"""The Verdict: what the officer sees, and the small part of it that may leave the unit."""

from __future__ import annotations

from dataclasses import MISSING, dataclass, field, fields
from datetime import datetime
from typing import Any

from verifier.errors import VerificationError

GREEN = "green"
YELLOW = "yellow"
RED = "red"
RESULTS = (GREEN, YELLOW, RED)


@dataclass(frozen=True)
class Holder:
    """The holder's name (native and ICAO-transliterated) and date of birth, to match an ID card."""

    family_name: str | None
    given_name: str | None
    family_name_t: str | None
    given_name_t: str | None
    dob: str | None

    def __repr__(self) -> str:
        return "Holder(<personal data withheld>)"  # a logged verdict must not leak who it was

    @classmethod
    def of(cls, family_name: str | None, given_name: str | None, family_name_t: str | None,
           given_name_t: str | None, dob: str | None) -> "Holder":
        """Build without the frozen-dataclass __init__ (four times slower, on the hot path)."""
        holder = object.__new__(cls)
        object.__setattr__(holder, "__dict__", {
            "family_name": family_name, "given_name": given_name, "family_name_t": family_name_t,
            "given_name_t": given_name_t, "dob": dob})
        return holder

    def display_name(self) -> str:
        """The name as an officer reads it: native form, else the transliterated one."""
        family = self.family_name or (self.family_name_t or "").replace("<", " ")
        given = self.given_name or (self.given_name_t or "").replace("<", " ")
        return " ".join(part for part in (family, given) if part)


DESCRIBE = "_describe"
"""Key, in the dict given to Verdict.complete, of the function that makes the DESCRIBED fields."""
DESCRIBED = frozenset({"holder", "detail", "uci_hash", "issued_at", "expires_at"})


@dataclass(frozen=True)
class Verdict:
    """The outcome of one verification. Only `event_fields()` may leave the unit."""

    result: str
    reason: str
    message_en: str
    message_vi: str
    policy: str | None = None
    cert_type: str | None = None
    holder: Holder | None = field(default=None, repr=False)
    detail: dict[str, Any] = field(default_factory=dict, repr=False)
    issuer: str | None = None
    kid: str | None = None
    issued_at: datetime | None = None
    expires_at: datetime | None = None
    uci_hash: str | None = field(default=None, repr=False)
    trust_version: int | None = None
    format: str = "dcc"
    """The certificate format (verifier.formats): "dcc" (HC1), "shc", or for a red verdict the
    recognised but unsupported "vds-nc", "divoc", or "unknown"."""
    # For developers and the conformance runner only: which step failed and a technical note.
    error_detail: str = field(default="", repr=False, compare=False)

    @classmethod
    def from_fields(cls, values: dict[str, Any]) -> "Verdict":
        """Build from a dict of field values, defaults filled in, without the frozen __init__.

        The generated __init__ of a frozen dataclass sets each of 15 fields through
        object.__setattr__, which costs about 3 us per verdict on the hot path.
        """
        unknown = values.keys() - _VERDICT_FIELDS
        if unknown:
            raise TypeError(f"unknown Verdict fields: {sorted(unknown)}")
        verdict = object.__new__(cls)
        state = verdict.__dict__
        state.update(_VERDICT_DEFAULTS)
        state["detail"] = {}
        state.update(values)
        missing = [name for name in _VERDICT_REQUIRED if name not in values]
        if missing:
            raise TypeError(f"missing Verdict fields: {missing}")
        return verdict

    @classmethod
    def complete(cls, values: dict[str, Any]) -> "Verdict":
        """Build from a dict that becomes the verdict's own (verify()'s, without checks).

        It holds every field, or every field but the DESCRIBED ones and, under the key DESCRIBE,
        a function returning those: they are then made the first time one is read.
        """
        verdict = object.__new__(cls)
        object.__setattr__(verdict, "__dict__", values)
        return verdict

    def __getattr__(self, name: str) -> Any:
        # Only called for a field not made yet (see `complete`); reading it looks like any other.
        state = self.__dict__
        describe = state.get(DESCRIBE)
        if describe is None or name not in DESCRIBED:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        state.update(describe())
        state.pop(DESCRIBE, None)  # another thread may have done it too: the same values
        return state[name]

    @property
    def ok(self) -> bool:
        """True unless red."""
        return self.result != RED

    def event_fields(self) -> dict[str, Any]:
        """The only fields that may be reported off the unit: no personal data."""
        return {
            "result": self.result,
            "reason": self.reason,
            "policy": self.policy,
            "trust_version": self.trust_version,
        }

    def to_json(self) -> dict[str, Any]:
        """Everything as JSON-friendly values (for the local CLI; contains personal data)."""
        holder = None
        if self.holder is not None:
            holder = {
                "family_name": self.holder.family_name,
                "given_name": self.holder.given_name,
                "family_name_t": self.holder.family_name_t,
                "given_name_t": self.holder.given_name_t,
                "dob": self.holder.dob,
            }
        return {
            "result": self.result,
            "reason": self.reason,
            "message_en": self.message_en,
            "message_vi": self.message_vi,
            "policy": self.policy,
            "cert_type": self.cert_type,
            "holder": holder,
            "detail": dict(self.detail),
            "issuer": self.issuer,
            "kid": self.kid,
            "issued_at": self.issued_at.isoformat() if self.issued_at else None,
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
            "uci_hash": self.uci_hash,
            "trust_version": self.trust_version,
            "format": self.format,
        }


# A dataclass default is also a class attribute, which would answer for a field not made yet
# instead of Verdict.__getattr__; the generated __init__ keeps its own copy of each default.
for _name in DESCRIBED:
    if _name in vars(Verdict):
        delattr(Verdict, _name)

_VERDICT_FIELDS = frozenset(f.name for f in fields(Verdict))
_VERDICT_REQUIRED = tuple(f.name for f in fields(Verdict) if f.default is MISSING and f.default_factory is MISSING)
_VERDICT_DEFAULTS = {f.name: f.default for f in fields(Verdict) if f.default is not MISSING}


def red_verdict(error: VerificationError, **context: Any) -> Verdict:
    """A red verdict for a verification error, keeping whatever was already learnt."""
    values = {k: v for k, v in context.items() if k in _VERDICT_FIELDS}
    values.update(result=RED, reason=error.code, message_en=error.message_en,
                  message_vi=error.message_vi, error_detail=error.detail)
    return Verdict.from_fields(values)
