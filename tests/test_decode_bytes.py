"""The decoding stage reads what any library reads, bytes included (issue 26): byte-mode payloads
that are no UTF-8 text, ECI codes and GS1 codes (FNC1 in first position) come out of the stage
with their exact bytes (``QrText.raw``), and bench/decode.py compares those bytes.

Every code here is rendered at test time: segno for byte mode and ECI, segno's encoder steps
plus the FNC1 mode indicator for GS1 (tests/support/qrcodes.py)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import segno
import zxingcpp
from pyzbar import pyzbar

from scanner.qr.decode import QrDecoder, read_gray
from scanner.qr.qrtext import QrText, raw_bytes
from testbed import decode_sets, decoders
from tests.support.qrcodes import gs1_qr, render

ROOT = Path(__file__).resolve().parent.parent
PHOTOS = ROOT / "tests" / "data" / "qr-photos"


def segno_image(content: str | bytes, *, encoding: str | None = None, eci: bool = False,
                mode: str | None = None) -> np.ndarray:
    qr = segno.make_qr(content, error="m", mode=mode, encoding=encoding, eci=eci)
    return render(np.asarray(qr.matrix, dtype=bool))


def decoder(name: str) -> decoders.Decode:
    """The bench's decoder `name`, which must be available here."""
    made = decoders.DECODERS[name]()
    assert made is not None, name
    return made


def in_a_frame(code: np.ndarray) -> np.ndarray:
    """The code printed on a grey card in a softly focused 640x480 camera frame."""
    frame = np.full((480, 640), 150, np.uint8)
    h, w = code.shape
    frame[100:100 + h, 150:150 + w] = (code.astype(np.float32) * 0.75 + 30).astype(np.uint8)
    noise = np.random.default_rng(3).normal(0, 3, frame.shape)
    return np.clip(cv2.GaussianBlur(frame, (0, 0), 0.8) + noise, 0, 255).astype(np.uint8)


def stage_reads(image: np.ndarray) -> list[str]:
    """What the video stage and the still-image path read."""
    text = QrDecoder(expect_prefix=None).decode(image)
    return ([text] if text is not None else []) + read_gray(image)


# -- byte mode that is no text -----------------------------------------------------------------
@pytest.mark.parametrize("payload", [
    bytes([0x80, 0xFF, 0x00, 0xFE, 0x41, 0x9D]),               # no character set makes text of it
    "Café – naïve, 5 €".encode("cp1252"),                      # Windows-1252 text: not UTF-8
    b"\x93\xfa\x96{\x8c\xea\x83e\x83L" + bytes(range(0xE0, 0xF0)),  # Shift_JIS lead bytes, then not
])
def test_a_byte_payload_that_is_no_utf8_comes_out_with_its_exact_bytes(payload: bytes) -> None:
    with pytest.raises(UnicodeDecodeError):
        payload.decode("utf-8")
    for image in (segno_image(payload), in_a_frame(segno_image(payload))):
        reads = stage_reads(image)
        assert reads and all(isinstance(r, QrText) and r.raw == payload for r in reads), [raw_bytes(r) for r in reads]
    # pyzbar reads the same code (as zbar's UTF-8 of its guess): the bench counts both by bytes.
    sample = decode_sets.Sample("bytes", segno_image(payload), raw=payload)
    assert sample.matches(decoder("pyzbar")(sample.gray, True))
    assert sample.matches(decoder("chot")(sample.gray, True))


# -- ECI ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "encoding"), [
    ("Grüße, 20 € bitte", "iso-8859-15"),
    ("Tiếng Việt có dấu", "utf-8"),
    ("Ελληνικά", "iso-8859-7"),
])
def test_eci_codes_give_their_text_and_the_bytes_in_their_character_set(text: str, encoding: str) -> None:
    image = segno_image(text, encoding=encoding, eci=True)
    for read in stage_reads(image):
        assert read == text and isinstance(read, QrText) and read.raw == text.encode(encoding)
    assert decode_sets.Sample("eci", image, raw=text.encode(encoding)).matches(decoder("chot")(image, True))
    assert decode_sets.Sample("eci", image, text=text).matches(decoder("chot")(image, True))


def test_shift_jis_byte_mode_without_eci() -> None:
    text = "日本語のテキスト"
    image = segno_image(text, encoding="shift_jis", mode="byte")
    for read in stage_reads(image):
        assert read == text and isinstance(read, QrText) and read.raw == text.encode("shift_jis")


# -- GS1 (FNC1 in first position) --------------------------------------------------------------
GS = "\x1d"


