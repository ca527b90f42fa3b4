"""Issue certificates from a ministry directory: for one person, or for synthetic people in bulk."""

from __future__ import annotations

import datetime as dt
import json
import logging
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from keys import dcc, hc1, qr
from keys.errors import KeysError
from keys.ministry import MinistryDir, Signer
from keys.people import Person, synthetic_person

logger = logging.getLogger(__name__)

KIND_LETTERS = {"vaccination": "v", "test": "t", "recovery": "r"}
DEFAULT_VALIDITY = dt.timedelta(days=365)


@dataclass(frozen=True)
class IssuedFile:
    """What bulk issuing wrote for one certificate; no personal data, so it may go in a manifest."""

    index: int
    kind: str
    text_file: str
    png_file: str
    kid: str
    summary: dict[str, Any]


def sign(document: dict[str, Any], signer: Signer, *, now: dt.datetime,
         validity: dt.timedelta = DEFAULT_VALIDITY) -> str:
    """Sign a DCC with a DSC: issued now, valid for `validity`."""
    issued_at = now.replace(microsecond=0)
    return hc1.encode(document, signer.key, signer.kid, issuer=dcc.COUNTRY, issued_at=issued_at,
                      expires_at=issued_at + validity)


def _summary(document: dict[str, Any]) -> dict[str, Any]:
    kind = dcc.kind_of(document)
    entry = document[kind][0]
    keep = {"v": ("dn", "sd", "mp", "dt"), "t": ("tt", "tr", "sc"), "r": ("fr", "df", "du")}[kind]
    return {key: entry[key] for key in keep}


def document_for(kind: str, person: Person, *, now: dt.datetime, dose: tuple[int, int] = (2, 2),
                 vaccine: str = "pfizer", event_date: dt.date | str | None = None,
                 sampled_at: dt.datetime | str | None = None, result: str = "negative",
                 test_type: str = "pcr") -> dict[str, Any]:
    """The DCC of one `kind` (vaccination|test|recovery); dates default to 30 days (a day for tests) before now."""
    month_ago = (now - dt.timedelta(days=30)).date()
    if kind == "vaccination":
        return dcc.vaccination(person, dose[0], dose[1], event_date or month_ago, vaccine)
    if kind == "test":
        return dcc.covid_test(person, sampled_at or now - dt.timedelta(days=1), result=result, test_type=test_type)
    if kind == "recovery":
        return dcc.recovery(person, event_date or month_ago)
    raise KeysError(f"unknown certificate kind {kind!r}: use vaccination, test or recovery")


def random_document(rng: random.Random, person: Person, now: dt.datetime) -> dict[str, Any]:
    """A plausible certificate for `person` at `now`: mostly vaccinations of every stage, some tests and recoveries."""
    roll = rng.random()
    uci = dcc.new_uci(rng)
    if roll < 0.6:
        name = rng.choice(["astrazeneca", "pfizer", "moderna", "sinopharm", "sputnik-v", "janssen", "abdala"])
        series = dcc.product(name).series_doses
        dn = rng.randint(1, series + 1)  # partial, complete or a booster
        return dcc.vaccination(person, dn, series, (now - dt.timedelta(days=rng.randint(1, 150))).date(), name, uci=uci)
    if roll < 0.85:
        return dcc.covid_test(person, now - dt.timedelta(hours=rng.randint(1, 120)),
                              result="negative" if rng.random() < 0.9 else "positive",
                              test_type=rng.choice(["pcr", "rat"]), uci=uci)
    return dcc.recovery(person, (now - dt.timedelta(days=rng.randint(12, 170))).date(), uci=uci)


def issue_bulk(ministry: MinistryDir, passphrase: str, count: int, seed: int | str, out_dir: Path, *,
               now: dt.datetime | None = None) -> list[IssuedFile]:
    """Issue `count` certificates for synthetic people: HC1 text files, QR PNGs and manifest.json."""
    if count < 1 or count > 100_000:
        raise KeysError("count must be between 1 and 100000")
    moment = now or dt.datetime.now(dt.timezone.utc)
    rng = random.Random(f"chot-bulk-{seed}")
    out_dir.mkdir(parents=True, exist_ok=True)
    signers: dict[str, Signer] = {}
    written: list[IssuedFile] = []
    for index in range(count):
        document = random_document(rng, synthetic_person(rng), moment)
        kind = dcc.kind_of(document)
        if kind not in signers:
            signers[kind] = ministry.signer(passphrase, kind, now=moment)
        text = sign(document, signers[kind], now=moment)
        stem = f"{index:05d}-{kind}"
        (out_dir / f"{stem}.hc1.txt").write_text(text + "\n", encoding="ascii")
        qr.write_png(text, out_dir / f"{stem}.png")
        written.append(IssuedFile(index, kind, f"{stem}.hc1.txt", f"{stem}.png",
                                  signers[kind].kid.hex(), _summary(document)))
    manifest = {"count": count, "seed": str(seed), "issued_at": moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "certificates": [item.__dict__ for item in written]}
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    logger.info("issued %d certificates into %s", count, out_dir)
    return written
