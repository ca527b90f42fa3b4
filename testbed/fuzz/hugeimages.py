"""Small image files whose headers declare huge sizes: one per format the image reader accepts.

Each is a real file OpenCV encoded (or, for the text-header formats, the header written by hand)
with its size fields rewritten, so the decoder would allocate gigabytes for a file of a few
kilobytes. Seeds for the image fuzzer (bench/fuzz/run.py) and the bad-file tests.
"""

from __future__ import annotations

import struct
import zlib
from functools import lru_cache

import cv2
import numpy as np

HUGE = 30000  # 30000 x 30000 grey = 900 MB in a decoder, a few KB on disk
WEBP_HUGE = 16000  # WebP's 14-bit size fields hold at most 16383


def _encoded(ext: str, gray: bool = True) -> bytes:
    rng = np.random.default_rng(11)
    image = rng.integers(0, 255, (64, 64), dtype=np.uint8)
    ok, buf = cv2.imencode(ext, image if gray else cv2.cvtColor(image, cv2.COLOR_GRAY2BGR))
    if not ok:
        raise RuntimeError(f"OpenCV cannot write {ext} here")
    return buf.tobytes()


def _put(data: bytes, at: int, fmt: str, *values: int) -> bytes:
    out = bytearray(data)
    struct.pack_into(fmt, out, at, *values)
    return bytes(out)


def _png() -> bytes:
    data = _put(_encoded(".png"), 16, ">II", HUGE, HUGE)
    return _put(data, 29, ">I", zlib.crc32(data[12:29]))  # a correct CRC, so libpng reads on


def png_bomb(side: int = HUGE) -> bytes:
    """A whole grey PNG of side x side zero pixels: 900 MB of rows deflated to under 1 MB.

    The file of issue 11: every row is there, so a decoder that trusts the header fills all of it.
    """
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    deflate = zlib.compressobj(9)
    row_block = b"\0" * ((side + 1) * 256)  # 256 rows: filter byte 0 and zero pixels
    parts = [deflate.compress(row_block) for _ in range(side // 256)]
    parts += [deflate.compress(b"\0" * ((side + 1) * (side % 256))), deflate.flush()]
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"".join(parts)) + chunk(b"IEND", b"")


def _jpeg() -> bytes:
    data = _encoded(".jpg")
    sof = data.index(b"\xff\xc0")
    return _put(data, sof + 5, ">HH", HUGE, HUGE)


def _tiff() -> bytes:
    data = _encoded(".tif")
    ifd = struct.unpack_from("<I", data, 4)[0]
    for i in range(struct.unpack_from("<H", data, ifd)[0]):
        at = ifd + 2 + 12 * i
        tag, kind = struct.unpack_from("<HH", data, at)
        if tag in (256, 257):
            data = _put(data, at + 8, "<H" if kind == 3 else "<I", HUGE)
    return data


def _webp() -> bytes:
    data = _encoded(".webp")
    if data[12:16] == b"VP8 ":
        return _put(data, 26, "<HH", WEBP_HUGE, WEBP_HUGE)
    if data[12:16] == b"VP8L":  # lossless: 14 bits each of width - 1 and height - 1 after 0x2F
        bits = struct.unpack_from("<I", data, 21)[0] & ~((1 << 28) - 1)
        return _put(data, 21, "<I", bits | (WEBP_HUGE - 1) | (WEBP_HUGE - 1) << 14)
    raise RuntimeError(f"OpenCV wrote a WebP starting with {data[12:16]!r}")


def _jp2() -> bytes:
    data = _encoded(".jp2")
    ihdr = data.index(b"ihdr")
    data = _put(data, ihdr + 4, ">II", HUGE, HUGE)
    siz = data.index(b"\xff\x4f\xff\x51")
    return _put(data, siz + 8, ">II", HUGE, HUGE)


def _j2k() -> bytes:
    """A bare JPEG 2000 codestream (the jp2c box's content), its SIZ rewritten."""
    data = _encoded(".jp2")
    stream = data[data.index(b"\xff\x4f\xff\x51"):]
    return _put(stream, 8, ">II", HUGE, HUGE)


def _avif() -> bytes:
    data = _encoded(".avif")
    ispe = data.index(b"ispe")
    return _put(data, ispe + 8, ">II", HUGE, HUGE)


def _gif(screen: int, frame: int) -> bytes:
    # Screen, no colour table, one frame of `frame` x `frame`, 2-bit LZW: clear + end codes.
    return (b"GIF89a" + struct.pack("<HHBBB", screen, screen, 0, 0, 0)
            + b"\x2c" + struct.pack("<HHHHB", 0, 0, frame, frame, 0) + b"\x02\x02\x44\x01\x00" + b"\x3b")


@lru_cache(maxsize=1)
def huge_images() -> dict[str, bytes]:
    """name -> file bytes, every one declaring far more than 8192 pixels on a side."""
    pixels = b"\x00" * 4096
    return {
        "png": _png(),
        "jpeg": _jpeg(),
        "bmp": _put(_encoded(".bmp"), 18, "<ii", HUGE, HUGE),
        "bmp-top-down": _put(_encoded(".bmp"), 18, "<ii", HUGE, -HUGE),
        "tiff": _tiff(),
        "webp": _webp(),
        "jp2": _jp2(),
        "j2k": _j2k(),
        "avif": _avif(),
        "sun-raster": _put(_encoded(".sr"), 4, ">II", HUGE, HUGE),
        "gif": _gif(HUGE, HUGE),
        "gif-small-screen-huge-frame": _gif(64, HUGE),
        "pgm": b"P5\n# made big\n%d %d\n255\n" % (HUGE, HUGE) + pixels,
        "pam": b"P7\nWIDTH %d\nHEIGHT %d\nDEPTH 1\nMAXVAL 255\nTUPLTYPE GRAYSCALE\nENDHDR\n" % (HUGE, HUGE) + pixels,
        "pfm": b"Pf\n%d %d\n-1.0\n" % (HUGE, HUGE) + pixels,
        "hdr": b"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y %d +X %d\n" % (HUGE, HUGE) + pixels,
    }
