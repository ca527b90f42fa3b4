"""The decode benches' image sets: labelled folders, rendered phone screens, printed scenes, clips.

Every set is `{name: [Sample, ...]}`; the rendered ones come from fixed seeds (SEED while
tuning, HELD_OUT_SEED never used for it), so a run is repeatable.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from scanner import phone_screen
from testbed import printed_scenes

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
SEED = 20211001
HELD_OUT_SEED = 20260917  # never used while tuning the stage: the heldout-* sets come from it
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
        if self.text is not None:
            return text == self.text
        for encoding in ("utf-8", "iso-8859-1", "shift_jis"):
            try:
                if text.encode(encoding) == self.raw:
                    return True
            except UnicodeEncodeError:
                continue
        return False


# --------------------------------------------------------------------------------------

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
