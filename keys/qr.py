"""Render HC1 strings as QR codes (error correction Q): PNG files, PNG bytes, or greyscale arrays."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import segno

from keys.errors import KeysError

ERROR_LEVEL = "q"  # survives about 25% damage: scuffed phone screens, glare


def _qr(text: str) -> segno.QRCode:
    if not text:
        raise KeysError("nothing to encode in a QR code")
    try:
        # boost_error=False keeps level Q exactly, as the DCC guidelines ask.
        return segno.make_qr(text, error=ERROR_LEVEL, boost_error=False)
    except segno.DataOverflowError:
        raise KeysError(f"{len(text)} characters do not fit in one QR code") from None


def png_bytes(text: str, *, scale: int = 4, border: int = 4) -> bytes:
    """A PNG of the QR code for `text`."""
    out = io.BytesIO()
    _qr(text).save(out, kind="png", scale=scale, border=border)
    return out.getvalue()


def write_png(text: str, path: str | os.PathLike[str], *, scale: int = 4, border: int = 4) -> Path:
    """Write the QR code for `text` as a PNG file."""
    target = Path(path)
    target.write_bytes(png_bytes(text, scale=scale, border=border))
    return target


def greyscale(text: str, *, scale: int = 4, border: int = 4) -> np.ndarray:
    """The QR code as a 2-D uint8 image (0 dark, 255 light), as a camera frame would hold it."""
    if scale < 1 or border < 0:
        raise KeysError("scale must be at least 1 and border at least 0")
    modules = np.array([list(row) for row in _qr(text).matrix_iter(scale=1, border=border)], dtype=bool)
    light = np.where(modules, 0, 255).astype(np.uint8)
    return np.repeat(np.repeat(light, scale, axis=0), scale, axis=1)
