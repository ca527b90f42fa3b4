"""The stage's own binarisation, the retry that zxing-cpp's binariser lacks on small noisy modules."""

from __future__ import annotations

import numpy as np
import pytest

import scanner.decode as stage
from bench.decode import synthetic_sets, varied_sets


def _grid(n: int, px: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A random module grid drawn at ``px`` pixels per module (dark = 40, light = 90)."""
    modules = rng.random((n, n)) < 0.5
    image = np.kron(np.where(modules, 40.0, 90.0), np.ones((px, px)))
    return modules, image


def test_binarised_is_a_two_level_enlargement() -> None:
    crop = np.random.default_rng(0).integers(0, 256, (120, 130), dtype=np.uint8)
    out = stage._binarised(crop, 2.5)
    assert out.dtype == np.uint8 and out.shape == (300, 325)
    assert set(np.unique(out)) <= {0, 255}


def test_binarised_keeps_modules_under_glare_and_noise() -> None:
    """A glare ramp brighter than the modules' own contrast, and sensor noise: each module's
    centre still lands on its side, where one threshold for the crop gets many wrong."""
    rng = np.random.default_rng(3)
    n, px = 40, 3
    modules, image = _grid(n, px, rng)
    ramp = np.linspace(0.0, 120.0, n * px)[None, :]  # glare: 120 levels across, the modules differ by 50
    frame = np.clip(image + ramp + rng.normal(0, 4, image.shape), 0, 255).astype(np.uint8)
    out = stage._binarised(frame, 2.5)
    centres = ((np.arange(n) + 0.5) * px * 2.5).astype(int)
    dark = out[np.ix_(centres, centres)] == 0
    inner = slice(2, n - 2)  # the grid's rim has no neighbours beyond it
    assert np.mean(dark[inner, inner] != modules[inner, inner]) < 0.03
    one_threshold = frame[np.ix_(((np.arange(n) + 0.5) * px).astype(int),) * 2] < np.median(frame)
    assert np.mean(one_threshold != modules) > 0.2


@pytest.fixture(scope="module")
def tuning_frames() -> dict[str, list]:
    sets = synthetic_sets(48)
    sets.update(varied_sets(70))
    return sets


@pytest.mark.parametrize(("set_name", "index"), [
    ("synthetic-hard-1280x720", 12), ("synthetic-hard-1280x720", 47),
    ("synthetic-dark-1280x720", 18), ("synthetic-dark-1280x720", 69),
])
def test_frames_only_the_binarised_retry_reads(tuning_frames: dict[str, list], set_name: str, index: int,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Frames of bench/decode.py's tuning seed that the stage reads through its own binarisation,
    and does not read once that retry is taken away."""
    sample = tuning_frames[set_name][index]
    decoder = stage.QrDecoder()
    assert decoder.decode(sample.gray) == sample.text
    assert decoder.last_method == "x2.5+binary"
    ladders = {tier: tuple(r for r in ladder if not r.binarise) for tier, ladder in stage._LADDERS.items()}
    monkeypatch.setattr(stage, "_LADDERS", ladders)
    assert stage.QrDecoder().decode(sample.gray) != sample.text


def test_a_frame_without_a_code_stays_unread_by_every_retry() -> None:
    """Empty frames of the tuning seed, noise patches included: no retry makes up a code."""
    for sample in synthetic_sets(30)["synthetic-empty-1280x720"]:
        decoder = stage.QrDecoder()
        assert decoder.decode(sample.gray) is None


def test_on_frames_of_a_third_seed_the_retry_only_adds_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    """Varied and dark-mode phone frames from seed 4242, neither the tuning seed nor the held-out
    one: every frame the stage reads without its own binarisation it reads with it, and the
    retry reads some more."""
    sets = varied_sets(30, seed=4242)
    with_retry = {name: {s.name for s in samples if stage.QrDecoder().decode(s.gray) == s.text}
                  for name, samples in sets.items()}
    ladders = {tier: tuple(r for r in ladder if not r.binarise) for tier, ladder in stage._LADDERS.items()}
    monkeypatch.setattr(stage, "_LADDERS", ladders)
    without = {name: {s.name for s in samples if stage.QrDecoder().decode(s.gray) == s.text}
               for name, samples in sets.items()}
    for name in sets:
        assert without[name] <= with_retry[name], name
    assert sum(map(len, with_retry.values())) > sum(map(len, without.values()))
