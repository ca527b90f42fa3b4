"""Chaos run: real units, broker and ingest under faults; the counts must still come out exact.

    .venv/bin/python -m bench.chaos --units 20 --people 400 --broker-restarts 12 --json
    .venv/bin/python -m bench.chaos --national [--units 50] [--json]   (bench/chaos_national.py)

The rig is testbed/chaos.py (`ChaosRun`, which tests/test_reliability_chaos.py runs small);
this is its command line.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

from testbed.chaos import ChaosOptions, ChaosRun


def main(argv: list[str] | None = None) -> int:
    """Run the chaos bench and print the figures (`--national`: the national profile's run)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--national" in argv:
        from bench.chaos_national import main as national_main  # noqa: PLC0415 - its own parts and options

        return national_main([a for a in argv if a != "--national"])
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--units", type=int, default=20, help="unit processes")
    p.add_argument("--people", type=int, default=400, help="frames (people) per unit camera")
    p.add_argument("--fps", type=float, default=10.0, help="camera frames per second")
    p.add_argument("--broker-restarts", type=int, default=12, help="broker kills/restarts")
    p.add_argument("--unit-kills", type=int, default=10, help="unit SIGKILLs")
    p.add_argument("--ingest-restarts", type=int, default=6, help="ingest stops/restarts")
    p.add_argument("--no-disk", action="store_true", help="skip the disk-full fault")
    p.add_argument("--outage", type=float, default=2.0, help="seconds each outage lasts")
    p.add_argument("--seed", type=int, default=2021, help="random seed of the fault schedule")
    p.add_argument("--workdir", type=Path, help="keep the run's files here (default: a temp folder)")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = p.parse_args(argv)
    opts = ChaosOptions(units=args.units, people=args.people, fps=args.fps, broker_restarts=args.broker_restarts,
                        unit_kills=args.unit_kills, ingest_restarts=args.ingest_restarts,
                        fill_disk=not args.no_disk, outage_s=args.outage, seed=args.seed)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="chot-chaos-"))
    if args.workdir and workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    report = ChaosRun(workdir, opts).run().as_dict()
    report["workdir"] = str(workdir)
    report["command"] = "python -m bench.chaos " + " ".join(argv)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for key, value in report.items():
            print(f"{key:>20}: {value}")
    return 0 if report["exact"] and not report["screen_stalls"] else 1


if __name__ == "__main__":
    sys.exit(main())
