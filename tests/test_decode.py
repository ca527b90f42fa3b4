"""The QR decoding stage: real photos, rendered phone screens, empty frames, tracking, bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import segno

import scanner.qr.decode as stage
from scanner import phone_screen
from scanner.qr.decode import BadFrameError, QrDecoder, UnreadableImageError, read_gray, read_image
from testbed import decode_sets, decoders

ROOT = Path(__file__).resolve().parent.parent
PHOTOS = ROOT / "tests" / "data" / "qr-photos"
SYNTHETIC_COUNT = 24  # per resolution: the first frames of the benchmark's own fixed-seed sets




@pytest.fixture(scope="module")
def photo_sets() -> dict:
    return decode_sets.folder_sets([PHOTOS])


@pytest.fixture(scope="module")
def synthetic_sets() -> dict:
    return decode_sets.synthetic_sets(SYNTHETIC_COUNT)


@pytest.fixture(scope="module")
def photo_scores(photo_sets) -> dict:
    return _totals(decoders.run(photo_sets, ["chot", "chot-image", "zxing-cpp", "pyzbar", "opencv", "opencv-aruco"]))


@pytest.fixture(scope="module")
def synthetic_scores(synthetic_sets) -> dict:
    hard = {name: s for name, s in synthetic_sets.items() if "-hard-" in name}
    return _totals(decoders.run(hard, ["chot", "zxing-cpp", "pyzbar", "opencv-aruco"]))


def _totals(result: dict) -> dict[str, float]:
    """Share read correctly per decoder over all sets of a run."""
    correct: dict[str, int] = {}
    count: dict[str, int] = {}
    for entry in result["sets"].values():
        for name, score in entry["decoders"].items():
            correct[name] = correct.get(name, 0) + score["correct"]
            count[name] = count.get(name, 0) + score["count"]
    return {name: correct[name] / count[name] for name in correct}


def test_photo_sets_are_all_there(photo_sets) -> None:
    assert sorted(photo_sets) == ["qr-photos/jsqr-e2e-a", "qr-photos/zxing-qrcode-1",
                                  "qr-photos/zxing-qrcode-3", "qr-photos/zxing-qrcode-6"]
    assert sum(len(s) for s in photo_sets.values()) == 103


def test_stage_reads_the_real_photos(photo_scores) -> None:
    # Measured 103/103 for both paths; the aim is 95%.
    assert photo_scores["chot"] >= 0.97
    assert photo_scores["chot-image"] >= 0.97


def test_no_library_alone_beats_the_stage_on_photos(photo_scores) -> None:
    for library in ("zxing-cpp", "pyzbar", "opencv", "opencv-aruco"):
        assert photo_scores[library] <= photo_scores["chot"], library


def test_stage_reads_hard_phone_screens(synthetic_scores) -> None:
    # Measured 22/24 at 1280x720 and 23/24 at 640x480 (92% and 93% on the first 100 frames,
    # zxing-cpp alone 52% and 42%); the aim is 80%.
    assert synthetic_scores["chot"] >= 0.88


def test_no_library_alone_beats_the_stage_on_phone_screens(synthetic_scores) -> None:
    for library in ("zxing-cpp", "pyzbar", "opencv-aruco"):
        assert synthetic_scores[library] <= synthetic_scores["chot"], library
    assert synthetic_scores["zxing-cpp"] < 0.75  # the set really is hard for the best library


def test_empty_frames_give_none(synthetic_sets) -> None:
    decoder = QrDecoder()
    frames = [s.gray for s in synthetic_sets["synthetic-empty-1280x720"]]
    frames += [np.zeros((720, 1280), np.uint8), np.full((480, 640), 255, np.uint8),
               np.random.default_rng(1).integers(0, 256, (720, 1280), dtype=np.uint8)]
    assert [decoder.decode(f) for f in frames] == [None] * len(frames)


def test_tracking_reads_the_next_frames_in_the_crop() -> None:
    rng = np.random.default_rng(5)
    payload = phone_screen.hc1_like_payload(rng)
    frames = [phone_screen.render_phone_frame(payload, rng, difficulty="easy") for _ in range(3)]
    decoder = QrDecoder()
    first = decoder.decode(frames[0])
    assert first == payload and decoder.last_method == "frame"
    # The same phone in the same place: the tracked crop alone reads it.
    assert decoder.decode(frames[0]) == payload and decoder.last_method == "tracked"
    # A phone elsewhere: the tracked crop misses, the frame pass still reads it.
    assert decoder.decode(frames[1]) == payload
    decoder.reset()
    assert decoder.decode(frames[2]) == payload and decoder.last_method != "tracked"


def test_a_code_the_frame_pass_read_is_tracked_without_deblurring_or_enlarging(monkeypatch) -> None:
    """A large code read by zxing's own search is looked for the same way in its tracked crop:
    deblurring and enlarging a phone-sized crop cost about 10 ms a frame and read nothing more.
    A phone held still (a few frames of hand shake), then the person gone: no retry deblurs or
    enlarges the tracked crop in any of those frames."""
    rng = np.random.default_rng(8)
    payload = phone_screen.hc1_like_payload(rng)
    frames = phone_screen.render_phone_sequence(payload, rng, 4, difficulty="easy")
    decoder = QrDecoder()
    assert decoder.decode(frames[0]) == payload and decoder.last_method == "frame"
    applied: list[str] = []
    original = stage._Retry.apply
    monkeypatch.setattr(stage._Retry, "apply",
                        lambda self, crop, scale: applied.append(self.name) or original(self, crop, scale))
    monkeypatch.setattr(stage.QrDecoder, "_textured_regions", lambda self, gray: [])  # the tracked crop alone
    for frame in frames[1:]:
        assert decoder.decode(frame) == payload
    assert applied and set(applied) == {"x1.0+whole"}
    applied.clear()
    assert decoder.decode(np.full_like(frames[0], 90)) is None  # the phone is gone
    assert applied == ["x1.0+whole"]


def test_a_code_a_retry_read_is_tracked_with_that_retry() -> None:
    decoder = QrDecoder()
    decoder._tracked_by = decoder._tracked_ladder()[0]
    assert [r.name for r in decoder._tracked_ladder()] == ["x1.0+whole"]
    decoder._tracked_by = stage._BINARISED
    assert [r.name for r in decoder._tracked_ladder()] == ["x1.0", "x2.5+binary"]
    decoder._tracked_by = stage._AS_IS
    assert [r.name for r in decoder._tracked_ladder()] == ["x1.0"]
    decoder._tracked_by = stage._LOCATED
    assert [r.name for r in decoder._tracked_ladder()] == ["x1.0", "located"]


def test_finder_patterns_seen_bring_the_whole_ladder_with_the_locator_last(monkeypatch) -> None:
    """On the most textured region, zxing reporting a code it cannot read (finder patterns seen)
    brings the retries of the whole ladder, in its order, and the stage's own locator last."""
    tried: list[str] = []

    class Failed:  # what zxing-cpp returns for a code it found and could not decode
        valid, text = False, ""

    def zxing(image, **flags):
        tried.append("binary" if flags.get("binary") else f"{image.shape[1]}")
        return [Failed()]

    monkeypatch.setattr(stage, "_zxing", zxing)
    monkeypatch.setattr(stage.QrDecoder, "_read_located", lambda self, crop, region: tried.append("located"))
    gray = np.random.default_rng(9).integers(0, 255, (400, 400), dtype=np.uint8)
    assert QrDecoder()._read_crop(gray, stage.Region(50, 50, 200, 200), stage._MOST_TEXTURED) is None
    ladder = stage._LADDERS[stage._DETECTED]
    assert [r.name for r in ladder] == ["wiener1.25+x2.5", "x2.5+binary", "x3.0", "wiener1.5+x2.0",
                                        "wiener1.25+x2.0", "located"]
    assert tried == ["500", "binary", "600", "400", "400", "located"]


