"""bench/certlogic.py runs, its three evaluators agree on every case, and --json has its stable names."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_one_round_agrees_and_prints_the_stable_names() -> None:
    # Run as the command (tests do not import benches), from the tree under test.
    result = subprocess.run([sys.executable, "-m", "bench.certlogic", "--rounds", "1", "--json"], cwd=ROOT,
                            capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr  # a disagreement between evaluators exits non-zero
    figures = json.loads(result.stdout)
    assert {"cases", "rounds", "decide_us", "exact_us", "peer_us", "peer_cost_over_decide", "peer_cost_over_exact",
            "exact_cost_over_decide", "reasons", "python", "machine", "command"} <= set(figures)
    assert figures["cases"] == sum(figures["reasons"].values()) and len(figures["reasons"]) >= 10
    assert {"complete_series", "partial_vaccination", "negative_test", "recovered"} <= set(figures["reasons"])
