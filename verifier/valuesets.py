"""Value sets of the DCC's coded fields, and the check that every coded field holds a listed code.

The sets are the EU DCC value sets (verifier/data/valuesets, shipped with the package); a trust
bundle may carry newer copies (new vaccines, the rapid-test device list), which replace the
shipped set of the same name. A code counts as listed whatever its `active` flag: `false` marks
a code no longer to be issued, and certificates issued with it earlier are still genuine.

Which field is checked where, and why, is in docs/architecture.md ("Coded fields").
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Mapping
from importlib import resources
from typing import Any

from verifier.errors import ValueSetError

RAPID_TEST = "LP217198-3"

# (group, field) -> (value set name, label en, label vi). The names are those of the schema's
# `valueset-uri` (valuesets/<name>.json).
CODED_FIELDS: dict[tuple[str, str], tuple[str, str, str]] = {
    ("v", "tg"): ("disease-agent-targeted", "disease", "bệnh"),
    ("v", "vp"): ("vaccine-prophylaxis", "vaccine type", "loại vắc xin"),
    ("v", "mp"): ("vaccine-medicinal-product", "vaccine product", "tên vắc xin"),
    ("v", "ma"): ("vaccine-mah-manf", "vaccine manufacturer", "nhà sản xuất vắc xin"),
    ("v", "co"): ("country-2-codes", "country", "quốc gia"),
    ("t", "tg"): ("disease-agent-targeted", "disease", "bệnh"),
    ("t", "tt"): ("test-type", "test type", "loại xét nghiệm"),
    ("t", "ma"): ("test-manf", "rapid test device", "bộ xét nghiệm nhanh"),
    ("t", "tr"): ("test-result", "test result", "kết quả xét nghiệm"),
    ("t", "co"): ("country-2-codes", "country", "quốc gia"),
    ("r", "tg"): ("disease-agent-targeted", "disease", "bệnh"),
    ("r", "co"): ("country-2-codes", "country", "quốc gia"),
}
NAMES = frozenset(name for name, _, _ in CODED_FIELDS.values())
_SHOWN = 40  # longest code quoted back in a message
# (field, codes, value set name, label en, label vi, is the rapid-test device)
_FieldCheck = tuple[str, frozenset[str], str, str, str, bool]


class ValueSets:
    """The code sets by value set name, built once (per trust bundle), looked up per certificate."""

    __slots__ = ("codes", "_plan")

    def __init__(self, codes: Mapping[str, Iterable[str]]) -> None:
        self.codes: dict[str, frozenset[str]] = {name: frozenset(values) for name, values in codes.items()}
        # Per group, the (field, codes, labels) to check, resolved now so a check does no lookups
        # by name. A set this unit lacks is not checked (cannot happen with the shipped sets).
        plan: dict[str, list[_FieldCheck]] = {"v": [], "t": [], "r": []}
        for (group, field), (name, label_en, label_vi) in CODED_FIELDS.items():
            if name in self.codes:
                device = (group, field) == ("t", "ma")
                plan[group].append((field, self.codes[name], name, label_en, label_vi, device))
        self._plan = {group: tuple(checks) for group, checks in plan.items()}

    def __getitem__(self, name: str) -> frozenset[str]:
        return self.codes[name]

    def with_overrides(self, documents: Mapping[str, Any]) -> ValueSets:
        """These sets with each one named in `documents` (a bundle's `value_sets`) replaced.

        :raises ValueError: when a document is not a value set (see `codes_of`).
        """
        if not documents:
            return self
        codes = dict(self.codes)
        for name, document in documents.items():
            if name not in NAMES:
                continue  # a set a newer ministry tool knows and this unit does not check
            codes[name] = codes_of(document, name)
        return ValueSets(codes)

    def check(self, dcc: Mapping[str, Any]) -> None:
        """Refuse a coded field whose code is not listed. The DCC has passed the schema already.

        :raises ValueSetError: naming the field and the code.
        """
        for group, checks in self._plan.items():
            entries = dcc.get(group)
            if entries is None:
                continue
            for index, entry in enumerate(entries):
                for field, codes, name, label_en, label_vi, device in checks:
                    if device:
                        if entry.get("tt") != RAPID_TEST:
                            continue  # only a rapid test names a device (EU rule TR-EU-0002)
                        if "ma" not in entry:
                            raise _unknown(group, index, field, None, name, label_en, label_vi)
                    value = entry.get(field)
                    if value is not None and value not in codes:
                        raise _unknown(group, index, field, value, name, label_en, label_vi)


def _unknown(group: str, index: int, field: str, value: object, name: str, label_en: str,
             label_vi: str) -> ValueSetError:
    shown = _printable(value) if value is not None else None
    return ValueSetError(f"/{group}/{index}/{field}",
                         f"{shown!r} is not in {name}" if shown is not None else f"missing ({name} requires one)",
                         field=f"{group}.{field}", value=shown, label_en=label_en, label_vi=label_vi)


def _printable(value: object) -> str:
    text = value if type(value) is str else repr(value)
    text = "".join(ch if ch.isprintable() else "?" for ch in text[:_SHOWN])
    return text + ("…" if len(value if type(value) is str else repr(value)) > _SHOWN else "")


def codes_of(document: Any, name: str = "value set") -> frozenset[str]:
    """The codes of an EU value set document (`valueSetValues` keyed by code) or a list of codes.

    :raises ValueError: when it is neither, holds a code that is not text, or is empty (an empty
        set would turn every certificate red: certainly a mistake).
    """
    if isinstance(document, Mapping):
        values = document.get("valueSetValues")
        if not isinstance(values, Mapping):
            raise ValueError(f"{name}: `valueSetValues` is missing or not an object")
        found = list(values)
    elif isinstance(document, list):
        found = document
    else:
        raise ValueError(f"{name}: neither a value set document nor a list of codes")
    if not found:
        raise ValueError(f"{name}: no codes")
    if any(not isinstance(code, str) or not code for code in found):
        raise ValueError(f"{name}: every code must be non-empty text")
    return frozenset(found)


def shipped_documents() -> dict[str, Any]:
    """The value set documents shipped with the package, by name (what `chot keys bundle` copies)."""
    documents = {}
    for path in resources.files("verifier.data").joinpath("valuesets").iterdir():
        if path.name.endswith(".json") and path.name[:-5] in NAMES:
            documents[path.name[:-5]] = json.loads(path.read_text("utf-8"))
    return documents


@functools.cache
def shipped() -> ValueSets:
    """The value sets shipped with the package (read once)."""
    documents = shipped_documents()
    missing = NAMES - set(documents)
    if missing:
        raise RuntimeError(f"the package lacks value sets {sorted(missing)}")
    return ValueSets({name: codes_of(doc, name) for name, doc in documents.items()})
