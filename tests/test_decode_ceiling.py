"""The rendered frames' truth, the pose-known reader built on it, and bench/decode_ceiling.py."""

from __future__ import annotations

import json

import numpy as np
import pytest

from scanner import phone_screen
from testbed import decode_ceiling
from testbed.decode_sets import synthetic_payload


def _scene(seed: int, difficulty: str = "easy", dark: bool | None = None) -> tuple[phone_screen.Scene, str]:
    rng = np.random.default_rng(seed)
    payload = synthetic_payload(rng)
    if dark is None:
        return phone_screen.render_phone_scene(payload, rng, phone_screen.HD, difficulty), payload
    look = phone_screen.Look(phone_screen.SCREENS["lcd"], phone_screen.CAMERAS["pi-camera-v2"], dark_mode=dark)
    return phone_screen.render_varied_scene(payload, rng, phone_screen.HD, difficulty, look), payload


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_scene_renders_the_same_frame_draw_for_draw(seed: int) -> None:
    payload = synthetic_payload(np.random.default_rng(0))
    scene = phone_screen.render_phone_scene(payload, np.random.default_rng(seed), phone_screen.HD, "hard")
    frame = phone_screen.render_phone_frame(payload, np.random.default_rng(seed), phone_screen.HD, "hard")
    assert np.array_equal(scene.frame, frame)
    varied = phone_screen.render_varied_scene(payload, np.random.default_rng(seed), phone_screen.HD, "hard")
    assert np.array_equal(varied.frame, phone_screen.render_varied_frame(payload, np.random.default_rng(seed),
                                                                         phone_screen.HD, "hard"))
    assert np.array_equal(scene.modules, phone_screen.qr_modules(payload))


@pytest.mark.parametrize("dark", [None, False, True])
def test_the_corners_are_where_the_modules_are(dark: bool | None) -> None:
    """Straightened along the true corners, an easy frame's modules sample as the grid drawn."""
    scene, _ = _scene(7, "easy", dark)
    n = scene.modules.shape[0]
    dark_in_frame = decode_ceiling.sample_modules(decode_ceiling.straighten(scene.frame, scene.corners, n), n)
    expected = ~scene.modules if scene.dark_mode else scene.modules
    assert np.mean(dark_in_frame != expected) < 0.02
    # Off by three modules, the sampled grid is no better than chance against the drawn one.
    shifted = scene.corners + 3 * (scene.corners[1] - scene.corners[0]) / n
    off = decode_ceiling.sample_modules(decode_ceiling.straighten(scene.frame, shifted, n), n)
    assert np.mean(off != expected) > 0.3


@pytest.mark.parametrize("dark", [None, True])
def test_pose_known_reader_reads_an_easy_frame_and_nothing_when_misplaced(dark: bool | None) -> None:
    scene, payload = _scene(11, "easy", dark)
    assert decode_ceiling.read_knowing_pose(scene.frame, scene) == [payload]
    n = scene.modules.shape[0]
    elsewhere = phone_screen.Scene(scene.frame, scene.corners + 9 * (scene.corners[3] - scene.corners[0]) / n,
                                   scene.modules, scene.dark_mode)
    assert payload not in decode_ceiling.read_knowing_pose(scene.frame, elsewhere)


def test_pose_known_reader_cannot_read_a_code_washed_out_by_glare() -> None:
    """Knowing the pose does not conjure modules: a code under a white-out reads as nothing."""
    scene, payload = _scene(13, "easy")
    frame = scene.frame.copy()
    xs, ys = scene.corners[:, 0], scene.corners[:, 1]
    x0, x1, y0, y1 = int(xs.min()), int(xs.max()), int(ys.min()), int(ys.max())
    half = (y0 + y1) // 2  # half the code saturated: beyond what level Q corrects
    frame[y0:half, x0:x1] = 255
    assert decode_ceiling.read_knowing_pose(frame, scene) == []


def test_bench_json_figures_are_consistent(capsys: pytest.CaptureFixture[str]) -> None:
    assert decode_ceiling.main(["--synthetic", "3", "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert set(figures["sets"]) == {f"{seed}-{kind}" for seed in ("synthetic", "heldout")
                                    for kind in ("hard-1280x720", "hard-640x480", "varied-1280x720", "dark-1280x720")}
    for entry in figures["sets"].values():
        assert entry["count"] == 3
        shares = (entry["stage_share"], entry["zxing_share"], entry["pose_known_share"], entry["allowed_share"])
        assert all(0.0 <= share <= 1.0 for share in shares)
        assert entry["allowed_share"] >= max(entry["stage_share"], entry["pose_known_share"])
        assert len(entry["stage_misses_pose_known_reads"]) == round(3 * (entry["allowed_share"] - entry["stage_share"]))
    assert figures["command"].endswith("-m bench.decode_ceiling --synthetic 3 --json")


def test_bench_refuses_a_silly_count(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        decode_ceiling.main(["--synthetic", "0"])
    assert "1..2000" in capsys.readouterr().err
