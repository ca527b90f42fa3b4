"""The EU's special cases: how verifiers treat the quirks of genuine certificates real issuers signed.

From the EU DCC quality-assurance repository's "Handling of Special Cases"
(github.com/eu-digital-green-certificates/dcc-quality-assurance, SpecialCaseHandling.md); the
table of what each answers is in docs/architecture.md ("The field's special cases"):

- whitespace around field values is trimmed (GR/EL `mp` codes with a trailing space);
- `null` for an optional field, and for an absent `v`/`t`/`r`, is dropped as if absent (BG,
  LV; a `null` where a field is required is then a missing field: red `schema`);
- whole-number floats for `dn`/`sd` count as integers (IE; verifier.schema already does);
- date and date-time formats, the `dob` pattern and the `fnt`/`gnt` patterns are not checked
  (BG, PL, NL, NO); a date the policy needs but cannot read is red `date_unreadable`;
- several events in one certificate are refused (ES): one event per certificate.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from verifier.certlogic import parse_instant
from verifier.errors import PolicyError, SchemaError

UNCHECKED_PATTERNS = frozenset({"fnt", "gnt", "dob"})
"""Fields whose schema pattern is not checked (the EU's special cases for names and dates of birth)."""
EVENT_DATES = {"v": ("dt",), "t": ("sc",), "r": ("fr", "df", "du")}
"""The dates every checkpoint policy judges by (a test's optional result date `dr` is not one)."""
_KIND_NAMES = {"v": "vaccination", "t": "test", "r": "recovery"}


class SeveralEvents(SchemaError):
    """The certificate lists more than one event (the EU: one event per certificate)."""

    code = "several_events"
    message_en = "The certificate lists several events; only one per certificate is valid."
    message_vi = "Chứng nhận ghi nhiều lần tiêm/xét nghiệm; mỗi chứng nhận chỉ được ghi một lần."


class UnreadableDate(PolicyError):
    """A date the policy needs is not a date it can read (formats are not checked by the schema)."""

    code = "date_unreadable"
    message_en = "A date in the certificate cannot be read: check it by hand."
    message_vi = "Không đọc được ngày trong chứng nhận: hãy kiểm tra bằng mắt."

    def __init__(self, field: str) -> None:
        self.field = field
        self.message_en = f"The certificate's date ({field}) cannot be read: check it by hand."
        self.message_vi = f"Không đọc được ngày trong chứng nhận ({field}): hãy kiểm tra bằng mắt."
        super().__init__(f"{field} is not a date")


def _clean(value: Any) -> Any:
    """`value` with strings trimmed and null map values dropped; the same object when nothing changes."""
    kind = type(value)
    if kind is str:
        return value.strip() if value[:1].isspace() or value[-1:].isspace() else value
    if isinstance(value, Mapping):
        out = None
        for key, item in value.items():
            if item is None:
                if out is None:
                    out = dict(value)
                del out[key]
                continue
            cleaned = _clean(item)
            if cleaned is not item:
                if out is None:
                    out = dict(value)
                out[key] = cleaned
        return value if out is None else out
    if kind in (list, tuple):
        items = [_clean(item) for item in value]
        return value if all(a is b for a, b in zip(items, value)) else items
    return value


def normalise(dcc: Any) -> Any:
    """The DCC as the EU tells verifiers to read it: trimmed, with null fields dropped."""
    return _clean(dcc)


def check_single_event(dcc: Mapping[str, Any], kind: str | None) -> None:
    """Refuse a certificate with more than one entry of its type.

    :raises SeveralEvents: naming how many.
    """
    entries = dcc.get(kind) if kind else None
    if isinstance(entries, (list, tuple)) and len(entries) > 1:
        raise SeveralEvents(f"/{kind}", f"{len(entries)} {_KIND_NAMES[kind]} events (one per certificate)")  # type: ignore[index]


def unreadable_date(entry: Mapping[str, Any], kind: str | None) -> str | None:
    """The first event date of `entry` that is present but not a date CertLogic reads, as `v.dt`."""
    for field in EVENT_DATES.get(kind or "", ()):
        value = entry.get(field)
        if value is not None and (type(value) is not str or parse_instant(value) is None):
            return f"{kind}.{field}"
    return None


def relax_schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of a DCC schema without the checks the special cases lift: formats, dob/fnt/gnt patterns."""
    relaxed = copy.deepcopy(dict(schema))

    def walk(node: Any, name: str | None) -> None:
        if isinstance(node, dict):
            node.pop("format", None)
            if name in UNCHECKED_PATTERNS:
                node.pop("pattern", None)
            for key, child in node.items():
                if key in ("properties", "$defs") and isinstance(child, dict):
                    for sub_name, sub in child.items():
                        walk(sub, sub_name)
                else:
                    walk(child, None)
        elif isinstance(node, list):
            for child in node:
                walk(child, None)

    walk(relaxed, None)
    return relaxed
