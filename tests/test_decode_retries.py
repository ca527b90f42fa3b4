"""The stage's own binarisation, the retry that zxing-cpp's binariser lacks on small noisy modules,
and its own locator after it, each adding reads on frames of a seed never tuned on."""

from __future__ import annotations

import numpy as np
import pytest

import scanner.qr.decode as stage
from testbed.decode_sets import synthetic_sets, varied_sets


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
def test_frames_the_binarised_retry_reads(tuning_frames: dict[str, list], set_name: str, index: int,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Frames of bench/decode.py's tuning seed that the stage reads through its own binarisation,
    and does not read once that retry is taken away (with the locator that comes after it,
    which reads some of them as well)."""
    sample = tuning_frames[set_name][index]
    decoder = stage.QrDecoder()
    assert decoder.decode(sample.gray) == sample.text
    assert decoder.last_method == "x2.5+binary"
    ladders = {tier: tuple(r for r in ladder if not (r.binarise or r.locate)) for tier, ladder in stage._LADDERS.items()}
    monkeypatch.setattr(stage, "_LADDERS", ladders)
    assert stage.QrDecoder().decode(sample.gray) != sample.text


def test_a_frame_without_a_code_stays_unread_by_every_retry() -> None:
    """Empty frames of the tuning seed, noise patches included: no retry makes up a code."""
    for sample in synthetic_sets(30)["synthetic-empty-1280x720"]:
        decoder = stage.QrDecoder()
        assert decoder.decode(sample.gray) is None


def _reads(sets: dict[str, list], ladders: dict) -> dict[str, set[str]]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(stage, "_LADDERS", ladders)
        return {name: {s.name for s in samples if stage.QrDecoder().decode(s.gray) == s.text}
                for name, samples in sets.items()}


def _without(**kinds: bool) -> dict:
    """The stage's ladders without the retries of the kinds named (``binarise``, ``locate``)."""
    return {tier: tuple(r for r in ladder if not any(getattr(r, k) for k in kinds))
            for tier, ladder in stage._LADDERS.items()}


@pytest.fixture(scope="module")
def third_seed() -> dict[str, list]:
    return varied_sets(30, seed=4242)


@pytest.mark.parametrize(("adding", "before", "after"), [
    ("the binarised retry", {"binarise": True, "locate": True}, {"locate": True}),
    ("the locator", {"locate": True}, {}),
])
def test_on_frames_of_a_third_seed_each_step_only_adds_reads(third_seed: dict[str, list], adding: str,
                                                             before: dict, after: dict) -> None:
    """Varied and dark-mode phone frames from seed 4242, neither the tuning seed nor the held-out
    one: every frame the stage reads without a step it reads with it, and the step reads some
    more (the stage's own binarisation, then its own locator after it)."""
    without, with_step = _reads(third_seed, _without(**before)), _reads(third_seed, _without(**after))
    for name in third_seed:
        assert without[name] <= with_step[name], (adding, name)
    assert sum(map(len, with_step.values())) > sum(map(len, without.values())), adding
