"""The demo's ministry and the people who pass the checkpoints, with certificates of every kind.

Everything is made fresh in the demo's own folder: a ministry (CSCA, DSCs, trust-list key), a
rogue signer nobody trusts (for forgeries), and a few hundred synthetic people. What the units
show comes from these certificates; nothing here is written to a log.
"""

from __future__ import annotations

import datetime as dt
import random
import zlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import cbor2

from keys import ca, dcc, hc1, revoke
from keys.issue import sign
from keys.ministry import MinistryDir, Signer, init_ministry
from keys.people import Person, synthetic_person
from verifier.base45 import b45encode

# Share of each kind in the crowd (weights). Most people carry a good certificate, as in 2021.
MIX: dict[str, int] = {
    "complete_series": 34, "booster": 8, "janssen": 4, "one_dose": 12, "recent_dose": 5,
    "negative_test": 8, "old_test": 3, "positive_test": 2, "recovery": 5,
    "expired": 3, "revoked": 3, "forged": 3, "tampered": 3, "garbage": 3,
}


@dataclass(frozen=True)
class DemoCertificate:
    """One person's code as the camera will see it; `kind` says what it was made to be."""

    kind: str
    payload: str


def make_ministry(root: Path, passphrase: str, now: dt.datetime) -> MinistryDir:
    """A fresh demo ministry with one DSC per certificate type."""
    return init_ministry(root, passphrase, now=now - dt.timedelta(days=400))


def rogue_signer(now: dt.datetime) -> Signer:
    """A DSC under a CSCA that no trust bundle lists: what a forger would have."""
    csca_key = ca.generate_key()
    csca = ca.make_csca(csca_key, common_name="CSCA forged", not_before=now - dt.timedelta(days=30))
    key = ca.generate_key()
    cert = ca.make_dsc(csca, csca_key, key.public_key(), types=("v", "t", "r"), common_name="DSC forged",
                       not_before=now - dt.timedelta(days=30))
    return Signer("rogue", key, cert)


def _tamper(text: str, rng: random.Random) -> str:
    """Change one byte of the signed payload and keep the old signature."""
    tag = cbor2.loads(hc1.unwrap(text))
    protected, unprotected, payload, signature = tag.value
    at = rng.randrange(len(payload) // 2, len(payload) - 1)
    forged = payload[:at] + bytes([payload[at] ^ 0x01]) + payload[at + 1:]
    return hc1.wrap(cbor2.dumps(cbor2.CBORTag(hc1.COSE_SIGN1_TAG, [protected, unprotected, forged, signature])))


def _garbage(rng: random.Random) -> str:
    """Codes that are not certificates: a URL, broken Base45, a zlib stream of junk."""
    choice = rng.randrange(3)
    if choice == 0:
        return f"https://example.invalid/pass/{rng.getrandbits(64):016x}"
    if choice == 1:
        return "HC1:" + "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") for _ in range(120)) + "~"
    return "HC1:" + b45encode(zlib.compress(bytes(rng.getrandbits(8) for _ in range(200))))


def make_population(ministry: MinistryDir, passphrase: str, count: int, seed: int,
                    now: dt.datetime) -> list[DemoCertificate]:
    """`count` certificates in the MIX proportions; revoked ones are added to the ministry's list."""
    rng = random.Random(seed)
    signers = {kind: ministry.signer(passphrase, kind[0], now=now) for kind in ("vaccination", "test", "recovery")}
    rogue = rogue_signer(now)
    def ago(days: int) -> dt.date:
        return (now - dt.timedelta(days=days)).date()

    revocations = revoke.RevocationStore(ministry)

    def vaccinated(person: Person, dn: int, sd: int, days: int, vaccine: str) -> dict:
        return dcc.vaccination(person, dn, sd, ago(days), vaccine, uci=dcc.new_uci(rng))

    def signed(document: dict, signer: Signer | None = None, **kw: dt.timedelta) -> str:
        kind = {"v": "vaccination", "t": "test", "r": "recovery"}[dcc.kind_of(document)]
        return sign(document, signer or signers[kind], now=now, **kw)

    out: list[DemoCertificate] = []
    kinds = list(MIX)
    weights = [MIX[k] for k in kinds]
    for _ in range(count):
        kind = rng.choices(kinds, weights)[0]
        person = synthetic_person(rng)
        two_dose = rng.choice(["astrazeneca", "pfizer", "moderna", "sinopharm", "sputnik-v"])
        if kind == "complete_series":
            text = signed(vaccinated(person, 2, 2, rng.randint(15, 150), two_dose))
        elif kind == "booster":
            text = signed(vaccinated(person, 3, 3, rng.randint(15, 90), rng.choice(["pfizer", "moderna"])))
        elif kind == "janssen":
            text = signed(vaccinated(person, 1, 1, rng.randint(15, 150), "janssen"))
        elif kind == "one_dose":
            text = signed(vaccinated(person, 1, 2, rng.randint(15, 80), two_dose))
        elif kind == "recent_dose":
            text = signed(vaccinated(person, 1, 2, rng.randint(1, 12), two_dose))
        elif kind in ("negative_test", "old_test", "positive_test"):
            hours = rng.randint(2, 60) if kind != "old_test" else rng.randint(80, 200)
            result = "positive" if kind == "positive_test" else "negative"
            text = signed(dcc.covid_test(person, now - dt.timedelta(hours=hours), result=result,
                                         test_type=rng.choice(["pcr", "rat"]), uci=dcc.new_uci(rng)))
        elif kind == "recovery":
            text = signed(dcc.recovery(person, ago(rng.randint(15, 150)), uci=dcc.new_uci(rng)))
        elif kind == "expired":
            document = vaccinated(person, 2, 2, 500, two_dose)
            text = hc1.encode(document, signers["vaccination"].key, signers["vaccination"].kid, issuer=dcc.COUNTRY,
                              issued_at=now - dt.timedelta(days=420), expires_at=now - dt.timedelta(days=55))
        elif kind == "revoked":
            document = vaccinated(person, 2, 2, rng.randint(20, 90), two_dose)
            revocations.add(revoke.hashes_for_uci(dcc.uci_of(document), dcc.COUNTRY))
            text = signed(document)
        elif kind == "forged":
            text = signed(vaccinated(person, 2, 2, rng.randint(20, 90), two_dose), signer=rogue)
        elif kind == "tampered":
            text = _tamper(signed(vaccinated(person, 1, 2, rng.randint(20, 90), two_dose)), rng)
        else:
            text = _garbage(rng)
        out.append(DemoCertificate(kind, text))
    return out


def describe(population: list[DemoCertificate]) -> str:
    """One line: how many of each kind (no personal data)."""
    counts = Counter(c.kind for c in population)
    return ", ".join(f"{k} {counts[k]}" for k in MIX if counts[k])
