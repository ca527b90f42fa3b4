"""Benchmark chot's QR decoding stage against each decoding library alone, on the same images.

    .venv/bin/python bench/decode.py tests/data/qr-photos --synthetic 100
    .venv/bin/python bench/decode.py /work/shared/qr-photos --json

For every set (a folder of ``NAME.png``/``.jpg`` with ``NAME.txt`` or ``NAME.bin``, as in
``tests/data/qr-photos``; a folder of such folders gives one set each) and every decoder, prints
the share of images read correctly and the median decoding time in milliseconds, one thread.
``--synthetic N`` adds N rendered phone-screen frames of dense HC1 codes at 1280x720 and at
640x480 (fixed seed) and N frames with no code (there, "read" is the share with no false read).
It also adds N frames at 1280x720 through random screen and camera models (``varied``: LCD,
OLED, old LCD; Pi camera, JPEG webcam, sharpening HQ camera; rolling shutter, reflections of a
face or a ceiling light) and N of phones in dark mode (``dark``: light codes on dark screens).
The ``heldout-*`` sets are the same kinds drawn from ``HELD_OUT_SEED``, a seed no threshold of
the stage was tuned on: their figures are the honest ones.
``--clips N`` adds N short videos (8 frames each) of a phone held still per resolution: chot's
stage keeps its state within a clip, and "clips read" is the share read in at least one frame.
``--variants`` adds an inverted (light-on-dark), a mirrored and a rephotographed (tilted, smaller,
soft, JPEG: ``printed_scenes.rephotographed``) copy of every folder image, one set each per folder
given. ``--scenes N`` adds N rendered photos of printed codes per kind:
small codes in 1920x1080 frames, low-resolution photos, codes on a cylinder, codes tilted 45-65
degrees (``scanner/printed_scenes.py``).
After the table, every image that chot's stage misses and some library alone reads is listed
(``stage_misses`` per set in the JSON).
Expected content is compared byte for byte (``.txt`` files are read as bytes, so CRLF stays CRLF):
a read matches when its text equals the ``.txt``, or when the payload bytes the decoder reports
(chot's ``QrText.raw``, zxing-cpp's ``bytes``, pyzbar's and OpenCV's data) equal the ``.txt``'s
UTF-8 or the ``.bin``'s bytes; for a decoder that gives text only, a ``.bin`` matches a text
whose UTF-8, ISO-8859-1 or Shift_JIS encoding gives its bytes. So a byte-mode payload that is
no text, an ECI code or a GS1 code (FNC1, fields ended by GS) counts as read only with its
bytes right, whatever character set a library guessed for showing it. Times are the decoding call alone (the image is already grey in memory), as the thread's CPU
time by default (steady on a shared machine); ``--clock wall`` gives wall-clock time instead.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shlex
import statistics
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one thread, as on the unit's decode loop

import cv2  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scanner import phone_screen, printed_scenes  # noqa: E402
from scanner.decode import QrDecoder, read_gray  # noqa: E402
from scanner.qrtext import QrText  # noqa: E402

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
SEED = 20211001
HELD_OUT_SEED = 20260917  # never used while tuning the stage: the heldout-* sets come from it
LIBRARIES = ("zxing-cpp", "pyzbar", "opencv", "opencv-aruco", "wechat")  # each alone, as peers
HC1_LENGTH = 600  # characters of a typical HC1 payload (version 19 at level Q)


@dataclass
class Sample:
    """One image and what it should read as: text, raw bytes, or None for no code at all."""

    name: str
    gray: np.ndarray
    text: str | None = None
    raw: bytes | None = None
    clip: int = -1  # frames of one video clip share a number; -1 is a lone image
    truth: phone_screen.Scene | None = None  # where a rendered frame's code truly lies

    def matches(self, texts: list[str]) -> bool:
        """True when a decoder's texts hold the expected content (or nothing, for an empty frame)."""
        if self.text is None and self.raw is None:
            return not texts
        return any(self._is_expected(text) for text in texts)

    def _is_expected(self, text: str) -> bool:
        raw = text.raw if isinstance(text, QrText) else None  # the payload's bytes, where the decoder gives them
        if self.text is not None:
            return text == self.text or (raw is not None and raw == self.text.encode("utf-8"))
        if raw is not None and raw == self.raw:
            return True
        for encoding in ("utf-8", "iso-8859-1", "shift_jis"):
            try:
                if text.encode(encoding) == self.raw:
                    return True
            except UnicodeEncodeError:
                continue
        return False


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
        return [QrText.of(b) for b in zxingcpp.read_barcodes(gray, formats=zxingcpp.BarcodeFormat.QRCode)]
    return run


