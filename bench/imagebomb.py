"""Memory and time to refuse a small image that declares a huge size: chot's reader against OpenCV alone.

    .venv/bin/python -m bench.imagebomb [--side 30000] [--json]

The file is issue 11's: a grey PNG whose every row is present (side x side zero pixels, deflated
to under 1 MB). The peer is what `read_image` did before reading headers: `cv2.imdecode` first,
the size check after. Each side runs in a fresh child process (its peak resident memory is its
own) capped at 3 GiB of address space, so the peer fails instead of exhausting a shared machine.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

_CHILD = """
import json, resource, sys, time
resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))
import cv2, numpy as np
from scanner.qr.decode import UnreadableImageError, read_image
path, side = sys.argv[1], sys.argv[2]
def peak_mb():  # VmHWM: unlike ru_maxrss, not carried over from the parent through fork and exec
    line = next(l for l in open("/proc/self/status") if l.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024
start_mb = peak_mb()
started = time.perf_counter()
outcome = ""
try:
    if side == "opencv":
        image = cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_GRAYSCALE)
        outcome = "decoded %dx%d, then refused by the size check" % image.shape[::-1] if image is not None else "not decoded"
    else:
        read_image(path)
        outcome = "read"
except UnreadableImageError as err:
    outcome = "refused: " + err.why
except (MemoryError, cv2.error) as err:
    outcome = "failed: " + type(err).__name__
elapsed = time.perf_counter() - started
peak = peak_mb()
print(json.dumps({"peak_growth_mb": round(peak - start_mb, 1), "seconds": round(elapsed, 4), "outcome": outcome}))
"""


def measure(path: Path, side: str) -> dict[str, object]:
    """One child process reading `path` the `side` way ("chot" or "opencv")."""
    done = subprocess.run([sys.executable, "-c", _CHILD, str(path), side], cwd=ROOT, capture_output=True,
                          text=True, timeout=600, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    if done.returncode != 0:
        return {"peak_growth_mb": None, "seconds": None, "outcome": f"child exited {done.returncode}"}
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--side", type=int, default=30000, help="declared width and height in pixels")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = parser.parse_args(argv)
    from testbed.fuzz.hugeimages import png_bomb

    data = png_bomb(args.side)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "bomb.png"
        path.write_bytes(data)
        results = {side: measure(path, side) for side in ("chot", "opencv")}
    chot, peer = results["chot"], results["opencv"]
    figures = {"file_bytes": len(data), "declared": f"{args.side}x{args.side}", "chot": chot, "opencv": peer}
    if args.json:
        print(json.dumps(figures))
        return 0
    print(f"PNG of {len(data):,} bytes declaring {args.side}x{args.side} grey pixels")
    print(f"{'reader':<34} {'peak memory growth':>19} {'time':>10}  outcome")
    for name, row in (("chot read_image (header first)", chot), ("peer: cv2.imdecode, check after", peer)):
        mb = "-" if row["peak_growth_mb"] is None else f"{row['peak_growth_mb']:,.1f} MB"
        secs = "-" if row["seconds"] is None else f"{row['seconds']:.3f} s"
        print(f"{name:<34} {mb:>19} {secs:>10}  {row['outcome']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
