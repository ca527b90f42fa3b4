"""The pixel size an image file declares, read from its header before anything is decoded.

A decoder allocates what the header claims: an 875 KB PNG declaring 30000x30000 pixels took
1.85 GB and 4 s inside OpenCV before the frame-size check could refuse it, an out-of-memory
kill on a Raspberry Pi. So ``read_image`` first reads the declared size here and refuses
anything outside the frame limits. Every format OpenCV's build here can open is parsed (PNG,
JPEG, GIF, BMP, TIFF and BigTIFF, WebP, AVIF, JPEG 2000, PNM/PAM, PFM, Radiance HDR, Sun
raster); a file of any other format is refused too, so nothing reaches the decoder unmeasured.
Only headers are read (through mmap, so a large file is not loaded for this), in bounded steps.
"""

from __future__ import annotations

import mmap
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Union

from scanner.qr.errors import ImageHeaderError, UnreadableImageError

Data = Union[bytes, mmap.mmap]

MAX_FILE_BYTES = 128 << 20  # far above any photo of a QR code; read_image loads the whole file
_MAX_TEXT_HEADER = 64 << 10  # PNM, PFM and HDR headers are text lines; real ones are tiny
_MAX_BOXES = 10_000  # ISO boxes (AVIF, JPEG 2000) walked at most


@dataclass(frozen=True)
class DeclaredSize:
    """What a header declares: the image's size and any other area the decoder allocates."""

    format: str
    width: int
    height: int
    parts: tuple[tuple[int, int], ...] = ()  # GIF frames, TIFF tiles: also sized by the header

    def largest_side(self) -> int:
        """The longest side of the image or of any declared part."""
        return max([self.width, self.height] + [max(p) for p in self.parts])


def _u16be(d: Data, at: int) -> int:
    return int(struct.unpack_from(">H", d, at)[0])


def _u32be(d: Data, at: int) -> int:
    return int(struct.unpack_from(">I", d, at)[0])


def _need(d: Data, end: int, what: str) -> None:
    if len(d) < end:
        raise ImageHeaderError(f"the file ends inside its {what} header")


def _png(d: Data) -> DeclaredSize:
    _need(d, 24, "PNG")
    if d[12:16] != b"IHDR":
        raise ImageHeaderError("a PNG must start with its IHDR chunk")
    return DeclaredSize("PNG", _u32be(d, 16), _u32be(d, 20))


# Start-of-frame markers (baseline, extended, progressive, lossless, arithmetic); C4, C8, CC are not.
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def _jpeg(d: Data) -> DeclaredSize:
    at = 2
    while at + 4 <= len(d):
        if d[at] != 0xFF:
            raise ImageHeaderError(f"a JPEG segment is out of place at byte {at}")
        while at < len(d) and d[at] == 0xFF:  # fill bytes
            at += 1
        if at >= len(d):
            break
        marker = d[at]
        at += 1
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # markers without a length
            continue
        if marker == 0xD9 or marker == 0xDA:
            raise ImageHeaderError("a JPEG without a frame header before its image data")
        _need(d, at + 2, "JPEG segment")
        length = _u16be(d, at)
        if length < 2:
            raise ImageHeaderError("a JPEG segment with a length below 2")
        if marker in _SOF:
            _need(d, at + 7, "JPEG frame")
            height, width = _u16be(d, at + 3), _u16be(d, at + 5)
            if height == 0:
                raise ImageHeaderError("a JPEG that does not declare its height")
            return DeclaredSize("JPEG", width, height)
        at += length
    raise ImageHeaderError("a JPEG without a frame header")


def _gif(d: Data) -> DeclaredSize:
    _need(d, 13, "GIF")
    width, height = struct.unpack_from("<HH", d, 6)
    at = 13 + (3 << ((d[10] & 7) + 1) if d[10] & 0x80 else 0)
    frames: list[tuple[int, int]] = []
    # Every frame: the decoder paints each one onto the canvas at its offset.
    while at < len(d) and d[at] != 0x3B:
        kind = d[at]
        if kind == 0x2C:
            if at + 10 > len(d):
                break
            left, top, w, h = struct.unpack_from("<HHHH", d, at + 1)
            frames.append((left + w, top + h))
            flags = d[at + 9]
            at += 10 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0) + 1  # + LZW minimum code size
        elif kind == 0x21:
            at += 2
        else:
            raise ImageHeaderError(f"a GIF block of unknown kind 0x{kind:02X}")
        while at < len(d) and d[at] != 0:  # data sub-blocks, each led by its length
            at += 1 + d[at]
        at += 1
    return DeclaredSize("GIF", width, height, tuple(frames))