def _pyzbar() -> Decode:
    from pyzbar import pyzbar

    def run(gray: np.ndarray, fresh: bool) -> list[str]:
        return [t for r in pyzbar.decode(gray, symbols=[pyzbar.ZBarSymbol.QRCODE]) for t in _bytes_to_texts(r.data)]
    return run


def _bytes_to_texts(data: bytes) -> list[str]:
    """A library's payload bytes as one read: the bytes kept, the text UTF-8 else ISO-8859-1."""
    if not data:
        return []
    try:
        return [QrText(data.decode("utf-8"), data)]
    except UnicodeDecodeError:
        return [QrText(data.decode("iso-8859-1"), data)]


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


# --- sets --------------------------------------------------------------------------------------

def load_folder(folder: Path) -> list[Sample]:
    """The labelled images of one folder, sorted by name; unlabelled images are skipped."""
    samples = []
    for image in sorted(folder.iterdir()):
        if image.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        txt, binary = image.with_suffix(".txt"), image.with_suffix(".bin")
        text = txt.read_bytes().decode("utf-8") if txt.is_file() else None  # bytes: keep CRLF as written
        raw = binary.read_bytes() if binary.is_file() and text is None else None
        if text is None and raw is None:
            continue
        gray = cv2.imdecode(np.fromfile(image, dtype=np.uint8), cv2.IMREAD_GRAYSCALE)
        if gray is None:
            print(f"skipping {image}: not an image OpenCV can open", file=sys.stderr)
            continue
        samples.append(Sample(image.stem, gray, text, raw))
    return samples


def folder_sets(paths: Iterable[Path]) -> dict[str, list[Sample]]:
    """One set per folder holding images; a folder of such folders gives one set per child."""
    sets: dict[str, list[Sample]] = {}
    for path in paths:
        if not path.is_dir():
            raise SystemExit(f"not a folder: {path}")
        own = load_folder(path)
        if own:
            sets[path.name] = own
        for child in sorted(p for p in path.iterdir() if p.is_dir()):
            samples = load_folder(child)
            if samples:
                sets[f"{path.name}/{child.name}"] = samples
    return sets


def synthetic_payload(rng: np.random.Generator) -> str:
    """A realistic HC1 payload for the rendered frames."""
    return phone_screen.hc1_like_payload(rng, HC1_LENGTH)


def synthetic_sets(count: int, difficulty: str = "hard", seed: int = SEED) -> dict[str, list[Sample]]:
    """Rendered phone-screen frames of dense HC1 codes (1280x720, 640x480) and empty frames."""
    sets: dict[str, list[Sample]] = {}
    for size in (phone_screen.HD, phone_screen.VGA):
        rng = np.random.default_rng([seed, size[0]])
        samples = []
        for i in range(count):
            payload = synthetic_payload(rng)
            scene = phone_screen.render_phone_scene(payload, rng, size, difficulty)
            samples.append(Sample(f"{i:04d}", scene.frame, payload, truth=scene))
        sets[f"synthetic-{difficulty}-{size[0]}x{size[1]}"] = samples
    rng = np.random.default_rng([seed, 0])
    sets["synthetic-empty-1280x720"] = [Sample(f"{i:04d}", phone_screen.empty_frame(rng, phone_screen.HD, difficulty))
                                        for i in range(count)]
    return sets


