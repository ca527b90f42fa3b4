"""Run the atheris fuzzers for N executions and print the figures (`--json` for a machine).

    .venv/bin/python -m bench.fuzz.run payload --runs 1000000 --json
    .venv/bin/python -m bench.fuzz.run claims --runs 300000
    .venv/bin/python -m bench.fuzz.run image --runs 20000

Targets: `payload` (the QR text), `cose` (the COSE bytes, wrapped into HC1 by the harness),
`claims` (CWT claims, signed by a trusted fuzz signer so mutations reach schema and policy),
`image` (an image file through OpenCV and the QR decoder), `frame` (a raw grey camera frame
through the QR decoder).

Seeds the corpus with every DCC test case in tests/data/dcc (payloads or their QR PNGs), the
hostile inputs of testbed/fuzz/hostile.py and byte-by-byte mutations of the test cases, then runs
libFuzzer via bench/fuzz/harness.py. Crashes, hangs (-timeout) and memory growth
(-rss_limit_mb) end the run with a non-zero exit and a crash-* / timeout-* / oom-* file.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_STAT = re.compile(r"#(\d+)\s+(\w+)\s+cov: (\d+) ft: (\d+) corp: (\d+)/(\S+)(?:.*?exec/s: (\d+))?(?:.*?rss: (\d+)Mb)?")
_DONE = re.compile(r"Done (\d+) runs in (\d+) second")


def seed_corpus(target: str, corpus: Path, mutations_per_case: int = 4) -> int:
    """Write the seeds for `target` into `corpus` (named by hash, so reruns add nothing twice)."""
    from testbed.fuzz import byte_mutations, hostile, hugeimages, targets

    corpus.mkdir(parents=True, exist_ok=True)
    rng = random.Random(2021)
    base = {"payload": lambda: targets.seed_payloads() + hostile.hostile_payloads(),
            "cose": lambda: targets.seed_cose() + hostile.hostile_cose(),
            "claims": lambda: targets.seed_claims() + hostile.hostile_claims(),
            "image": lambda: targets.seed_images() + list(hugeimages.huge_images().values()),
            "frame": targets.seed_frames}[target]()
    seeds = list(base)
    for s in base:
        seeds += byte_mutations(s, rng, mutations_per_case)
    for s in seeds:
        (corpus / hashlib.sha1(s).hexdigest()).write_bytes(s)
    return len(seeds)


def parse_output(text: str) -> dict:
    """Figures from libFuzzer's log: executions, coverage, corpus, exec/s, peak RSS."""
    figures: dict = {}
    for m in _STAT.finditer(text):
        figures.update(executions=int(m.group(1)), coverage=int(m.group(3)), features=int(m.group(4)),
                       corpus_entries=int(m.group(5)), corpus_size=m.group(6))
        if m.group(7):
            figures["exec_per_s"] = int(m.group(7))
        if m.group(8):
            figures["peak_rss_mb"] = max(int(m.group(8)), figures.get("peak_rss_mb", 0))
    done = _DONE.search(text)
    if done:
        figures["executions"] = int(done.group(1))
        figures["libfuzzer_seconds"] = int(done.group(2))
    return figures


def main(argv: list[str] | None = None) -> int:
    """Seed, fuzz, report."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("target", choices=("payload", "cose", "claims", "image", "frame"),
                   help="which layer of the scan path the fuzzer's bytes are: HC1 text, COSE, "
                        "signed CWT claims, an image file, or a raw camera frame")
    p.add_argument("--runs", type=int, default=100_000, help="executions (libFuzzer -runs)")
    p.add_argument("--work", type=Path, default=ROOT / "bench" / "fuzz" / "work",
                   help="folder for the corpus, findings and log")
    p.add_argument("--seed", type=int, default=1, help="libFuzzer random seed")
    p.add_argument("--timeout", type=int, default=5, help="seconds one input may take (a hang)")
    p.add_argument("--rss-limit-mb", type=int, default=1024, help="memory ceiling (memory growth)")
    p.add_argument("--max-len", type=int, default=0, help="longest input (0 = 10000 payload, 60000 image)")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = p.parse_args(argv)

    work = args.work / args.target
    corpus, findings = work / "corpus", work / "findings"
    findings.mkdir(parents=True, exist_ok=True)
    seeded = seed_corpus(args.target, corpus)
    max_len = args.max_len or {"image": 60_000, "frame": 420_000}.get(args.target, 10_000)
    cmd = [sys.executable, "-m", "bench.fuzz.harness", args.target, f"-runs={args.runs}",
           f"-seed={args.seed}", f"-timeout={args.timeout}", f"-rss_limit_mb={args.rss_limit_mb}",
           f"-max_len={max_len}", f"-artifact_prefix={findings}/", "-print_final_stats=1", str(corpus)]
    log_path = work / "fuzz.log"
    started = time.monotonic()
    with open(log_path, "w") as log:
        proc = subprocess.run(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    elapsed = time.monotonic() - started
    text = log_path.read_text(errors="replace")
    figures = {"target": args.target, "runs_asked": args.runs, "seeds": seeded, "exit_code": proc.returncode,
               "wall_seconds": round(elapsed, 1), **parse_output(text),
               "findings": sorted(p.name for p in findings.iterdir()), "log": str(log_path),
               "command": " ".join(["python -m bench.fuzz.run", args.target, f"--runs {args.runs}"])}
    figures["ok"] = proc.returncode == 0 and not figures["findings"]
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        for key, value in figures.items():
            print(f"{key:>18}: {value}")
    return 0 if figures["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
