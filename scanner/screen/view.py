"""What the officer screen shows of a verdict: plain JSON, built only in memory."""

from __future__ import annotations

import functools
import json
from importlib import resources
from typing import Any

from protocol.words import FORMATS
from verifier import Verdict

# EU DCC value sets, the few codes a checkpoint meets; unknown codes are shown as they are.
_TEST_TYPES = {"LP6464-4": ("PCR", "PCR"), "LP217198-3": ("Test nhanh kháng nguyên", "Rapid antigen test")}
_TEST_RESULTS = {"260415000": ("Âm tính", "Not detected"), "260373001": ("Dương tính", "Detected")}


@functools.cache
def _vaccine_names() -> dict[str, str]:
    """Display names of vaccine products from the DCC value set shipped with the verifier."""
    path = resources.files("verifier.data").joinpath("valuesets", "vaccine-medicinal-product.json")
    values = json.loads(path.read_text(encoding="utf-8")).get("valueSetValues", {})
    return {code: entry["display"] for code, entry in values.items() if entry.get("display")}


def vaccine_label(code: Any) -> str:
    """"Comirnaty (EU/1/20/1528)" for a known product code, the code itself otherwise."""
    name = _vaccine_names().get(str(code))
    return f"{name} ({code})" if name and name != code else str(code)


def _line(vi: str, en: str, value: Any, kind: str | None = None) -> dict[str, str]:
    """One labelled line; `kind` "date" or "datetime" tells the page to write it as dd/mm/yyyy."""
    line = {"vi": vi, "en": en, "value": str(value)}
    if kind:
        line["kind"] = kind
    return line


def _coded(table: dict[str, tuple[str, str]], code: Any) -> tuple[str, str]:
    return table.get(str(code), (str(code), str(code)))


def detail_lines(verdict: Verdict) -> list[dict[str, str]]:
    """The certificate lines an officer checks: doses, test or recovery, with labels in both languages."""
    d = verdict.detail or {}
    lines: list[dict[str, str]] = []
    fmt = FORMATS.get(getattr(verdict, "format", "dcc"))
    if fmt is not None and verdict.format != "dcc":  # the home format goes unsaid
        lines.append({"vi": "Định dạng", "en": "Format", "value_vi": fmt[0], "value_en": fmt[1], "value": fmt[1]})
    if verdict.cert_type == "v":
        if "dn" in d and "sd" in d:
            lines.append(_line("Mũi tiêm", "Doses", f"{d['dn']}/{d['sd']}"))
        if "dt" in d:
            lines.append(_line("Ngày tiêm", "Vaccinated on", d["dt"], "date"))
        if "mp" in d:
            lines.append(_line("Vắc xin", "Vaccine", vaccine_label(d["mp"])))
    elif verdict.cert_type == "t":
        if "tt" in d:
            vi, en = _coded(_TEST_TYPES, d["tt"])
            lines.append({"vi": "Xét nghiệm", "en": "Test", "value_vi": vi, "value_en": en, "value": en})
        if "tr" in d:
            vi, en = _coded(_TEST_RESULTS, d["tr"])
            lines.append({"vi": "Kết quả", "en": "Result", "value_vi": vi, "value_en": en, "value": en})
        if "sc" in d:
            lines.append(_line("Lấy mẫu lúc", "Sampled at", d["sc"], "datetime"))
    elif verdict.cert_type == "r":
        if "fr" in d:
            lines.append(_line("Dương tính ngày", "First positive", d["fr"], "date"))
        if "du" in d:
            lines.append(_line("Hiệu lực đến", "Valid until", d["du"], "date"))
    if "co" in d:
        lines.append(_line("Quốc gia", "Country", d["co"]))
    return lines


def verdict_view(verdict: Verdict) -> dict[str, Any]:
    """The verdict as the page draws it (holds personal data: memory and loopback only)."""
    holder = verdict.holder
    transliterated = None
    if holder is not None and (holder.family_name_t or holder.given_name_t):
        transliterated = " ".join(p.replace("<", " ") for p in (holder.family_name_t, holder.given_name_t) if p)
    return {
        "result": verdict.result,
        "reason": verdict.reason,
        "message_vi": verdict.message_vi,
        "message_en": verdict.message_en,
        "cert_type": verdict.cert_type,
        "name": holder.display_name() if holder is not None else None,
        "name_t": transliterated,
        "dob": holder.dob if holder is not None else None,
        "lines": detail_lines(verdict),
        "policy": verdict.policy,
    }