def varied_sets(count: int, difficulty: str = "hard", seed: int = SEED, prefix: str = "synthetic") -> dict[str, list[Sample]]:
    """Frames through random screen and camera models at 1280x720, and of phones in dark mode."""
    sets: dict[str, list[Sample]] = {}
    for kind, dark in (("varied", None), ("dark", True)):
        rng = np.random.default_rng([seed, 1, int(bool(dark))])
        samples = []
        for i in range(count):
            payload = synthetic_payload(rng)
            look = phone_screen.random_look(rng, dark)
            scene = phone_screen.render_varied_scene(payload, rng, phone_screen.HD, difficulty, look)
            samples.append(Sample(f"{i:04d}-{look.name.replace('/', '-')}", scene.frame, payload, truth=scene))
        sets[f"{prefix}-{kind}-1280x720"] = samples
    return sets


def held_out_sets(count: int, difficulty: str = "hard") -> dict[str, list[Sample]]:
    """The hard, varied and dark sets again, from the held-out seed."""
    sets = {name.replace("synthetic-", "heldout-"): samples
            for name, samples in synthetic_sets(count, difficulty, HELD_OUT_SEED).items() if "-empty-" not in name}
    sets.update(varied_sets(count, difficulty, HELD_OUT_SEED, "heldout"))
    return sets


def variant_sets(sets: dict[str, list[Sample]], seed: int = SEED) -> dict[str, list[Sample]]:
    """An inverted, a mirrored and a rephotographed copy of the given sets, pooled per top folder."""
    variants: dict[str, list[Sample]] = {}
    rng = np.random.default_rng([seed, 3])
    rephotographed = functools.partial(printed_scenes.rephotographed, rng=rng)
    for set_name, samples in sets.items():
        top = set_name.split("/")[0]
        for kind, change in (("inverted", printed_scenes.inverted), ("mirrored", printed_scenes.mirrored),
                             ("rephotographed", rephotographed)):
            variants.setdefault(f"{top}-{kind}", []).extend(
                Sample(f"{set_name}/{s.name}", change(s.gray), s.text, s.raw) for s in samples)
    return variants


def scene_sets(count: int, seed: int = SEED) -> dict[str, list[Sample]]:
    """``count`` rendered photos of printed codes per kind of ``printed_scenes``."""
    sets: dict[str, list[Sample]] = {}
    for index, kind in enumerate(printed_scenes.KINDS):
        rng = np.random.default_rng([seed, 2, index])
        samples = []
        for i in range(count):
            text = printed_scenes.scene_text(rng)
            samples.append(Sample(f"{i:04d}", printed_scenes.render_scene(kind, text, rng), text))
        sets[f"scenes-{kind}"] = samples
    return sets


def synthetic_clips(count: int, frames: int = 8, difficulty: str = "hard", seed: int = SEED) -> dict[str, list[Sample]]:
    """``count`` clips of ``frames`` frames of a phone held still, at 1280x720 and 640x480."""
    sets: dict[str, list[Sample]] = {}
    for size in (phone_screen.HD, phone_screen.VGA):
        rng = np.random.default_rng([seed, size[0], frames])
        samples = []
        for clip in range(count):
            payload = synthetic_payload(rng)
            for i, gray in enumerate(phone_screen.render_phone_sequence(payload, rng, frames, size, difficulty)):
                samples.append(Sample(f"{clip:04d}-{i:02d}", gray, payload, clip=clip))
        sets[f"clips-{difficulty}-{size[0]}x{size[1]}"] = samples
    return sets


# --- running -------------------------------------------------------------------------------------

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


