"""Declared image sizes read from headers, and huge ones refused before decoding, in bounded memory.

Sizes are checked against what OpenCV itself decodes from files it wrote, one per format the
reader accepts; the huge files (testbed/fuzz/hugeimages.py) are real encoded files with their size
fields rewritten. The memory test runs read_image in a child process and reads its peak RSS,
(VmHWM), which sees OpenCV's C allocations (tracemalloc would not).
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from testbed.fuzz import targets
from testbed.fuzz.hugeimages import huge_images, png_bomb
from scanner.qr.decode import UnreadableImageError, read_image
from scanner.qr.imageheader import ImageHeaderError, check_declared_size, declared_size, is_image

ROOT = Path(__file__).resolve().parent.parent
# Every format this OpenCV build decodes (getBuildInformation: Media I/O).
EXTENSIONS = [".png", ".jpg", ".bmp", ".tif", ".webp", ".jp2", ".pgm", ".ppm", ".pbm", ".pam", ".pfm", ".hdr",
              ".sr", ".avif", ".gif"]


def encoded(ext: str, width: int = 123, height: int = 45) -> bytes:
    rng = np.random.default_rng(width * height)
    gray = rng.integers(0, 255, (height, width), dtype=np.uint8)
    image: np.ndarray = gray if ext in (".pgm", ".pbm") else cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)
    if ext in (".pfm", ".hdr"):
        image = image.astype(np.float32) / 255
    ok, buf = cv2.imencode(ext, image)
    assert ok, ext
    return buf.tobytes()


@pytest.mark.parametrize("ext", EXTENSIONS)
@pytest.mark.parametrize("width,height", [(123, 45), (40, 300)])
def test_declared_size_is_what_opencv_decodes(ext: str, width: int, height: int) -> None:
    data = encoded(ext, width, height)
    size = declared_size(data)
    decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    assert (size.width, size.height) == (width, height) == decoded.shape[1::-1], (ext, size)
    assert is_image(data[:16])
    assert check_declared_size(data, 16, 8192) == size


@pytest.mark.parametrize("name", sorted(huge_images()))
def test_a_huge_declared_size_is_refused_with_the_size_named(tmp_path: Path, name: str) -> None:
    data = huge_images()[name]
    assert len(data) < 10_000
    with pytest.raises(ImageHeaderError, match="declares .* outside 16..8192"):
        check_declared_size(data, 16, 8192)
    path = tmp_path / f"huge.{name}"
    path.write_bytes(data)
    with pytest.raises(UnreadableImageError, match="refused before decoding"):
        read_image(path)
    assert targets.image_to_verdict(data) is None  # the fuzz target refuses it the same way


def test_tiny_sizes_unknown_formats_and_empty_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ImageHeaderError, match="declares 8x8"):
        check_declared_size(encoded(".png", 8, 8), 16, 8192)
    for data, words in ((b"hello, not an image", "not an image format"), (b"RIFF\0\0\0\0WAVEfmt ", "not an image"),
                        (b"\x89PNG\r\n\x1a\n\0\0", "ends inside"), (b"\xff\xd8\xff\xd9", "without a frame")):
        with pytest.raises(ImageHeaderError, match=words):
            declared_size(data)
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(UnreadableImageError, match="empty"):
        read_image(empty)
    with pytest.raises(UnreadableImageError, match="no such file"):
        read_image(tmp_path / "missing.png")
    with pytest.raises(UnreadableImageError, match="no such file"):
        read_image(tmp_path)


@pytest.mark.parametrize("ext", EXTENSIONS)
def test_cut_or_flipped_headers_raise_only_the_header_error(ext: str) -> None:
    """Any prefix of a real file, and single flipped bytes in its header, give a size or a reason."""
    data = encoded(ext)
    rng = random.Random(ext)
    variants = [data[:n] for n in range(0, min(len(data), 400))]
    for _ in range(300):
        at = rng.randrange(min(len(data), 200))
        variants.append(data[:at] + bytes([data[at] ^ (1 << rng.randrange(8))]) + data[at + 1:])
    for variant in variants:
        try:
            size = declared_size(variant)
        except ImageHeaderError as err:
            assert err.why
        else:
            assert size.width >= 0 and size.height >= 0


# Peak RSS from /proc (VmHWM): ru_maxrss would carry the parent's peak over fork and exec, and
# a child started from a large pytest process would then see no growth at all.
_MEASURE = """
import json, sys
from pathlib import Path
from scanner.qr.decode import UnreadableImageError, read_image
def peak_mb():
    line = next(l for l in open("/proc/self/status") if l.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024
def reset_peak():  # the high-water mark starts again from the current resident size
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
read_image(sys.argv[1])  # warm up: OpenCV's and zxing's own start-up allocations
reset_peak()
start = peak_mb()
refused = {}
for path in sys.argv[3:]:
    try:
        read_image(path)
        refused[path] = None
    except UnreadableImageError as err:
        refused[path] = err.why
after_huge = peak_mb()
reset_peak()
before_control = peak_mb()
read_image(sys.argv[2])  # control: a large real image must show up in the measure
print(json.dumps({"start": start, "after_huge": after_huge, "before_control": before_control,
                  "after_control": peak_mb(), "refused": refused}))
"""


def test_huge_files_are_refused_in_bounded_memory_measured_in_a_child(tmp_path: Path) -> None:
    small = tmp_path / "small.png"
    small.write_bytes(encoded(".png", 64, 64))
    control = tmp_path / "control.png"  # 8000 x 8000 grey: 64 MB decoded
    control.write_bytes(cv2.imencode(".png", np.full((8000, 8000), 200, np.uint8))[1].tobytes())
    huge = []
    # The file, smaller: every row present (144 MB of zeros deflated), so OpenCV would fill it.
    for name, data in {**huge_images(), "png-bomb": png_bomb(12000)}.items():
        path = tmp_path / f"huge-{name}"
        path.write_bytes(data)
        huge.append(str(path))
    # An address-space cap, so a refusal that failed costs this machine an error, not its memory.
    code = "import resource; resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))\n" + _MEASURE
    done = subprocess.run([sys.executable, "-c", code, str(small), str(control), *huge], cwd=ROOT,
                          capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert all(figures["refused"][p] and "refused before decoding" in figures["refused"][p] for p in huge), figures
    grown = figures["after_huge"] - figures["start"]
    assert grown < 16, f"refusing {len(huge)} huge headers raised the peak by {grown:.0f} MB"
    # The measure sees decoder memory: the 64 MB control image raises the peak by at least that.
    assert figures["after_control"] - figures["before_control"] >= 60, figures
