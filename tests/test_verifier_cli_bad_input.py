"""`chot verify` on input it cannot read: exit 3 with one clear line, never a traceback or a verdict.

Exit codes 1 and 2 mean yellow and red, so a crash (Python's exit 1) or an unreadable file
judged as QR text (red, exit 2) would read as a verdict about a person.
"""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives.serialization import Encoding

from testbed.fuzz.hugeimages import huge_images
from chot.cli import main

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def dsc(ministry, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("cli-bad") / "dsc.der"
    path.write_bytes(ministry.general.certificate.public_bytes(Encoding.DER))
    return path


def huge_png(width: int, height: int) -> bytes:
    """A valid PNG header declaring width x height grey pixels, with one tiny IDAT."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    rows = (b"\0" * (width + 1) * height) if width * height <= 1 << 20 else b"\0" * 64  # whole only if small
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def bad_inputs(folder: Path) -> dict[str, tuple[list[str], bytes | None, str]]:
    """name -> (arguments, stdin, words the one error line must hold)."""
    random_bytes = folder / "random.bin"
    random_bytes.write_bytes(os.urandom(2000).replace(b"\x89PNG", b"xxxx") + b"\xff\xfe")
    latin = folder / "latin1.txt"
    latin.write_bytes(b"HC1:NCF\xe9\xe9 caf\xe9")
    empty = folder / "empty.txt"
    empty.write_bytes(b"")
    blank = folder / "blank.txt"
    blank.write_bytes(b" \n\t\n")
    big = folder / "big.txt"
    big.write_bytes(b"HC1:" + b"A" * (2 << 20))
    no_code = folder / "no-code.png"
    no_code.write_bytes(huge_png(64, 64))
    broken = folder / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    giant = folder / "giant.png"
    giant.write_bytes(huge_png(30000, 30000))
    return {
        "random bytes": ([str(random_bytes)], None, "not UTF-8"),
        "HC1 then latin-1": ([str(latin)], None, "not UTF-8"),
        "missing png": ([str(folder / "nope.png")], None, "no such file"),
        "missing in a folder": ([str(folder / "sub" / "nope")], None, "no such file"),
        "a folder": ([str(folder)], None, "folder"),
        "empty file": ([str(empty)], None, "empty"),
        "blank file": ([str(blank)], None, "empty"),
        "too big": ([str(big)], None, "KiB"),
        "empty stdin": ([], b"", "standard input: empty"),
        "dash and blank stdin": (["-"], b"\n  \n", "empty"),
        "stdin not utf-8": ([], b"HC1:\xe9\xff", "not UTF-8"),
        "image without a code": ([str(no_code)], None, "no QR code"),
        "broken image": ([str(broken)], None, "broken.png"),
        "giant image": ([str(giant)], None, "30000x30000"),
    }


@pytest.fixture(scope="module")
def cases(tmp_path_factory) -> dict[str, tuple[list[str], bytes | None, str]]:
    return bad_inputs(tmp_path_factory.mktemp("inputs"))


NAMES = ["random bytes", "HC1 then latin-1", "missing png", "missing in a folder", "a folder", "empty file",
         "blank file", "too big", "empty stdin", "dash and blank stdin", "stdin not utf-8", "image without a code",
         "broken image", "giant image"]


@pytest.mark.parametrize("name", NAMES)
def test_unreadable_input_is_an_error_with_one_clear_line(cases, dsc: Path, name: str) -> None:
    args, stdin, words = cases[name]
    result = CliRunner().invoke(main, ["verify", *args, "--dsc", str(dsc)], input=stdin)
    assert result.exit_code == 3, (result.exit_code, result.output, result.exception)
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit), result.exception
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    assert words in lines[0], lines[0]
    assert not lines[0].upper().startswith(("ERROR: RED", "ERROR: GREEN"))


def test_the_real_command_exits_3_without_a_traceback(cases, dsc: Path, tmp_path: Path) -> None:
    """The process as a user runs it, including an argument that is not UTF-8 at all."""
    runs = [cases["HC1 then latin-1"][0], cases["missing png"][0], [os.fsdecode(b"HC1:\xe9\xff")]]
    for args in runs:
        done = subprocess.run([sys.executable, "-m", "chot", "verify", *args, "--dsc", str(dsc)],
                              cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert done.returncode == 3, (args, done.returncode, done.stderr)
        assert "Traceback" not in done.stderr and done.stdout == "", done.stderr
        assert len(done.stderr.strip().splitlines()) == 1 and done.stderr.startswith("Error: "), done.stderr


def test_a_text_file_with_a_byte_order_mark_is_read(dsc: Path, tmp_path: Path, ministry) -> None:
    path = tmp_path / "bom.txt"
    path.write_bytes(b"\xef\xbb\xbf" + ministry.issue_vaccination().hc1.encode() + b"\r\n")
    result = CliRunner().invoke(main, ["verify", str(path), "--dsc", str(dsc)])
    assert result.exit_code in (0, 1), result.output  # judged as the certificate it holds, not as "prefix"
    assert "prefix" not in result.output


def test_text_on_the_command_line_is_still_judged(dsc: Path) -> None:
    """Words that are not a file name are QR text (red, exit 2); HC1 text never touches the disk."""
    for text in ("hello", "HC1:nope.png"):
        result = CliRunner().invoke(main, ["verify", text, "--dsc", str(dsc)])
        assert result.exit_code == 2, result.output
        assert result.output.startswith("RED")
    long_text = "x" * 5000  # too long for a file name: text, not an OSError
    assert CliRunner().invoke(main, ["verify", long_text, "--dsc", str(dsc)]).exit_code == 2


@pytest.mark.parametrize("name", sorted(huge_images()))
def test_an_image_declaring_a_huge_size_is_an_error_not_a_verdict(dsc: Path, tmp_path: Path, name: str) -> None:
    path = tmp_path / f"huge-{name}.img"
    path.write_bytes(huge_images()[name])
    result = CliRunner().invoke(main, ["verify", str(path), "--dsc", str(dsc)])
    assert result.exit_code == 3, result.output
    assert "refused before decoding" in result.output and len(result.output.strip().splitlines()) == 1
