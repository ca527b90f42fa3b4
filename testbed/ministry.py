"""A test ministry with real keys and certificates (tests get it as the `ministry` fixture).

Use it from any test:

    def test_something(ministry):
        issued = ministry.issue_vaccination(doses=[(2, 2, "2021-09-01", "pfizer")], now=NOW)
        verdict = verify(issued.hc1, ministry.trust_store(), NOW, builtin_policy("vn-2021"))

API (all keys live in memory only; nothing is written to disk):
- `csca`, `csca_key`: the root certificate and key.
- `dscs`: {"general": v/t/r, "vaccination": v, "test": t, "recovery": r} -> `Signer` (`.key`,
  `.certificate`, `.kid`, `.types`); `general` is `dscs["general"]`. `rogue`: a DSC under another
  CSCA that no trust store knows (for forgeries).
- `trust_key`, `anchor_pem` (bytes): the trust-list signing key and the PEM units pin.
- `revoked_uci`: a certificate identifier that every bundle and trust store made here revokes.
- `bundle(version=1, revoked_ucis=(), policies=None, signer=None, *, issued_at=None,
  next_update=None, dscs=None) -> bytes`: a signed `chot-trust-bundle/1`; `policies=None` means
  the shipped policies; `signer` is another trust-list key to sign with; `roster_keys` PEM
  public keys of officer-roster signers.
- `trust_store(revoked_ucis=(), version=1)`: a `verifier.TrustStore` parsed from such a bundle.
- `issue(dcc, *, signer=None, issued_at=None, expires_at=None, now=None, kid=None)`,
  `issue_vaccination(person=None, doses=[(dn, sd, date, product)], ...)` (one certificate for the
  last dose listed), `issue_test(person=None, sampled_at=None, result="negative", test_type="pcr", ...)`,
  `issue_recovery(person=None, first_positive=None, ...)` -> `Issued(hc1, uci, person, dcc, kind,
  kid)`. Without a `person`, a synthetic one is drawn; CWT iat defaults to an hour before `now`
  (default: the real clock) and exp to a year after.
- `samples(now) -> list[Sample]`: certificates of every kind plus broken inputs, each with
  `expected` ({policy name: colour}, only where the policy text pins it) and, for verification
  failures, the red `reason` code every policy must give.
"""

from __future__ import annotations

import datetime as dt
import random
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import cbor2

from keys import bundle as bundle_mod
from keys import ca, dcc, hc1
from keys.ministry import Signer
from keys.people import Person, synthetic_person
from verifier.base45 import b45encode
from verifier.revocation import uci_hash

UTC = dt.timezone.utc
# Wide validity so tests may judge at any time from 2021 (the scenario) to the real present.
CERT_START = dt.datetime(2020, 1, 1, tzinfo=UTC)
POLICIES = ("vn-2021", "workplace", "eu-validity")


@dataclass(frozen=True)
class Issued:
    """One issued certificate; `person`, `uci` and `hc1` are personal data: keep them out of logs."""

    hc1: str
    uci: str
    person: Person
    dcc: dict[str, Any] = field(repr=False)
    kind: str
    kid: bytes

    def __repr__(self) -> str:
        return f"Issued(kind={self.kind!r}, kid={self.kid.hex()})"


@dataclass(frozen=True)
class Sample:
    """A payload and what a verifier must make of it."""

    name: str
    payload: str
    expected: dict[str, str]
    reason: str | None = None
    issued: Issued | None = None

    def __repr__(self) -> str:
        return f"Sample({self.name!r})"


def _every_policy(colour: str) -> dict[str, str]:
    return {name: colour for name in POLICIES}