@pytest.mark.parametrize(("content", "mode", "fields"), [
    # GTIN, expiry, batch (variable: ended by FNC1, `%` in alphanumeric mode), serial
    ("01095011015300081710053110ABC123%21XYZ789", "alphanumeric", "01095011015300081710053110ABC123" + GS + "21XYZ789"),
    ("0109501101530008" + GS + "10lot-7/b", "byte", "0109501101530008" + GS + "10lot-7/b"),
    ("0104912345123459", "numeric", "0104912345123459"),
])
def test_gs1_codes_read_as_their_element_strings(content: str, mode: str, fields: str) -> None:
    image = gs1_qr(content, mode=mode)
    image = render(image)
    # The reference readings: zxing-cpp says GS1 (symbology ]Q3), pyzbar gives the fields as they are.
    (zx,) = zxingcpp.read_barcodes(image, formats=zxingcpp.BarcodeFormats(zxingcpp.BarcodeFormat.QRCode))
    assert zx.symbology_identifier == "]Q3" and zx.content_type == zxingcpp.ContentType.GS1
    assert zx.text.startswith("(01)")  # zxing-cpp's default shows them to people instead
    assert [r.data for r in pyzbar.decode(image, symbols=[pyzbar.ZBarSymbol.QRCODE])] == [fields.encode()]
    for frame in (image, in_a_frame(image)):
        reads = stage_reads(frame)
        assert reads and all(r == fields and isinstance(r, QrText) and r.raw == fields.encode() for r in reads), reads
    sample = decode_sets.Sample("gs1", image, text=fields)
    for name in ("chot", "zxing-cpp", "pyzbar"):
        assert sample.matches(decoder(name)(image, True)), name


# -- the bench's comparison --------------------------------------------------------------------
def test_the_bench_compares_bytes_where_the_decoder_gives_them() -> None:
    raw = "Café – 5 €".encode("cp1252")
    sample = decode_sets.Sample("x", np.zeros((8, 8), np.uint8), raw=raw)
    assert sample.matches([QrText(raw.decode("cp1252"), raw)])
    # A guessed character set that does not give the bytes back is no read, whatever its text
    # (one that does, as zbar's ISO-8859-1 guess turned UTF-8, still is: its text encodes back).
    lossy = raw.decode("utf-8", "replace")
    assert not sample.matches([QrText(lossy, lossy.encode("utf-8"))])
    latin = raw.decode("latin-1")
    assert sample.matches([QrText(latin, latin.encode("utf-8"))])
    assert not sample.matches([QrText("Café – 5 €", "Café – 5 €".encode())])
    # A decoder that gives text only is judged by the usual encodings of its text.
    assert sample.matches([raw.decode("latin-1")])
    gs1 = decode_sets.Sample("g", np.zeros((8, 8), np.uint8), text="0104912345123459" + GS + "10AB")
    assert gs1.matches([QrText("(01)04912345123459(10)AB", ("0104912345123459" + GS + "10AB").encode())])
    assert not gs1.matches(["(01)04912345123459(10)AB"])


def test_the_bench_lists_a_rendered_set_and_the_stage_misses_none(tmp_path: Path) -> None:
    folder = tmp_path / "bytes-eci-gs1"
    folder.mkdir()
    payload = bytes([0x80, 0xFF, 0x00, 0xFE, 0x41])
    cases = {"bytes": (segno_image(payload), payload, ".bin"),
             "eci": (segno_image("Grüße €", encoding="iso-8859-15", eci=True), "Grüße €".encode(), ".txt"),
             "gs1": (render(gs1_qr("0109501101530008" + GS + "10ABC", mode="byte")),
                     ("0109501101530008" + GS + "10ABC").encode(), ".txt")}
    for name, (image, expected, suffix) in cases.items():
        cv2.imwrite(str(folder / f"{name}.png"), image)
        (folder / f"{name}{suffix}").write_bytes(expected)
    result = decoders.run(decode_sets.folder_sets([folder]), ["chot", "zxing-cpp", "pyzbar", "opencv"])
    entry = result["sets"]["bytes-eci-gs1"]
    assert entry["decoders"]["chot"]["correct"] == 3 and entry["stage_misses"] == []
    assert entry["decoders"]["pyzbar"]["correct"] == 3  # what makes "no miss" mean something


def test_the_public_photo_set_has_no_image_a_library_reads_and_the_stage_misses() -> None:
    names = ["chot", *decoders.LIBRARIES]
    result = decoders.run(decode_sets.folder_sets([PHOTOS]), names)
    assert len(result["sets"]) == 4
    misses = {name: entry["stage_misses"] for name, entry in result["sets"].items() if entry["stage_misses"]}
    assert misses == {}
    # The two payloads in it that are no UTF-8 text (Shift_JIS: byte mode and kanji mode) are read
    # with their exact bytes, not only as a text some encoding happens to give back.
    for case in ("billboard-2", "kanji"):
        gray = cv2.imread(str(PHOTOS / "jsqr-e2e-a" / f"{case}.png"), cv2.IMREAD_GRAYSCALE)
        assert gray is not None, case
        expected = (PHOTOS / "jsqr-e2e-a" / f"{case}.bin").read_bytes()
        assert [raw_bytes(t) for t in read_gray(gray)] == [expected], case