def _bmp(d: Data) -> DeclaredSize:
    _need(d, 26, "BMP")
    info = struct.unpack_from("<I", d, 14)[0]
    if info == 12:  # OS/2 core header: unsigned 16-bit sides
        width, height = struct.unpack_from("<HH", d, 18)
    elif info >= 40:
        width, height = struct.unpack_from("<ii", d, 18)
        height = abs(height)  # negative: rows stored top-down
    else:
        raise ImageHeaderError(f"a BMP with an unknown {info}-byte info header")
    if width <= 0:
        raise ImageHeaderError("a BMP with a width of 0 or less")
    return DeclaredSize("BMP", width, height)


_TIFF_SIZES = {256: "width", 257: "height", 322: "tile_width", 323: "tile_height"}


def _tiff(d: Data) -> DeclaredSize:
    _need(d, 8, "TIFF")
    order = "<" if d[:2] == b"II" else ">"
    big = struct.unpack_from(order + "H", d, 2)[0] == 43
    if big:
        _need(d, 16, "BigTIFF")
        ifd = struct.unpack_from(order + "Q", d, 8)[0]
        count_fmt, entry_size, value_at = "Q", 20, 12
    else:
        ifd = struct.unpack_from(order + "I", d, 4)[0]
        count_fmt, entry_size, value_at = "H", 12, 8
    count_size = struct.calcsize(count_fmt)
    _need(d, ifd + count_size, "TIFF directory")
    count = struct.unpack_from(order + count_fmt, d, ifd)[0]
    found: dict[str, int] = {}
    # Only the first directory: OpenCV reads the first page.
    for i in range(min(count, 4096)):
        at = ifd + count_size + i * entry_size
        _need(d, at + entry_size, "TIFF directory")
        tag, kind = struct.unpack_from(order + "HH", d, at)
        if tag in _TIFF_SIZES:
            fmt = {3: "H", 4: "I", 16: "Q"}.get(kind)
            if fmt is None:
                raise ImageHeaderError(f"a TIFF size tag {tag} of type {kind}")
            found[_TIFF_SIZES[tag]] = struct.unpack_from(order + fmt, d, at + value_at)[0]
    if "width" not in found or "height" not in found:
        raise ImageHeaderError("a TIFF without its width or height")
    tile = (found.get("tile_width", 0), found.get("tile_height", 0))
    return DeclaredSize("TIFF", found["width"], found["height"], (tile,) if any(tile) else ())