def print_table(result: dict, out=sys.stdout) -> None:
    """The figures as one line per set and decoder."""
    print(f"{'set':34} {'decoder':13} {'read':>7} {'share':>7} {'median ms':>10} {'p95 ms':>8}", file=out)
    for set_name, entry in result["sets"].items():
        for name, score in entry["decoders"].items():
            clips = f"   clips read {100 * score['clip_share']:5.1f}% of {score['clips']}" if "clips" in score else ""
            print(f"{set_name:34} {name:13} {score['correct']:>3}/{score['count']:<3} "
                  f"{100 * score['share']:6.1f}% {score['median_ms']:10.2f} {score['p95_ms']:8.2f}{clips}", file=out)
    misses = [(set_name, miss) for set_name, entry in result["sets"].items() for miss in entry.get("stage_misses", [])]
    if misses:
        print(f"\nmissed by chot's stage, read by a library alone ({len(misses)}):", file=out)
        for set_name, miss in misses:
            print(f"  {set_name}/{miss['image']}: read by {', '.join(miss['read_by'])}", file=out)
    elif any("chot" in entry["decoders"] for entry in result["sets"].values()):
        print("\nchot's stage read every image that any library alone read", file=out)
    if result["unavailable"]:
        print(f"not available in this install: {', '.join(result['unavailable'])}", file=out)
    print(f"times: per image, {result['clock']} clock, one thread", file=out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="*", type=Path, metavar="DIR",
                        help="folders laid out like tests/data/qr-photos")
    parser.add_argument("--synthetic", type=int, default=0, metavar="N",
                        help="also render N phone-screen frames per resolution, and N empty frames")
    parser.add_argument("--clips", type=int, default=0, metavar="N",
                        help="also render N video clips (8 frames of a phone held still) per resolution")
    parser.add_argument("--variants", action="store_true",
                        help="also run an inverted, a mirrored and a rephotographed copy of every folder image")
    parser.add_argument("--scenes", type=int, default=0, metavar="N",
                        help="also render N photos of printed codes per kind (small, lowres, curved, tilted)")
    parser.add_argument("--no-held-out", dest="held_out", action="store_false",
                        help="skip the held-out synthetic sets that --synthetic adds")
    parser.add_argument("--difficulty", default="hard", choices=sorted(phone_screen.DIFFICULTIES),
                        help="difficulty of the synthetic frames")
    parser.add_argument("--seed", type=int, default=SEED, help="seed of the synthetic frames")
    parser.add_argument("--decoders", default=",".join(DECODERS),
                        help="comma-separated decoders to run (default: all)")
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu",
                        help="time with the thread's CPU clock (default) or the wall clock")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.decoders.split(",") if n.strip()]
    unknown = [n for n in names if n not in DECODERS]
    if unknown:
        parser.error(f"unknown decoders {unknown}; choose from {sorted(DECODERS)}")
    if not args.folders and args.synthetic <= 0 and args.clips <= 0 and args.scenes <= 0:
        parser.error("give at least one folder, --synthetic N, --clips N or --scenes N")
    cv2.setNumThreads(1)
    sets = folder_sets(args.folders)
    if args.variants:
        sets.update(variant_sets(sets, args.seed))
    if args.synthetic > 0:
        sets.update(synthetic_sets(args.synthetic, args.difficulty, args.seed))
        sets.update(varied_sets(args.synthetic, args.difficulty, args.seed))
        if args.held_out:
            sets.update(held_out_sets(args.synthetic, args.difficulty))
    if args.scenes > 0:
        sets.update(scene_sets(args.scenes, args.seed))
    if args.clips > 0:
        sets.update(synthetic_clips(args.clips, 8, args.difficulty, args.seed))
    result = run(sets, names, args.clock)
    command = shlex.join([".venv/bin/python", "bench/decode.py", *(sys.argv[1:] if argv is None else argv)])
    result["command"] = command
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        print_table(result)
        print(f"reproduce: {command}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
