"""chot's own QR locator (scanner/qr/locate.py): finder patterns, corners, alignment patterns, the pose."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import zxingcpp

import scanner.qr.decode as stage
from scanner import phone_screen
from scanner.qr import finders as finders_module
from scanner.qr import locate
from testbed.decode_sets import varied_sets

_PX, _QUIET = 4, 6


def _drawn(payload: str, dark_mode: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """A code drawn square at ``_PX`` pixels per module (dark 40, light 200) and its module grid."""
    modules = phone_screen.qr_modules(payload)
    image = np.where(np.pad(modules, _QUIET), 40, 200).astype(np.uint8)
    if dark_mode:
        image = 240 - image
    return cv2.resize(image, None, fx=_PX, fy=_PX, interpolation=cv2.INTER_NEAREST), modules


def _finder_centres(n: int, homography: np.ndarray) -> np.ndarray:
    grid = np.float64([[[3.5, 3.5]], [[n - 3.5, 3.5]], [[3.5, n - 3.5]]])
    return cv2.perspectiveTransform(grid, homography).reshape(-1, 2)


def _square_pose(n: int) -> np.ndarray:
    """Module coordinates to pixels of a ``_drawn`` image (a pixel's centre at its index)."""
    start = _QUIET * _PX - 0.5
    return np.array([[_PX, 0, start], [0, _PX, start], [0, 0, 1]], dtype=np.float64)


def _photographed(image: np.ndarray, rng: np.random.Generator, tilt: float = 0.12,
                  blur: float = 1.0, noise: float = 4.0) -> tuple[np.ndarray, np.ndarray]:
    """The image seen in perspective, defocused and noisy; and the warp that did it."""
    h, w = image.shape
    corners = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    moved = corners + rng.uniform(-tilt, tilt, corners.shape) * [w, h]
    moved = (moved - moved.min(axis=0) + 20).astype(np.float32)
    warp = cv2.getPerspectiveTransform(corners, moved)
    size = tuple(int(v) + 40 for v in moved.max(axis=0))
    seen = cv2.warpPerspective(image, warp, size, flags=cv2.INTER_AREA, borderValue=200)
    seen = cv2.GaussianBlur(seen, (0, 0), blur).astype(np.float32) + rng.normal(0, noise, seen.shape)
    return np.clip(seen, 0, 255).astype(np.uint8), warp.astype(np.float64)


def _binary(gray: np.ndarray) -> np.ndarray:
    return cv2.medianBlur(stage._binarised(gray, 1.0), 3)


@pytest.mark.parametrize(("version", "rows"), [
    (2, [6, 18]), (7, [6, 22, 38]), (14, [6, 26, 46, 66]), (19, [6, 30, 58, 86]),
    (32, [6, 34, 60, 86, 112, 138]), (36, [6, 24, 50, 76, 102, 128, 154]),
    (40, [6, 30, 58, 86, 114, 142, 170]),
])
def test_alignment_centres_follow_the_standard_table(version: int, rows: list[int]) -> None:
    """ISO/IEC 18004 Annex E: every pair of the rows, except the three finder corners."""
    centres = locate.alignment_centres(version)
    if version < 7:
        assert centres == [(rows[-1], rows[-1])]
    else:
        assert len(centres) == len(rows) ** 2 - 3
        assert {c for pair in centres for c in pair} == set(rows)
        assert (6, 6) not in centres and (6, rows[-1]) not in centres and (rows[-1], 6) not in centres
    assert locate.alignment_centres(1) == []


def test_homography_fit_recovers_a_perspective() -> None:
    truth = np.array([[3.1, 0.4, 50.0], [-0.3, 2.8, 80.0], [0.002, -0.001, 1.0]])
    modules = np.random.default_rng(1).uniform(0, 90, (7, 2))
    pixels = cv2.perspectiveTransform(modules.reshape(-1, 1, 2), truth).reshape(-1, 2)
    fitted = locate.homography_fit([tuple(m) for m in modules], [tuple(p) for p in pixels])
    assert fitted is not None and np.allclose(fitted, truth, atol=1e-6)
    assert locate.homography_fit([(0, 0)] * 4, [(1, 1)] * 4) is None  # degenerate: no pose


@pytest.mark.parametrize("dark_mode", [False, True])
def test_finders_of_a_drawn_code_are_its_three_corners(dark_mode: bool) -> None:
    image, modules = _drawn("HC1:" + "A" * 200, dark_mode)
    n = modules.shape[0]
    finders = locate.finder_patterns(_binary(image))
    true = _finder_centres(n, _square_pose(n))
    for centre in true:
        nearest = min(np.hypot(f.x - centre[0], f.y - centre[1]) for f in finders)
        assert nearest < 0.6
    assert all(abs(f.module - _PX) < 0.6 for f in finders[:3])
    tl, tr, bl = locate.corner_triples(finders)[0]
    assert np.allclose([[tl.x, tl.y], [tr.x, tr.y], [bl.x, bl.y]], true, atol=0.6)
    assert locate.dark_mode_of(image, (tl, tr, bl)) is dark_mode


@pytest.mark.parametrize("turns", [0, 1, 2, 3])
def test_corners_are_named_whichever_way_the_code_is_turned(turns: int) -> None:
    image, modules = _drawn("HC1:" + "B" * 150)
    n = modules.shape[0]
    pose = _square_pose(n)
    for _ in range(turns):  # turn 90 degrees clockwise: (x, y) -> (h - 1 - y, x)
        h = image.shape[0]
        image = np.ascontiguousarray(np.rot90(image, -1))
        pose = np.array([[0, -1, h - 1], [1, 0, 0], [0, 0, 1]], dtype=np.float64) @ pose
    tl, tr, bl = locate.corner_triples(locate.finder_patterns(_binary(image)))[0]
    true = _finder_centres(n, pose)
    assert np.allclose([[tl.x, tl.y], [tr.x, tr.y], [bl.x, bl.y]], true, atol=1.0)


@pytest.mark.parametrize(("seed", "dark_mode"), [(2, False), (3, True), (4, False)])
def test_a_dense_code_in_perspective_is_located_and_read(seed: int, dark_mode: bool) -> None:
    """A version-19 HC1 code, tilted, defocused and noisy: the pose lands within a pixel of the
    truth at every corner, and the modules sampled there read as the payload."""
    rng = np.random.default_rng(seed)
    payload = phone_screen.hc1_like_payload(rng, 600)
    square, modules = _drawn(payload, dark_mode)
    n = modules.shape[0]
    seen, warp = _photographed(square, rng)
    poses = list(locate.locate(seen, _binary(seen)))
    assert poses and poses[0].size == n and poses[0].dark_mode is dark_mode
    truth = cv2.perspectiveTransform(np.float64([[0, 0], [n, 0], [n, n], [0, n]]).reshape(-1, 1, 2),
                                     warp @ _square_pose(n)).reshape(-1, 2)
    assert np.abs(poses[0].corners() - truth).max() < 1.0
    assert locate.read_at((seen,), poses[0].homography, n, dark_mode) == [payload]


def test_a_mirrored_code_in_perspective_is_located_and_read() -> None:
    """A code seen from behind a screen protector or in a mirror: its finders turn the other
    way, the locator names them by the turn as drawn, and the grid sampled is the code
    transposed, which zxing-cpp reads as the standard lets a mirrored code be read."""
    rng = np.random.default_rng(9)
    payload = phone_screen.hc1_like_payload(rng, 600)
    square, modules = _drawn(payload)
    seen, _ = _photographed(np.ascontiguousarray(square[:, ::-1]), rng)
    poses = list(locate.locate(seen, _binary(seen)))
    assert poses and poses[0].size == modules.shape[0]
    assert payload in locate.read_at((seen,), poses[0].homography, poses[0].size)


def test_a_pose_off_by_a_few_modules_reads_nothing() -> None:
    """The code's own Reed-Solomon decides: a wrong pose gives no text, never a wrong one."""
    rng = np.random.default_rng(5)
    payload = phone_screen.hc1_like_payload(rng, 600)
    square, modules = _drawn(payload)
    n = modules.shape[0]
    right = _square_pose(n)
    assert locate.read_at((square,), right, n) == [payload]
    for dx, dy in ((3, 0), (0, -2), (2, 2)):
        shifted = right @ np.array([[1, 0, dx], [0, 1, dy], [0, 0, 1]], dtype=np.float64)
        assert locate.read_at((square,), shifted, n) == []


def test_a_finder_lost_to_glare_in_the_sampled_modules_is_drawn_back() -> None:
    """Finder patterns carry no data but zxing-cpp's pure mode looks for them: a grid sampled
    with one finder washed out reads once the standard patterns are drawn back, and only then."""
    payload = phone_screen.hc1_like_payload(np.random.default_rng(6), 600)
    modules = phone_screen.qr_modules(payload)
    n = modules.shape[0]
    washed = modules.copy()
    washed[:9, n - 9:] = False  # glare over the top-right finder and a module round it
    assert locate.read_drawn(washed) == [payload]
    assert np.array_equal(locate.with_finders(washed)[:8, n - 8:], modules[:8, n - 8:])
    found = zxingcpp.read_barcodes(locate.draw(washed), is_pure=True)
    assert not any(b.valid for b in found)


def test_work_is_bounded_where_finder_like_squares_abound() -> None:
    """Forty finder-shaped squares: a bounded number of candidates, triples and poses."""
    rng = np.random.default_rng(7)
    finder = np.kron(np.pad(np.pad(np.ones((3, 3)), 1, constant_values=0), 1, constant_values=1),
                     np.ones((4, 4)))
    image = np.full((700, 700), 200, np.uint8)
    for _ in range(40):
        x, y = rng.integers(0, 700 - 28, 2)
        image[y:y + 28, x:x + 28] = np.where(finder > 0, 40, 200)
    finders = locate.finder_patterns(_binary(image))
    assert len(finders) <= 10
    assert len(locate.corner_triples(finders)) <= 3
    assert len(list(locate.locate(image, _binary(image)))) <= 2 * 3


def test_noise_and_flat_surfaces_give_no_pose() -> None:
    rng = np.random.default_rng(8)
    noise = np.clip(rng.normal(120, 12, (400, 500)), 0, 255).astype(np.uint8)
    flat = np.full((300, 300), 90, np.uint8)
    for image in (noise, flat):
        assert list(locate.locate(image, _binary(image))) == []


@pytest.fixture(scope="module")
def third_seed_dark() -> list:
    return varied_sets(30, seed=4242)["synthetic-dark-1280x720"]


def test_the_stage_reads_through_its_locator_and_then_tracks_the_code(
        third_seed_dark: list, monkeypatch: pytest.MonkeyPatch) -> None:
    """A dark-mode frame of seed 4242 (neither the tuning nor the held-out seed) that every zxing
    retry misses: the locator reads it, and the next frame looks there the same way first."""
    sample = next(s for s in third_seed_dark if s.name.startswith("0023-"))
    decoder = stage.QrDecoder()
    assert decoder.decode(sample.gray) == sample.text
    assert decoder.last_method == "located"
    assert decoder._tracked_ladder()[-1].locate
    assert decoder.decode(sample.gray) == sample.text
    assert decoder.last_method == "tracked"  # the tracked crop, through its ladder: as-is, then the locator
    ladders = {tier: tuple(r for r in ladder if not r.locate) for tier, ladder in stage._LADDERS.items()}
    monkeypatch.setattr(stage, "_LADDERS", ladders)
    assert stage.QrDecoder().decode(sample.gray) is None


def _turned_away(image: np.ndarray, narrow: float, far: float) -> tuple[np.ndarray, np.ndarray]:
    """The image seen turned about its upright axis: its right side ``narrow`` as wide as the
    whole and, being further away, ``far`` as tall (a strong tilt in perspective)."""
    h, w = image.shape
    inset = (1 - far) / 2 * h
    src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    dst = np.float32([[20, 20], [20 + narrow * w, 20 + inset], [20 + narrow * w, 20 + h - inset], [20, 20 + h]])
    warp = cv2.getPerspectiveTransform(src, dst)
    seen = cv2.warpPerspective(image, warp, (int(narrow * w) + 40, h + 40), flags=cv2.INTER_AREA, borderValue=200)
    seen = cv2.GaussianBlur(seen, (0, 0), 0.8)
    return seen, warp.astype(np.float64)


def test_a_finders_square_is_found_through_blur_and_perspective() -> None:
    """The square through the middle of a finder's ring (modules 0.5 to 6.5) is where the
    perspective puts it, each corner within a quarter of a module (4 pixels here), though blur
    rounds the ring's corners: near enough to start the pose, which the alignment patterns refine."""
    rng = np.random.default_rng(11)
    image, modules = _drawn("HC1:" + "C" * 300)
    n = modules.shape[0]
    seen, warp = _photographed(image, rng, blur=1.2, noise=2.0)
    pose = warp @ _square_pose(n)
    finders = locate.finder_patterns(_binary(seen))
    for x0, y0 in ((0, 0), (n - 7, 0), (0, n - 7)):
        truth = cv2.perspectiveTransform(
            np.float64([[x0 + 0.5, y0 + 0.5], [x0 + 6.5, y0 + 0.5], [x0 + 6.5, y0 + 6.5], [x0 + 0.5, y0 + 6.5]])
            .reshape(-1, 1, 2), pose).reshape(-1, 2)
        centre = truth.mean(axis=0)
        finder = min(finders, key=lambda f: np.hypot(f.x - centre[0], f.y - centre[1]))
        assert finder.square is not None
        square = np.array(finder.square)
        errors = [np.hypot(*(square - corner).T).min() for corner in truth]
        assert max(errors) < 0.25 * _PX and np.mean(errors) < 0.2 * _PX


def test_a_code_turned_far_away_is_located_by_its_finders_squares() -> None:
    """A code turned about 60 degrees away: its top side looks half its left side's length and
    its finders unlike in size, which the near-square rule alone refuses. The finders' squares
    fit one grid, give the version by their sizes against their spacing, and the code reads."""
    rng = np.random.default_rng(12)
    payload = phone_screen.hc1_like_payload(rng, 300)
    image, modules = _drawn(payload)
    n = modules.shape[0]
    seen, _ = _turned_away(cv2.resize(image, None, fx=1.5, fy=1.5, interpolation=cv2.INTER_CUBIC), 0.5, 0.7)
    finders = locate.finder_patterns(_binary(seen))
    trios = locate.corner_triples(finders)
    assert trios
    tl, tr, bl = trios[0]
    top, left = np.hypot(tr.x - tl.x, tr.y - tl.y), np.hypot(bl.x - tl.x, bl.y - tl.y)
    assert left / top > locate._MAX_SIDE_RATIO  # outside the near-square rule
    starts = locate._start_poses(trios[0])
    assert starts[0][0] <= locate._MAX_FIT_ERROR
    assert (n - 17) // 4 in [version for _, version, *_ in starts[:2 * locate._VERSIONS_AROUND + 1]]
    poses = locate.poses_of(seen, trios[0])
    assert poses and poses[0].size == n
    assert locate.read_at((seen,), poses[0].homography, n, poses[0].dark_mode) == [payload]


def test_grid_fits_per_crop_are_bounded_where_many_codes_line_up(monkeypatch: pytest.MonkeyPatch) -> None:
    """A sheet of four codes in rows: many triples of its twelve finders line up on one plane
    grid, and fitting each costs about 2 ms, so no more than ``_MAX_FITTED`` are fitted."""
    tiles = [np.pad(_drawn(f"https://example.vn/{i}" * 3)[0], 8, constant_values=200) for i in range(4)]
    side = max(t.shape[0] for t in tiles)
    tiles = [cv2.resize(t, (side, side), interpolation=cv2.INTER_NEAREST) for t in tiles]
    sheet = np.vstack([np.hstack(tiles[:2]), np.hstack(tiles[2:])])
    fits = []
    real = locate._start_poses
    monkeypatch.setattr(locate, "_start_poses", lambda *args: fits.append(1) or real(*args))
    finders = locate.finder_patterns(_binary(sheet))
    assert len(finders) == finders_module._MAX_FINDERS
    assert len(locate.corner_triples(finders)) == locate._MAX_TRIPLES
    assert 0 < len(fits) <= locate._MAX_FITTED


@pytest.mark.parametrize(("hidden", "role"), [((0, 0), "diagonal"), (("n", 0), "left"), ((0, "n"), "top")])
def test_a_code_with_a_finder_under_glare_is_read_from_the_other_two(hidden: tuple, role: str) -> None:
    """Glare washes out one finder: no three make the corners, but the other two line up along a
    side (or a diagonal, when the top-left is lost), the third is put where they say it is, and
    the pose through their squares, refined on the alignment patterns, reads the code."""
    rng = np.random.default_rng(13)
    payload = phone_screen.hc1_like_payload(rng, 600)
    image, modules = _drawn(payload)
    n = modules.shape[0]
    x0, y0 = ((n - 7 if v == "n" else v) for v in hidden)
    top, left = (_QUIET + y0 - 1) * _PX, (_QUIET + x0 - 1) * _PX
    image[top:top + 9 * _PX, left:left + 9 * _PX] = 235  # the finder and its separator, washed out
    seen, _ = _photographed(image, rng, blur=0.8, noise=2.0)
    finders = locate.finder_patterns(_binary(seen))
    assert locate.corner_triples(finders) == []
    pairs = locate.corner_pairs(finders)
    assert pairs
    poses = locate.pair_poses(seen, pairs[0])
    assert poses and poses[0].size == n
    assert locate.read_at((seen,), poses[0].homography, n, poses[0].dark_mode) == [payload]
    assert list(locate.locate(seen, _binary(seen)))  # and the locator goes on to pairs by itself


def test_two_finders_off_each_others_sides_and_diagonals_are_no_pair() -> None:
    """Two finder-shaped squares whose joining line runs 22 degrees off their sides (and 23 off
    their diagonals) cannot be two corners of one code."""
    finder = np.kron(np.pad(np.pad(np.ones((3, 3)), 1, constant_values=0), 1, constant_values=1), np.ones((5, 5)))
    image = np.full((300, 400), 200, np.uint8)
    for x, y in ((40, 60), (240, 140)):
        image[y:y + 35, x:x + 35] = np.where(finder > 0, 40, 200)
    finders = locate.finder_patterns(_binary(image))
    assert len(finders) == 2 and all(f.square is not None for f in finders)
    assert locate.corner_pairs(finders) == []
    image[140:175, 240:275] = 200
    image[60:95, 240:275] = np.where(finder > 0, 40, 200)  # now level with the first: a side
    assert len(locate.corner_pairs(locate.finder_patterns(_binary(image)))) == 1
