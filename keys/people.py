"""Synthetic people with Vietnamese names, and ICAO 9303 transliteration for `fnt`/`gnt`.

Everything here is made up and deterministic for a given seed, so tests and demos never need
real personal data.
"""

from __future__ import annotations

import datetime as dt
import random
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from keys.errors import InvalidPerson

# Đ/đ carry no combining mark, so Unicode decomposition alone would drop them; ICAO maps them to D.
_NO_DECOMPOSITION = str.maketrans({"Đ": "D", "đ": "d", "Ð": "D", "ð": "d", "Ø": "OE", "ø": "oe",
                                   "ß": "SS", "Æ": "AE", "æ": "ae", "Ł": "L", "ł": "l"})
_SEPARATORS = re.compile(r"[\s\-,]+")
_DOB = re.compile(r"^(19|20)\d\d(-\d\d){0,2}$")

FAMILY_NAMES = ("Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Huỳnh", "Phan", "Vũ", "Võ", "Đặng",
                "Bùi", "Đỗ", "Hồ", "Ngô", "Dương", "Lý", "Trương", "Đinh", "Lương", "Tạ")
MIDDLE_NAMES_MALE = ("Văn", "Hữu", "Đức", "Minh", "Quốc", "Công", "Thành", "Xuân", "Đình", "")
MIDDLE_NAMES_FEMALE = ("Thị", "Ngọc", "Thu", "Thanh", "Minh", "Diệu", "Khánh", "Bảo", "Phương", "")
GIVEN_NAMES_MALE = ("An", "Bình", "Dũng", "Đạt", "Đông", "Hải", "Hiếu", "Hùng", "Huy", "Khang",
                    "Khoa", "Long", "Nam", "Phúc", "Quân", "Sơn", "Thắng", "Trung", "Tuấn", "Việt")
GIVEN_NAMES_FEMALE = ("Anh", "Châu", "Chi", "Giang", "Hà", "Hằng", "Hoa", "Hương", "Lan", "Linh",
                      "Mai", "My", "Nga", "Ngân", "Nhung", "Thảo", "Trang", "Tuyết", "Vy", "Yến")


def icao_transliterate(name: str) -> str:
    """Transliterate a name per ICAO 9303 part 3: A-Z only, separators as '<' (Nguyễn Văn An -> NGUYEN<VAN<AN)."""
    plain = unicodedata.normalize("NFKD", name.translate(_NO_DECOMPOSITION))
    letters = "".join(ch for ch in plain if not unicodedata.combining(ch))
    words = [re.sub(r"[^A-Z]", "", word) for word in _SEPARATORS.split(letters.upper())]
    return "<".join(word for word in words if word)


@dataclass(frozen=True, repr=False)
class Person:
    """A certificate holder: native names, ICAO transliterations and date of birth (ISO, may be partial)."""

    family_name: str
    given_name: str
    dob: str
    family_name_t: str = ""
    given_name_t: str = ""

    def __post_init__(self) -> None:
        # Fill transliterations so a person built from native names alone is complete.
        if not self.family_name_t:
            object.__setattr__(self, "family_name_t", icao_transliterate(self.family_name))
        if not self.given_name_t:
            object.__setattr__(self, "given_name_t", icao_transliterate(self.given_name))
        for label, value in (("family_name_t", self.family_name_t), ("given_name_t", self.given_name_t)):
            if not re.fullmatch(r"[A-Z<]*", value) or len(value) > 80:
                raise InvalidPerson(f"{label} must be A-Z and '<', at most 80 characters")
        if not (self.family_name_t or self.given_name_t):
            raise InvalidPerson("a family name or a given name is required")
        if len(self.family_name) > 80 or len(self.given_name) > 80:
            raise InvalidPerson("names are limited to 80 characters")
        if not _DOB.fullmatch(self.dob) and self.dob != "":
            raise InvalidPerson("dob must be YYYY, YYYY-MM or YYYY-MM-DD between 1900 and 2099")

    def __repr__(self) -> str:
        # Personal data must not reach logs or tracebacks by accident.
        return "Person(<redacted>)"

    @property
    def full_name_t(self) -> str:
        """The whole transliterated name, family name first (NGUYEN<VAN<AN)."""
        return "<".join(part for part in (self.family_name_t, self.given_name_t) if part)

    def nam(self) -> dict[str, str]:
        """The DCC `nam` object."""
        nam = {"fn": self.family_name, "fnt": self.family_name_t,
               "gn": self.given_name, "gnt": self.given_name_t}
        return {key: value for key, value in nam.items() if value}

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Person:
        """Build from JSON: DCC keys (fn, gn, fnt, gnt, dob) or long keys (family_name, given_name, ...)."""
        if not isinstance(data, Mapping):
            raise InvalidPerson("expected a JSON object")
        aliases = {"fn": "family_name", "gn": "given_name", "fnt": "family_name_t",
                   "gnt": "given_name_t", "dob": "dob"}
        fields: dict[str, str] = {}
        for key, value in data.items():
            name = aliases.get(key, key)
            if name not in aliases.values():
                raise InvalidPerson(f"unknown key {key!r} (known: {', '.join(sorted(aliases))} or long names)")
            if not isinstance(value, str):
                raise InvalidPerson(f"{key} must be a string")
            fields[name] = value
        if "dob" not in fields:
            raise InvalidPerson("dob is required")
        return cls(family_name=fields.get("family_name", ""), given_name=fields.get("given_name", ""),
                   dob=fields["dob"], family_name_t=fields.get("family_name_t", ""),
                   given_name_t=fields.get("given_name_t", ""))


def synthetic_person(rng: random.Random, reference: dt.date = dt.date(2021, 9, 1)) -> Person:
    """One made-up person aged 1 to 90 at `reference`, drawn from `rng`."""
    female = rng.random() < 0.5
    middle = rng.choice(MIDDLE_NAMES_FEMALE if female else MIDDLE_NAMES_MALE)
    given = rng.choice(GIVEN_NAMES_FEMALE if female else GIVEN_NAMES_MALE)
    age_days = rng.randrange(365, 90 * 365)
    dob = reference - dt.timedelta(days=age_days)
    return Person(family_name=rng.choice(FAMILY_NAMES),
                  given_name=f"{middle} {given}".strip(), dob=dob.isoformat())


def synthetic_people(count: int, seed: int | str = 0) -> list[Person]:
    """`count` made-up people; the same seed always gives the same people."""
    rng = random.Random(f"chot-people-{seed}")
    return [synthetic_person(rng) for _ in range(count)]
