"""What the synthetic phone-screen frames allow: chot's stage against a reader told where the code is.

    .venv/bin/python -m bench.decode_ceiling --synthetic 100
    .venv/bin/python -m bench.decode_ceiling --synthetic 100 --json

(bench/decode_ceiling.py is the command; the pose-known reader lives here so tests can use it.)

For the rendered sets of ``bench/decode.py`` (hard 1280x720 and 640x480, varied and dark mode at
1280x720, from the tuning seed and the held-out seed), runs chot's per-frame stage, zxing-cpp
alone, and a *pose-known reader*: it is told the code's true corners and module count, as no
camera-side reader can be. It undoes the pose (a perspective warp to a few pixels per module),
takes each module's centre against the level of the modules round it, and gives zxing-cpp a clean
drawing of those modules, so that the code's own error correction decides; it tries the frame as
it is and after the stage's Wiener filter, and zxing-cpp on the straightened code as well. The
straightening, sampling and drawing are the stage's own locator's (``scanner.qr.locate``), which
finds the pose itself; here it is given.

A frame the pose-known reader cannot read has more modules lost to glare, blur and low contrast
than level Q corrects, even sampled where they truly are. Its share is an estimate of what a set
allows (a cleverer sampler might read a little more), not a peer: it cannot run on a camera, so it is not timed;
``bench/decode.py`` times the stage. The table gives, per set, the stage, zxing-cpp alone, the
pose-known reader, the frames either reads ("allowed"), and how many frames the stage misses that
the pose-known reader reads (what a better locator could still win).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys

os.environ.setdefault("OMP_NUM_THREADS", "1")

import cv2
import numpy as np
import zxingcpp


from testbed.decode_sets import HELD_OUT_SEED, SEED, Sample, synthetic_sets, varied_sets
from scanner import phone_screen
from scanner.qr import locate
from scanner.qr.decode import QrDecoder, wiener_kernel

_QR = zxingcpp.BarcodeFormat.QRCode
_WIENER = wiener_kernel(1.25, 0.05)  # the stage's first deblur
sample_modules = locate.sample_modules


def scene_pose(corners: np.ndarray, n: int) -> np.ndarray:
    """The pose of a rendered code from its true corners. A ``Scene``'s corners are where the
    grid's edges fall (pixel i spans i..i+1); ``scanner.qr.locate`` counts from pixel centres."""
    return locate.pose_from_corners(np.asarray(corners, np.float64) - 0.5, n)


def straighten(gray: np.ndarray, corners: np.ndarray, n: int) -> np.ndarray:
    """The code seen square-on, with its quiet zone (``scanner.qr.locate.straighten`` from corners)."""
    return locate.straighten(gray, scene_pose(corners, n), n)


def read_knowing_pose(gray: np.ndarray, truth: phone_screen.Scene) -> list[str]:
    """What a reader told the code's corners and module count reads in ``gray``."""
    n = truth.modules.shape[0]
    pose = scene_pose(truth.corners, n)
    for image in (gray, cv2.filter2D(gray, -1, _WIENER)):
        square = locate.straighten(image, pose, n)
        found = [b.text for b in zxingcpp.read_barcodes(square, formats=_QR, try_rotate=False, try_downscale=False)
                 if b.valid]
        if found:
            return found
        found = locate.read_at((image,), pose, n)  # modules sampled, both polarities (dark mode)
        if found:
            return found
    return []


def rendered_sets(count: int) -> dict[str, list[Sample]]:
    """The code-bearing synthetic sets of bench/decode.py, from the tuning and the held-out seed."""
    sets: dict[str, list[Sample]] = {}
    for seed, prefix in ((SEED, "synthetic"), (HELD_OUT_SEED, "heldout")):
        made = synthetic_sets(count, "hard", seed)
        made.update(varied_sets(count, "hard", seed))
        sets.update({name.replace("synthetic-", f"{prefix}-"): samples
                     for name, samples in made.items() if "-empty-" not in name})
    return sets


def run(sets: dict[str, list[Sample]]) -> dict:
    """Per set: frames read by the stage, by zxing-cpp alone, by the pose-known reader, by either."""
    result: dict = {"sets": {}}
    for name, samples in sets.items():
        decoder = QrDecoder()
        stage = zxing = posed = either = 0
        headroom = []
        for sample in samples:
            decoder.reset()
            text = decoder.decode(sample.gray)
            by_stage = sample.matches([text] if text else [])
            alone = [b.text for b in zxingcpp.read_barcodes(sample.gray, formats=_QR) if b.valid]
            by_posed = sample.truth is not None and sample.matches(read_knowing_pose(sample.gray, sample.truth))
            stage += by_stage
            zxing += sample.matches(alone)
            posed += by_posed
            either += by_stage or by_posed
            if by_posed and not by_stage:
                headroom.append(sample.name)
        count = len(samples)
        result["sets"][name] = {
            "count": count,
            "stage_share": stage / count, "zxing_share": zxing / count,
            "pose_known_share": posed / count, "allowed_share": either / count,
            "stage_misses_pose_known_reads": headroom,
        }
    return result


def print_table(result: dict, out=sys.stdout) -> None:
    print(f"{'set':28} {'frames':>6} {'stage':>7} {'zxing':>7} {'pose-known':>10} {'allowed':>8} "
          f"{'stage/allowed':>13} {'to win':>6}", file=out)
    for name, entry in result["sets"].items():
        allowed = entry["allowed_share"]
        ratio = entry["stage_share"] / allowed if allowed else 0.0
        print(f"{name:28} {entry['count']:>6} {100 * entry['stage_share']:6.1f}% {100 * entry['zxing_share']:6.1f}% "
              f"{100 * entry['pose_known_share']:9.1f}% {100 * allowed:7.1f}% {100 * ratio:12.1f}% "
              f"{len(entry['stage_misses_pose_known_reads']):>6}", file=out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--synthetic", type=int, default=100, metavar="N", help="frames per set (default 100)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = parser.parse_args(argv)
    if not 1 <= args.synthetic <= 2000:
        parser.error("--synthetic takes 1..2000 frames per set")
    cv2.setNumThreads(1)
    result = run(rendered_sets(args.synthetic))
    result["command"] = shlex.join([".venv/bin/python", "-m", "bench.decode_ceiling",
                                    *(sys.argv[1:] if argv is None else argv)])
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        print_table(result)
        print(f"reproduce: {result['command']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