class Ministry:
    """A ministry with a CSCA, a general and type-restricted DSCs, and a trust-list key."""

    def __init__(self, seed: int = 2021) -> None:
        self._rng = random.Random(seed)
        self.csca_key = ca.generate_key()
        self.csca = ca.make_csca(self.csca_key, not_before=CERT_START, days=5475)
        self.dscs: dict[str, Signer] = {}
        for name, types in {"general": ca.ALL_TYPES, "vaccination": ("v",), "test": ("t",),
                            "recovery": ("r",)}.items():
            key = ca.generate_key()
            cert = ca.make_dsc(self.csca, self.csca_key, key.public_key(), types=types,
                               common_name=f"DSC {name}", not_before=CERT_START, days=5000)
            self.dscs[name] = Signer(name, key, cert)
        self.general = self.dscs["general"]
        rogue_root_key = ca.generate_key()
        rogue_root = ca.make_csca(rogue_root_key, common_name="Rogue CSCA", not_before=CERT_START)
        rogue_key = ca.generate_key()
        self.rogue = Signer("rogue", rogue_key, ca.make_dsc(rogue_root, rogue_root_key, rogue_key.public_key(),
                                                            common_name="Rogue DSC", not_before=CERT_START))
        self.trust_key = ca.generate_trust_list_key()
        self.anchor_pem = ca.anchor_pem(self.trust_key)
        self.revoked_uci = dcc.new_uci(self._rng)

    # -- trust ------------------------------------------------------------------------------

    def bundle(self, version: int = 1, revoked_ucis: Iterable[str] = (), policies: dict[str, Any] | None = None,
               signer: Any = None, *, issued_at: dt.datetime | None = None, next_update: dt.datetime | None = None,
               dscs: Sequence[Any] | None = None, value_sets: dict[str, Any] | None = None,
               roster_keys: Sequence[str] = ()) -> bytes:
        """A signed trust bundle holding every DSC (not the rogue), the revocations, and `value_sets`
        and `roster_keys` if given."""
        issued_at = issued_at or dt.datetime.now(UTC).replace(microsecond=0)
        ucis = [self.revoked_uci, *revoked_ucis]
        return bundle_mod.make_bundle(
            signer or self.trust_key, version=version,
            dscs=[s.certificate for s in self.dscs.values()] if dscs is None else dscs,
            revocations={"UCI": [uci_hash(u) for u in ucis]},
            policies=bundle_mod.builtin_policy_documents() if policies is None else policies,
            issued_at=issued_at, next_update=next_update or issued_at + dt.timedelta(days=1),
            value_sets=value_sets, roster_keys=roster_keys)

    def trust_store(self, revoked_ucis: Iterable[str] = (), version: int = 1,
                    value_sets: dict[str, Any] | None = None) -> Any:
        """A verifier.TrustStore read back from a bundle, as a unit would get it."""
        from verifier.bundle import parse_bundle

        data = self.bundle(version=version, revoked_ucis=revoked_ucis, policies={}, value_sets=value_sets)
        return parse_bundle(data, self.anchor_pem).trust_store()

    # -- issuing ----------------------------------------------------------------------------

    def person(self) -> Person:
        """A fresh synthetic person (deterministic within the session)."""
        return synthetic_person(self._rng)

    def issue(self, document: dict[str, Any], *, signer: Signer | None = None, issued_at: dt.datetime | None = None,
              expires_at: dt.datetime | None = None, now: dt.datetime | None = None, kid: bytes | None = None,
              person: Person | None = None) -> Issued:
        """Sign any DCC document; `kid` overrides the signer's (for forgeries)."""
        signer = signer or self.general
        moment = now or dt.datetime.now(UTC)
        iat = issued_at or moment - dt.timedelta(hours=1)
        exp = expires_at or iat + dt.timedelta(days=365)
        text = hc1.encode(document, signer.key, kid or signer.kid, issuer="VN", issued_at=iat, expires_at=exp)
        holder = person or Person.from_mapping({**document["nam"], "dob": document["dob"]})
        return Issued(text, dcc.uci_of(document), holder, document, dcc.kind_of(document), kid or signer.kid)

    def issue_vaccination(self, person: Person | None = None,
                          doses: Sequence[tuple[int, int, dt.date | str, str]] | None = None, *,
                          uci: str | None = None, **issue_args: Any) -> Issued:
        """A vaccination certificate for the last of `doses` (dn, sd, date, product); default 2/2 Pfizer 30 days ago."""
        person = person or self.person()
        now = issue_args.get("now") or dt.datetime.now(UTC)
        doses = doses or [(2, 2, (now - dt.timedelta(days=30)).date(), "pfizer")]
        dn, sd, date, product = doses[-1]
        document = dcc.vaccination(person, dn, sd, date, product, uci=uci or dcc.new_uci(self._rng))
        return self.issue(document, person=person, **issue_args)

    def issue_test(self, person: Person | None = None, sampled_at: dt.datetime | None = None, *,
                   result: str = "negative", test_type: str = "pcr", uci: str | None = None,
                   **issue_args: Any) -> Issued:
        """A test certificate; default a negative PCR sampled a day before `now`."""
        person = person or self.person()
        now = issue_args.get("now") or dt.datetime.now(UTC)
        sampled_at = sampled_at or now - dt.timedelta(days=1)
        document = dcc.covid_test(person, sampled_at, result=result, test_type=test_type,
                                  uci=uci or dcc.new_uci(self._rng))
        return self.issue(document, person=person, **issue_args)

    def issue_recovery(self, person: Person | None = None, first_positive: dt.date | None = None, *,
                       uci: str | None = None, **issue_args: Any) -> Issued:
        """A recovery certificate; default first positive 30 days before `now`, valid 11 to 180 days after."""
        person = person or self.person()
        now = issue_args.get("now") or dt.datetime.now(UTC)
        first_positive = first_positive or (now - dt.timedelta(days=30)).date()
        document = dcc.recovery(person, first_positive, uci=uci or dcc.new_uci(self._rng))
        return self.issue(document, person=person, **issue_args)

    # -- samples ----------------------------------------------------------------------------

    def samples(self, now: dt.datetime) -> list[Sample]:
        """Certificates of every kind and broken inputs, with the colour each policy must give."""
        day, hour = dt.timedelta(days=1), dt.timedelta(hours=1)
        ago = lambda days: (now - days * day).date()  # noqa: E731 (reads best inline)
        out: list[Sample] = []

        def good(name: str, issued: Issued, vn: str, workplace: str, eu: str | None) -> None:
            expected = {"vn-2021": vn, "workplace": workplace}
            if eu is not None:
                expected["eu-validity"] = eu
            out.append(Sample(name, issued.hc1, expected, None, issued))

        def bad(name: str, payload: str, reason: str, issued: Issued | None = None) -> None:
            out.append(Sample(name, payload, _every_policy("red"), reason, issued))

        vaccinate = lambda dn, sd, days, product, **kw: self.issue_vaccination(  # noqa: E731
            doses=[(dn, sd, ago(days), product)], now=now, **kw)
        good("complete_series", vaccinate(2, 2, 30, "pfizer"), "green", "green", "green")
        good("one_dose", vaccinate(1, 2, 30, "astrazeneca"), "yellow", "red", "green")
        good("recent_dose", vaccinate(1, 2, 5, "sinopharm"), "red", "red", "green")
        good("recent_complete_series", vaccinate(2, 2, 5, "sinopharm"), "red", "green", "green")
        good("booster", vaccinate(3, 3, 20, "moderna"), "green", "green", "green")
        good("janssen", vaccinate(1, 1, 30, "janssen"), "green", "green", "green")
        good("restricted_dsc_vaccination",
             self.issue_vaccination(doses=[(2, 2, ago(60), "astrazeneca")], now=now,
                                    signer=self.dscs["vaccination"]), "green", "green", "green")
        good("negative_test", self.issue_test(sampled_at=now - day, now=now), "yellow", "green", "green")
        good("negative_rapid_test", self.issue_test(sampled_at=now - 10 * hour, test_type="rat", now=now),
             "yellow", "green", "green")
        good("old_test", self.issue_test(sampled_at=now - 5 * day, now=now), "red", "red", "green")
        good("positive_test", self.issue_test(sampled_at=now - day, result="positive", now=now), "red", "red", "green")
        good("recovery", self.issue_recovery(first_positive=ago(30), now=now), "green", "green", "green")
        good("old_recovery", self.issue_recovery(first_positive=ago(200), now=now), "red", "red", "red")

        bad("expired_cwt", vaccinate(2, 2, 400, "pfizer", issued_at=now - 380 * day,
                                     expires_at=now - 15 * day).hc1, "cwt_expired")
        bad("cwt_not_yet_valid", vaccinate(2, 2, 30, "pfizer", issued_at=now + 2 * day,
                                           expires_at=now + 300 * day).hc1, "cwt_not_yet_valid")
        revoked = self.issue_vaccination(doses=[(2, 2, ago(30), "pfizer")], now=now, uci=self.revoked_uci)
        bad("revoked", revoked.hc1, "revoked", revoked)
        bad("forged_unknown_kid", vaccinate(2, 2, 30, "pfizer", signer=self.rogue).hc1, "kid_unknown")
        bad("forged_known_kid", vaccinate(2, 2, 30, "pfizer", signer=self.rogue, kid=self.general.kid).hc1,
            "signature")
        wrong_type = self.issue_test(sampled_at=now - day, now=now, signer=self.dscs["vaccination"])
        bad("wrong_key_usage", wrong_type.hc1, "key_usage", wrong_type)
        original = vaccinate(2, 2, 30, "pfizer")
        bad("tampered", tamper(original.hc1, original.person.family_name_t.encode()), "signature", original)
        bad("garbage_text", "hello, checkpoint", "prefix")
        bad("garbage_base45", "HC1:this is not base45 ~~~", "base45")
        bad("garbage_zlib", "HC1:" + b45encode(b"definitely not zlib data"), "zlib")
        bad("garbage_cose", "HC1:" + b45encode(zlib.compress(b"\x01\x02\x03 not cbor")), "cose")
        bomb = zlib.compress(b"\x00" * (4 * 1024 * 1024), 9)
        bad("zlib_bomb", "HC1:" + b45encode(bomb), "zlib_bomb")
        return out


def tamper(text: str, needle: bytes) -> str:
    """Change one byte of the signed CWT (inside `needle`) and re-wrap, keeping the old signature."""
    message = cbor2.loads(hc1.unwrap(text)).value
    protected, unprotected, payload, signature = message
    at = payload.index(needle) + len(needle) - 1
    swapped = b"B" if payload[at:at + 1] != b"B" else b"C"
    forged = payload[:at] + swapped + payload[at + 1:]
    return hc1.wrap(cbor2.dumps(cbor2.CBORTag(hc1.COSE_SIGN1_TAG, [protected, dict(unprotected), forged, signature])))
