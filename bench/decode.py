"""Benchmark chot's QR decoding stage against each decoding library alone, on the same images.

    .venv/bin/python -m bench.decode tests/data/qr-photos --synthetic 100
    .venv/bin/python -m bench.decode tests/data/qr-photos --json

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
degrees (``testbed/printed_scenes.py``).
After the table, every image that chot's stage misses and some library alone reads is listed
(``stage_misses`` per set in the JSON).
Expected content is compared byte for byte (``.txt`` files are read as bytes, so CRLF stays CRLF):
a read matches when its text equals the ``.txt``, or when the payload bytes the decoder reports
(chot's ``QrText.raw``, zxing-cpp's ``bytes``, pyzbar's and OpenCV's data) equal the ``.txt``'s
UTF-8 or the ``.bin``'s bytes; for a decoder that gives text only, a ``.bin`` matches a text
whose UTF-8, ISO-8859-1 or Shift_JIS encoding gives its bytes. So a byte-mode payload that is
no text, an ECI code or a GS1 code (FNC1, fields ended by GS) counts as read only with its
bytes right, whatever character set a library guessed for showing it (``testbed/decode_sets.py``). Times are the decoding call alone (the image is already grey in memory), as the thread's CPU
time by default (steady on a shared machine); ``--clock wall`` gives wall-clock time instead.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one thread, as on the unit's decode loop

import cv2

from scanner import phone_screen
from testbed.decode_sets import (  # noqa: F401 - the sets this bench reads
    HELD_OUT_SEED,
    SEED,
    Sample,
    folder_sets,
    held_out_sets,
    scene_sets,
    synthetic_clips,
    synthetic_payload,
    synthetic_sets,
    variant_sets,
    varied_sets,
)
from testbed.decoders import DECODERS, run


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
    command = shlex.join([".venv/bin/python", "-m", "bench.decode", *(sys.argv[1:] if argv is None else argv)])
    result["command"] = command
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        print_table(result)
        print(f"reproduce: {command}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