def test_a_textured_region_without_finder_patterns_gets_the_locator_after_its_retries(monkeypatch) -> None:
    tried: list[str] = []
    monkeypatch.setattr(stage, "_zxing", lambda image, **flags: tried.append("zxing") or [])
    monkeypatch.setattr(stage.QrDecoder, "_read_located", lambda self, crop, region: tried.append("located"))
    gray = np.zeros((400, 400), np.uint8)
    assert QrDecoder()._read_crop(gray, stage.Region(0, 0, 300, 300), stage._MOST_TEXTURED) is None
    assert tried == ["zxing", "zxing", "located"]
    tried.clear()
    assert QrDecoder()._read_crop(gray, stage.Region(0, 0, 300, 300), stage._TEXTURED) is None
    assert tried == ["zxing"]  # other textured regions (most of an empty frame's): one retry


def _canvas_with_codes(*payloads: str) -> np.ndarray:
    """A plain grey image with each payload's QR code side by side, 4 px per module."""
    tiles = [np.kron(~phone_screen.qr_modules(p), np.ones((4, 4), bool)) for p in payloads]
    side = max(t.shape[0] for t in tiles) + 64
    canvas = np.full((side, side * len(tiles)), 255, np.uint8)
    for i, tile in enumerate(tiles):
        canvas[32:32 + tile.shape[0], i * side + 32:i * side + 32 + tile.shape[1]] = tile * 255
    return canvas


def test_hc1_read_is_preferred_over_another_code_in_view() -> None:
    hc1 = phone_screen.hc1_like_payload(np.random.default_rng(2), 300)
    canvas = _canvas_with_codes("https://example.org/menu", hc1)
    assert QrDecoder().decode(canvas) == hc1
    # Without an HC1 code in view, the other text still comes back (the verifier says why it is red).
    assert QrDecoder().decode(_canvas_with_codes("https://example.org/menu")) == "https://example.org/menu"
    assert sorted(read_gray(canvas)) == sorted(["https://example.org/menu", hc1])


