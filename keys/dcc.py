"""Build DCC JSON (schema 1.3.x) for vaccination, test and recovery, and make certificate identifiers."""

from __future__ import annotations

import datetime as dt
import random
import secrets
import string
from dataclasses import dataclass
from typing import Any

from keys.errors import InvalidCertificateRequest
from keys.people import Person

SCHEMA_VERSION = "1.3.0"
COUNTRY = "VN"
ISSUER = "Ministry of Health of Viet Nam"
DISEASE_COVID19 = "840539006"
_UCI_ALPHABET = string.ascii_uppercase + string.digits
_MRNA = "1119349007"
_VACCINE = "J07BX03"


@dataclass(frozen=True)
class Product:
    """A vaccine as the DCC value sets code it, with its usual number of doses in a series."""

    mp: str
    ma: str
    vp: str
    series_doses: int


# Vaccines given in Vietnam in 2021 (see ../shared/reference/SOURCE.md), by a short name.
PRODUCTS: dict[str, Product] = {
    "astrazeneca": Product("EU/1/21/1529", "ORG-100001699", _VACCINE, 2),
    "pfizer": Product("EU/1/20/1528", "ORG-100030215", _MRNA, 2),
    "moderna": Product("EU/1/20/1507", "ORG-100031184", _MRNA, 2),
    "sinopharm": Product("BBIBP-CorV", "ORG-100020693", _VACCINE, 2),
    "sinopharm-vero": Product("Inactivated-SARS-CoV-2-Vero-Cell", "ORG-100010771", _VACCINE, 2),
    "sputnik-v": Product("Sputnik-V", "Gamaleya-Research-Institute", _VACCINE, 2),
    "janssen": Product("EU/1/20/1525", "ORG-100001417", _VACCINE, 1),
    "abdala": Product("Abdala", "CIGB", _VACCINE, 3),
}
TEST_TYPES = {"pcr": "LP6464-4", "rat": "LP217198-3"}
TEST_RESULTS = {"negative": "260415000", "positive": "260373001"}
# Panbio (Abbott), a rapid antigen test on the EU common list; RAT entries must name one.
DEFAULT_RAT_DEVICE = "1232"


def product(name_or_code: str) -> Product:
    """Look a vaccine up by short name (pfizer) or medicinal product code (EU/1/20/1528)."""
    found = PRODUCTS.get(name_or_code.lower())
    if found is None:
        found = next((p for p in PRODUCTS.values() if p.mp == name_or_code), None)
    if found is None:
        known = ", ".join(sorted(PRODUCTS))
        raise InvalidCertificateRequest(f"unknown vaccine {name_or_code!r} (known: {known}, or their mp codes)")
    return found


def new_uci(rng: random.Random | None = None, country: str = COUNTRY) -> str:
    """A fresh unique certificate identifier, URN:UVCI:01:<country>:<26 random characters>."""
    pick = rng.choice if rng is not None else secrets.choice
    return f"URN:UVCI:01:{country}:" + "".join(pick(_UCI_ALPHABET) for _ in range(26))


def _date(value: dt.date | str, label: str) -> str:
    if isinstance(value, dt.datetime):
        value = value.date()
    if isinstance(value, dt.date):
        return value.isoformat()
    try:
        return dt.date.fromisoformat(value).isoformat()
    except (TypeError, ValueError):
        raise InvalidCertificateRequest(f"{label} must be a date YYYY-MM-DD, got {value!r}") from None


def _datetime(value: dt.datetime | str, label: str) -> str:
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise InvalidCertificateRequest(f"{label} must be an ISO date-time, got {value!r}") from None
    if value.tzinfo is None:
        raise InvalidCertificateRequest(f"{label} needs a time zone (for example ...Z)")
    return value.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _document(person: Person, group: str, entry: dict[str, Any]) -> dict[str, Any]:
    return {"ver": SCHEMA_VERSION, "nam": person.nam(), "dob": person.dob, group: [entry]}


def vaccination(person: Person, dn: int, sd: int, date: dt.date | str, vaccine: str, *,
                uci: str | None = None, country: str = COUNTRY, issuer: str = ISSUER) -> dict[str, Any]:
    """A vaccination DCC for dose `dn` of a series of `sd` (dn > sd is a booster, e.g. 3/3 or 2/1)."""
    for label, value in (("dn", dn), ("sd", sd)):
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 9:
            raise InvalidCertificateRequest(f"{label} must be a whole number from 1 to 9, got {value!r}")
    prod = product(vaccine)
    entry = {"tg": DISEASE_COVID19, "vp": prod.vp, "mp": prod.mp, "ma": prod.ma, "dn": dn, "sd": sd,
             "dt": _date(date, "vaccination date"), "co": country, "is": issuer,
             "ci": uci or new_uci(country=country)}
    return _document(person, "v", entry)


def covid_test(person: Person, sampled_at: dt.datetime | str, *, result: str = "negative", test_type: str = "pcr",
         centre: str = "Trung tâm Kiểm soát Bệnh tật", device: str | None = None, uci: str | None = None,
         country: str = COUNTRY, issuer: str = ISSUER) -> dict[str, Any]:
    """A test DCC: `result` negative|positive, `test_type` pcr|rat (a RAT names its device, `ma`)."""
    if result not in TEST_RESULTS:
        raise InvalidCertificateRequest(f"test result must be one of {', '.join(TEST_RESULTS)}, got {result!r}")
    if test_type not in TEST_TYPES:
        raise InvalidCertificateRequest(f"test type must be one of {', '.join(TEST_TYPES)}, got {test_type!r}")
    entry: dict[str, Any] = {"tg": DISEASE_COVID19, "tt": TEST_TYPES[test_type],
                             "sc": _datetime(sampled_at, "sample time"), "tr": TEST_RESULTS[result],
                             "tc": centre, "co": country, "is": issuer, "ci": uci or new_uci(country=country)}
    if test_type == "rat":
        entry["ma"] = device or DEFAULT_RAT_DEVICE
    return _document(person, "t", entry)


def recovery(person: Person, first_positive: dt.date | str, *, valid_from: dt.date | str | None = None,
             valid_until: dt.date | str | None = None, uci: str | None = None, country: str = COUNTRY,
             issuer: str = ISSUER) -> dict[str, Any]:
    """A recovery DCC; by default valid from 11 days to 180 days after the first positive test."""
    fr = dt.date.fromisoformat(_date(first_positive, "first positive test date"))
    df = _date(valid_from, "valid-from date") if valid_from else (fr + dt.timedelta(days=11)).isoformat()
    du = _date(valid_until, "valid-until date") if valid_until else (fr + dt.timedelta(days=180)).isoformat()
    if du < df:
        raise InvalidCertificateRequest("a recovery certificate cannot end before it starts")
    entry = {"tg": DISEASE_COVID19, "fr": fr.isoformat(), "co": country, "is": issuer,
             "df": df, "du": du, "ci": uci or new_uci(country=country)}
    return _document(person, "r", entry)


def kind_of(dcc: dict[str, Any]) -> str:
    """The certificate type letter: v, t or r."""
    for kind in ("v", "t", "r"):
        if dcc.get(kind):
            return kind
    raise InvalidCertificateRequest("the DCC holds no vaccination, test or recovery entry")


def uci_of(dcc: dict[str, Any]) -> str:
    """The certificate identifier (ci) of the DCC's entry."""
    return str(dcc[kind_of(dcc)][0]["ci"])