def _webp(d: Data) -> DeclaredSize:
    _need(d, 30, "WebP")
    chunk = d[12:16]
    if chunk == b"VP8 ":
        if d[23:26] != b"\x9d\x01\x2a":
            raise ImageHeaderError("a WebP VP8 frame without its start code")
        return DeclaredSize("WebP", _u16le(d, 26) & 0x3FFF, _u16le(d, 28) & 0x3FFF)
    if chunk == b"VP8L":
        if d[20] != 0x2F:
            raise ImageHeaderError("a lossless WebP without its signature")
        bits = struct.unpack_from("<I", d, 21)[0]
        return DeclaredSize("WebP", (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1)
    if chunk == b"VP8X":
        width = int.from_bytes(bytes(d[24:27]), "little") + 1
        height = int.from_bytes(bytes(d[27:30]), "little") + 1
        return DeclaredSize("WebP", width, height)
    raise ImageHeaderError(f"a WebP whose first chunk is {bytes(chunk)!r}")


def _u16le(d: Data, at: int) -> int:
    return int(struct.unpack_from("<H", d, at)[0])


def _boxes(d: Data, start: int, end: int) -> list[tuple[bytes, int, int]]:
    """ISO base media boxes in d[start:end] as (type, content start, content end)."""
    out = []
    at = start
    while at + 8 <= end and len(out) < _MAX_BOXES:
        size, kind = _u32be(d, at), bytes(d[at + 4:at + 8])
        head = 8
        if size == 1:
            _need(d, at + 16, "box")
            size, head = struct.unpack_from(">Q", d, at + 8)[0], 16
        elif size == 0:
            size = end - at
        if size < head or at + size > end:
            raise ImageHeaderError(f"a {kind!r} box runs past its container")
        out.append((kind, at + head, at + size))
        at += size
    return out


def _child(d: Data, parent: tuple[int, int], kind: bytes, skip: int = 0) -> list[tuple[int, int]]:
    return [(s, e) for k, s, e in _boxes(d, parent[0] + skip, parent[1]) if k == kind]


def _avif(d: Data) -> DeclaredSize:
    sizes = []
    for meta in _child(d, (0, len(d)), b"meta"):
        for iprp in _child(d, meta, b"iprp", skip=4):  # meta is a full box: version and flags first
            for ipco in _child(d, iprp, b"ipco"):
                for start, end in _child(d, ipco, b"ispe"):
                    if end - start >= 12:
                        sizes.append((_u32be(d, start + 4), _u32be(d, start + 8)))
    if not sizes:
        raise ImageHeaderError("an AVIF without a declared image size (ispe)")
    width, height = sizes[0]
    return DeclaredSize("AVIF", width, height, tuple(sizes[1:]))


def _j2k_siz(d: Data, at: int) -> tuple[int, int]:
    _need(d, at + 42, "JPEG 2000 SIZ")
    if d[at:at + 4] != b"\xff\x4f\xff\x51":
        raise ImageHeaderError("a JPEG 2000 codestream without its SIZ segment")
    x, y, x0, y0 = struct.unpack_from(">IIII", d, at + 8)
    if x0 > x or y0 > y:
        raise ImageHeaderError("a JPEG 2000 image whose origin lies outside it")
    return x - x0, y - y0


def _jp2(d: Data) -> DeclaredSize:
    sizes = []
    for kind, start, end in _boxes(d, 0, len(d)):
        if kind == b"jp2h":
            for hs, he in _child(d, (start, end), b"ihdr"):
                if he - hs >= 8:
                    height, width = _u32be(d, hs), _u32be(d, hs + 4)
                    sizes.append((width, height))
        elif kind == b"jp2c":
            sizes.append(_j2k_siz(d, start))  # the decoder follows the codestream's own size
    if not sizes:
        raise ImageHeaderError("a JP2 file without an image header")
    return DeclaredSize("JPEG 2000", *sizes[0], parts=tuple(sizes[1:]))


def _j2k(d: Data) -> DeclaredSize:
    return DeclaredSize("JPEG 2000", *_j2k_siz(d, 0))


_TOKEN = re.compile(rb"\s*(?:#[^\n]*\n\s*)*(\S+)")


def _text_header(d: Data) -> bytes:
    return bytes(d[:_MAX_TEXT_HEADER])


def _pnm(d: Data) -> DeclaredSize:
    head = _text_header(d)
    if head[:2] == b"P7":  # PAM: WIDTH/HEIGHT lines up to ENDHDR
        fields = dict(re.findall(rb"^(WIDTH|HEIGHT)\s+(\d+)", head.split(b"ENDHDR")[0], re.M))
        if b"WIDTH" not in fields or b"HEIGHT" not in fields:
            raise ImageHeaderError("a PAM header without WIDTH and HEIGHT")
        return DeclaredSize("PAM", int(fields[b"WIDTH"]), int(fields[b"HEIGHT"]))
    numbers = []
    at = 2
    while len(numbers) < 2:
        match = _TOKEN.match(head, at)
        if match is None or not match.group(1).isdigit():
            raise ImageHeaderError("a PNM/PFM header without a numeric width and height")
        numbers.append(int(match.group(1)))
        at = match.end()
    return DeclaredSize("PFM" if head[:2] in (b"PF", b"Pf") else "PNM", numbers[0], numbers[1])


_HDR_SIZE = re.compile(rb"^([-+])([XY]) +(\d+) +([-+])([XY]) +(\d+)\s*$", re.M)


def _hdr(d: Data) -> DeclaredSize:
    head = _text_header(d)
    blank = head.find(b"\n\n")
    match = _HDR_SIZE.match(head, blank + 2) if blank >= 0 else None
    if match is None:
        raise ImageHeaderError("a Radiance HDR file without its resolution line")
    first, second = int(match.group(3)), int(match.group(6))
    # "-Y 480 +X 640": rows first; "+X 640 -Y 480": columns first.
    width, height = (second, first) if match.group(2) == b"Y" else (first, second)
    return DeclaredSize("HDR", width, height)


def _sun(d: Data) -> DeclaredSize:
    _need(d, 12, "Sun raster")
    return DeclaredSize("Sun raster", _u32be(d, 4), _u32be(d, 8))


def _is_avif(d: Data) -> bool:
    if d[4:8] != b"ftyp" or len(d) < 16:
        return False
    size = min(_u32be(d, 0), 256, len(d))
    brands = {bytes(d[i:i + 4]) for i in range(8, size - 3, 4)}
    return bool(brands & {b"avif", b"avis"})


# (test on the first bytes, parser). The first match decides.
_FORMATS: tuple[tuple[Callable[[Data], bool], Callable[[Data], DeclaredSize]], ...] = (
    (lambda d: d[:8] == b"\x89PNG\r\n\x1a\n", _png),
    (lambda d: d[:3] == b"\xff\xd8\xff", _jpeg),
    (lambda d: d[:6] in (b"GIF87a", b"GIF89a"), _gif),
    (lambda d: d[:2] == b"BM", _bmp),
    (lambda d: d[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"), _tiff),
    (lambda d: d[:4] == b"RIFF" and d[8:12] == b"WEBP", _webp),
    (_is_avif, _avif),
    (lambda d: d[:12] == b"\x00\x00\x00\x0cjP  \r\n\x87\n", _jp2),
    (lambda d: d[:4] == b"\xff\x4f\xff\x51", _j2k),
    (lambda d: len(d) > 2 and d[:1] == b"P" and d[1:2] in b"1234567" and d[2:3].isspace(), _pnm),
    (lambda d: d[:2] in (b"PF", b"Pf") and d[2:3].isspace(), _pnm),
    (lambda d: d[:10] == b"#?RADIANCE" or d[:6] == b"#?RGBE", _hdr),
    (lambda d: d[:4] == b"\x59\xa6\x6a\x95", _sun),
)


def is_image(head: bytes) -> bool:
    """True when the first bytes of a file (at least 16) look like an image format read here."""
    return any(test(head) for test, _ in _FORMATS)


def declared_size(data: Data) -> DeclaredSize:
    """The size the image in `data` declares; ImageHeaderError if the format is unknown or broken."""
    for test, parse in _FORMATS:
        if test(data):
            try:
                return parse(data)
            except struct.error:
                raise ImageHeaderError("the file ends inside its header") from None
    raise ImageHeaderError("not an image format chot reads (PNG, JPEG, GIF, BMP, TIFF, WebP, AVIF, "
                           "JPEG 2000, PNM, PFM, HDR, Sun raster)")


def check_declared_size(data: Data, min_side: int, max_side: int) -> DeclaredSize:
    """The declared size, or ImageHeaderError if a side lies outside min_side..max_side."""
    size = declared_size(data)
    if min(size.width, size.height) < min_side or size.largest_side() > max_side:
        part = size.largest_side() > max(size.width, size.height)
        raise ImageHeaderError(f"the {size.format} header declares {size.width}x{size.height} pixels"
                               + (f" and a frame or tile {size.largest_side()} pixels wide" if part else "")
                               + f", outside {min_side}..{max_side}: refused before decoding")
    return size


def refuse_before_decoding(path: str | Path, min_side: int = 16, max_side: int = 8192) -> None:
    """Raise the decoder's UnreadableImageError unless `path` is an image of a size it may decode.

    Called first thing by ``scanner.qr.decode.read_image``: missing files, files over
    MAX_FILE_BYTES, unknown formats and declared sizes outside the limits never reach OpenCV.
    """
    path = Path(path)
    try:
        with path.open("rb") as file:
            size = file.seek(0, 2)
            if size > MAX_FILE_BYTES:
                raise ImageHeaderError(f"{size} bytes, more than the {MAX_FILE_BYTES >> 20} MiB an image may have")
            if size == 0:
                raise ImageHeaderError("not an image: the file is empty")
            with mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as data:
                check_declared_size(data, min_side, max_side)
    except ImageHeaderError as err:
        raise UnreadableImageError(path, err.why) from None
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        raise UnreadableImageError(path, "no such file") from None
    except (OSError, ValueError) as err:
        raise UnreadableImageError(path, f"cannot open it ({getattr(err, 'strerror', None) or err})") from None
