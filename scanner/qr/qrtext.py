"""A QR code's text together with the payload bytes exactly as the code holds them.

Text alone loses what is not text: a byte-mode payload that is no valid UTF-8 (a decoder then
guesses a character set, and its guess may not give the bytes back), or a GS1 code (FNC1 in
first position), whose fields zxing-cpp would otherwise rewrite as "(01)..." for people. The
stage reads with zxing-cpp's plain text mode (GS1 fields as they are, GS between them, as
pyzbar and ZXing read them) and keeps the bytes beside the text, so whoever needs the payload
exactly (``chot verify``, the bench) compares bytes. Like the text, the bytes are personal
data: never logged.
"""

from __future__ import annotations

from typing import Any, Self


class QrText(str):
    """A decoded text (a ``str`` everywhere a text is expected) with ``raw``: the payload's bytes."""

    raw: bytes

    def __new__(cls, text: str, raw: bytes | None = None) -> Self:
        self = super().__new__(cls, text)
        self.raw = text.encode("utf-8") if raw is None else bytes(raw)
        return self

    @classmethod
    def of(cls, barcode: Any) -> Self:
        """From a zxing-cpp result: its text and its content bytes (ECI and mode as in the code)."""
        return cls(barcode.text, barcode.bytes)

    def __repr__(self) -> str:  # a logged QrText shows no more than a str would
        return f"QrText({super().__repr__()})"


def raw_bytes(text: str) -> bytes:
    """The payload bytes of a read: exact for a QrText, UTF-8 for a plain str."""
    return text.raw if isinstance(text, QrText) else text.encode("utf-8")
