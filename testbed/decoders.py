"""The decoders the decode bench compares (chot's stage and each library alone) and its run.

`run(sets, decoder_names)` scores each decoder on every set of testbed.decode_sets: how many
samples it reads right and how long a frame takes (CPU or wall clock).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import cv2
import numpy as np

from scanner.qr.decode import QrDecoder, read_gray
from testbed.decode_sets import Sample

LIBRARIES = ("zxing-cpp", "pyzbar", "opencv", "opencv-aruco", "wechat")  # each alone, as peers


@dataclass
class Score:
    """How one decoder did on one set."""

    correct: int = 0
    times_ms: list[float] = field(default_factory=list)
    clips: dict[int, bool] = field(default_factory=dict)  # clip -> read in at least one frame

    def as_dict(self, count: int) -> dict[str, float | int]:
        figures: dict[str, float | int] = {
            "correct": self.correct, "count": count, "share": round(self.correct / count, 4) if count else 0.0,
            "median_ms": round(statistics.median(self.times_ms), 3) if self.times_ms else 0.0,
            "p95_ms": round(float(np.percentile(self.times_ms, 95)), 3) if self.times_ms else 0.0}
        if self.clips:
            figures["clips"] = len(self.clips)
            figures["clip_share"] = round(sum(self.clips.values()) / len(self.clips), 4)
        return figures


# --- decoders: each takes a grey image (and whether it starts a new clip), returns every text read

Decode = Callable[[np.ndarray, bool], list[str]]


def _chot_frame(use_pyzbar: bool = False) -> Decode:
    decoder = QrDecoder(use_pyzbar=use_pyzbar)

    def run(gray: np.ndarray, fresh: bool) -> list[str]:
        if fresh:  # a new image or clip: no tracking help from the previous one
            decoder.reset()
        text = decoder.decode(gray)
        return [text] if text is not None else []
    return run


def _zxing() -> Decode:
    import zxingcpp

    def run(gray: np.ndarray, fresh: bool) -> list[str]:
        return [b.text for b in zxingcpp.read_barcodes(gray, formats=zxingcpp.BarcodeFormat.QRCode)]
    return run


def _pyzbar() -> Decode:
    from pyzbar import pyzbar

    def run(gray: np.ndarray, fresh: bool) -> list[str]:
        return [t for r in pyzbar.decode(gray, symbols=[pyzbar.ZBarSymbol.QRCODE]) for t in _bytes_to_texts(r.data)]
    return run


def _bytes_to_texts(data: bytes) -> list[str]:
    if not data:
        return []
    try:
        return [data.decode("utf-8")]
    except UnicodeDecodeError:
        return [data.decode("iso-8859-1")]


def _opencv() -> Decode:
    detector = cv2.QRCodeDetector()

    def run(gray: np.ndarray, fresh: bool) -> list[str]:
        data, _, _ = detector.detectAndDecodeBytes(gray)  # bytes: the text API fails on non-UTF-8
        return _bytes_to_texts(data)
    return run


def _opencv_aruco() -> Decode:
    detector = cv2.QRCodeDetectorAruco()

    def run(gray: np.ndarray, fresh: bool) -> list[str]:
        data, _, _ = detector.detectAndDecodeBytes(gray)
        return _bytes_to_texts(data)
    return run


def _wechat() -> Decode | None:
    factory = getattr(cv2, "wechat_qrcode_WeChatQRCode", None)
    if factory is None:  # only in opencv-contrib builds
        return None
    detector = factory()

    def run(gray: np.ndarray, fresh: bool) -> list[str]:
        texts, _ = detector.detectAndDecode(gray)
        return [t for t in texts if t]
    return run


DECODERS: dict[str, Callable[[], Decode | None]] = {
    "chot": _chot_frame,  # the scanner's per-frame stage, as the unit runs it
    "chot+pyzbar": lambda: _chot_frame(use_pyzbar=True),  # what pyzbar adds as a last retry
    "chot-image": lambda: lambda gray, fresh: read_gray(gray),  # the path of `chot verify IMAGE`
    "zxing-cpp": _zxing,
    "pyzbar": _pyzbar,
    "opencv": _opencv,
    "opencv-aruco": _opencv_aruco,
    "wechat": _wechat,
}


def run(sets: dict[str, list[Sample]], decoder_names: Iterable[str], clock: str = "cpu") -> dict:
    """Every decoder on every set: {"sets": {set: {"count", "decoders": {name: score}}}, ...}."""
    timer = time.thread_time if clock == "cpu" else time.perf_counter
    decoders = {}
    unavailable = []
    for name in decoder_names:
        made = DECODERS[name]()
        if made is None:
            unavailable.append(name)
        else:
            decoders[name] = made
    result: dict = {"clock": clock, "unavailable": unavailable, "sets": {}}
    for set_name, samples in sets.items():
        scores = {name: Score() for name in decoders}
        misses = []
        previous_clip = -1
        for sample in samples:
            fresh = sample.clip < 0 or sample.clip != previous_clip
            previous_clip = sample.clip
            hits = {}
            for name, decode in decoders.items():
                start = timer()
                texts = decode(sample.gray, fresh)
                scores[name].times_ms.append((timer() - start) * 1000.0)
                hit = hits[name] = sample.matches(texts)
                scores[name].correct += hit
                if sample.clip >= 0:
                    scores[name].clips[sample.clip] = scores[name].clips.get(sample.clip, False) or hit
            read_by = [name for name in LIBRARIES if hits.get(name)]
            if "chot" in hits and not hits["chot"] and read_by:
                misses.append({"image": sample.name, "read_by": read_by})
        result["sets"][set_name] = {
            "count": len(samples),
            "decoders": {name: score.as_dict(len(samples)) for name, score in scores.items()},
            "stage_misses": misses,
        }
    return result
