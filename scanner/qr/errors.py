"""The errors of the QR stack, apart so every module of it (and its callers) can import them."""

from __future__ import annotations

from pathlib import Path


class DecodeError(Exception):
    """Base of every error raised by the decoding stage."""


class BadFrameError(DecodeError, ValueError):
    """The frame is not a 2-D uint8 grey image of a usable size."""


class UnreadableImageError(DecodeError):
    """An image file does not exist or cannot be opened as an image."""

    def __init__(self, path: Path, why: str) -> None:
        super().__init__(f"cannot read image {path}: {why}")
        self.path = path
        self.why = why


class ImageHeaderError(ValueError):
    """The header is missing, unknown or broken; `why` says what (no file name)."""

    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why