def test_read_image_returns_any_text(tmp_path: Path) -> None:
    path = tmp_path / "code.png"
    segno.make_qr("plain text, not a certificate").save(str(path), scale=5)
    assert read_image(path) == ["plain text, not a certificate"]
    kanji = PHOTOS / "jsqr-e2e-a" / "kanji.png"
    expected = (PHOTOS / "jsqr-e2e-a" / "kanji.bin").read_bytes()
    texts = read_image(kanji)
    assert decode_sets.Sample("kanji", np.zeros((1, 1), np.uint8), raw=expected).matches(texts)
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((200, 200), 255, np.uint8))
    assert read_image(blank) == []


def test_read_image_says_why_it_cannot(tmp_path: Path) -> None:
    with pytest.raises(UnreadableImageError, match="no such file"):
        read_image(tmp_path / "missing.png")
    bogus = tmp_path / "bogus.png"
    bogus.write_bytes(b"not an image at all")
    with pytest.raises(UnreadableImageError, match="not an image"):
        read_image(bogus)
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    with pytest.raises(UnreadableImageError, match="not an image"):
        read_image(empty)


@pytest.mark.parametrize("frame, reason", [
    ([[0, 1], [2, 3]], "numpy array"),
    (np.zeros((720, 1280, 3), np.uint8), "grey"),
    (np.zeros((720, 1280), np.float32), "uint8"),
    (np.zeros((4, 4), np.uint8), "outside"),
])
def test_bad_frames_are_refused_with_a_reason(frame, reason: str) -> None:
    with pytest.raises(BadFrameError, match=reason):
        QrDecoder().decode(frame)


def test_frames_that_are_views_are_read() -> None:
    rng = np.random.default_rng(9)
    payload = phone_screen.hc1_like_payload(rng)
    frame = phone_screen.render_phone_frame(payload, rng, difficulty="easy")
    wide = np.zeros((720, 1400), np.uint8)
    wide[:, :1280] = frame
    assert QrDecoder().decode(wide[:, :1280]) == payload  # not contiguous: copied, not misread


def test_phone_frames_are_seeded_and_sized() -> None:
    payload = phone_screen.hc1_like_payload(np.random.default_rng(0))
    assert payload.startswith("HC1:") and 590 <= len(payload) <= 600
    one = phone_screen.render_phone_frame(payload, np.random.default_rng(3), (640, 480))
    two = phone_screen.render_phone_frame(payload, np.random.default_rng(3), (640, 480))
    assert one.shape == (480, 640) and one.dtype == np.uint8 and np.array_equal(one, two)
    assert phone_screen.empty_frame(np.random.default_rng(3), (1280, 720)).shape == (720, 1280)
    other = phone_screen.render_phone_frame(payload, np.random.default_rng(4), (640, 480))
    assert not np.array_equal(one, other)


def test_phone_frame_errors_are_readable() -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(phone_screen.PhoneScreenError, match="difficulty"):
        phone_screen.render_phone_frame("HC1:ABC", rng, difficulty="impossible")
    with pytest.raises(phone_screen.PhoneScreenError, match="frame size"):
        phone_screen.render_phone_frame("HC1:ABC", rng, size=(10, 10))
    with pytest.raises(phone_screen.PhoneScreenError, match="square"):
        phone_screen.render_phone_frame(np.zeros((30, 20), bool), rng)
    with pytest.raises(phone_screen.PhoneScreenError, match="cannot encode"):
        phone_screen.render_phone_frame("X" * 5000, rng)
    with pytest.raises(phone_screen.PhoneScreenError, match="1..1000"):
        phone_screen.render_phone_sequence("HC1:ABC", rng, 0)


def test_bench_json_has_stable_names() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "bench.decode", str(PHOTOS / "zxing-qrcode-6"),
         "--decoders", "chot,zxing-cpp", "--json"],
        capture_output=True, text=True, timeout=120, check=True, cwd=ROOT)
    result = json.loads(out.stdout)
    score = result["sets"]["zxing-qrcode-6"]["decoders"]["chot"]
    assert set(score) == {"correct", "count", "share", "median_ms", "p95_ms"} and score["count"] == 15
    assert result["command"].startswith(".venv/bin/python -m bench.decode")


def test_clips_of_a_held_phone_are_read_in_some_frame() -> None:
    # Measured on 20 clips of 8 frames: 100% of clips read at both sizes (93% and 92% of
    # frames); zxing-cpp alone 55% and 70% of clips.
    clips = decode_sets.synthetic_clips(5)
    result = decoders.run(clips, ["chot", "zxing-cpp"])
    for name, entry in result["sets"].items():
        chot, zxing = entry["decoders"]["chot"], entry["decoders"]["zxing-cpp"]
        assert chot["clip_share"] >= 0.8, name
        assert zxing["share"] <= chot["share"] and zxing["clip_share"] <= chot["clip_share"], name
