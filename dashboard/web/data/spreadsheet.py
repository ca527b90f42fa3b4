"""Tables as CSV (UTF-8 with a byte order mark, which Excel needs to read Vietnamese) and XLSX
(XlsxWriter: pure Python and several times faster at writing than openpyxl without lxml).

An XLSX sheet starts with its title and its completeness line, then a header row (frozen, so it
stays in view) and the rows, so a number handed on always carries how complete it was. A CSV is
for machines and starts with its header row: no title lines above it. Dates are real dates in
XLSX and ISO 8601 in CSV. Non-breaking spaces (kept in page texts so figures do not wrap) become
plain spaces: they break spreadsheet filters. Text that a spreadsheet would run as a formula
(starting with =, +, - or @) is written as text.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import xlsxwriter

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
MAX_SHEET_NAME = 31  # Excel's limit


@dataclass
class Sheet:
    """One table: `name` (the sheet's), lines above it, its header and rows of str/int/float/None."""

    name: str
    lines: list[str]
    header: list[str]
    rows: list[list[Any]] = field(default_factory=list)
    percent_columns: frozenset[int] = frozenset()  # columns holding rates (0..1), shown as %


def _plain(value: str) -> str:
    """Plain spaces for the non-breaking ones page texts keep."""
    return value.replace("\u00a0", " ").replace("\u202f", " ")


def _safe_text(value: Any) -> Any:
    if isinstance(value, str):
        value = _plain(value)
        if value.startswith(FORMULA_START):
            return "'" + value
    return value


def _csv_cell(value: Any, rate: bool) -> Any:
    if value is None:
        return ""
    if rate:
        return round(value * 100, 1)
    if isinstance(value, datetime):
        return value.isoformat(sep=" ", timespec="minutes")
    if isinstance(value, date):
        return value.isoformat()
    return _safe_text(value)


def csv_bytes(sheet: Sheet) -> bytes:
    """The sheet as CSV: BOM, header, rows; rates as percentages, dates ISO 8601."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([_safe_text(h) + (" (%)" if i in sheet.percent_columns else "") for i, h in enumerate(sheet.header)])
    for row in sheet.rows:
        writer.writerow([_csv_cell(v, i in sheet.percent_columns) for i, v in enumerate(row)])
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def xlsx_bytes(sheets: Sequence[Sheet]) -> bytes:
    """The sheets as one XLSX workbook; rates are numbers formatted as percentages."""
    out = io.BytesIO()
    # Strings are only ever strings: a name like "=HYPERLINK(...)" must not become a formula.
    book = xlsxwriter.Workbook(out, {"in_memory": True, "strings_to_formulas": False,
                                     "strings_to_urls": False, "strings_to_numbers": False})
    bold = book.add_format({"bold": True})
    percent = book.add_format({"num_format": "0.0%"})
    day = book.add_format({"num_format": "dd/mm/yyyy"})
    moment = book.add_format({"num_format": "dd/mm/yyyy hh:mm"})
    used: set[str] = set()
    for sheet in sheets:
        ws = book.add_worksheet(_sheet_name(sheet.name, used))
        row = 0
        for line in sheet.lines:
            ws.write_string(row, 0, _plain(line))
            row += 1
        row += 1
        for col, h in enumerate(sheet.header):
            ws.write_string(row, col, _plain(h), bold)
        ws.freeze_panes(row + 1, 0)  # the header stays in view while scrolling
        for values in sheet.rows:
            row += 1
            for col, v in enumerate(values):
                if v is None:
                    continue
                if isinstance(v, str):
                    ws.write_string(row, col, _plain(v))
                elif isinstance(v, datetime):
                    ws.write_datetime(row, col, v, moment)
                elif isinstance(v, date):
                    ws.write_datetime(row, col, v, day)
                else:
                    ws.write_number(row, col, v, percent if col in sheet.percent_columns else None)
        for col, h in enumerate(sheet.header):
            width = max([len(str(h))] + [min(len(str(r[col])), 16) if isinstance(r[col], date) else len(str(r[col]))
                                         for r in sheet.rows[:200] if col < len(r)])
            ws.set_column(col, col, min(max(8, width + 2), 48))
    book.close()
    return out.getvalue()


def _sheet_name(name: str, used: set[str]) -> str:
    clean = "".join("_" if ch in "[]:*?/\\" else ch for ch in name)[:MAX_SHEET_NAME] or "Sheet"
    candidate, n = clean, 2
    while candidate in used:
        suffix = f" {n}"
        candidate, n = clean[:MAX_SHEET_NAME - len(suffix)] + suffix, n + 1
    used.add(candidate)
    return candidate
