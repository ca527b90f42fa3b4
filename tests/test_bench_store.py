"""bench/store.py's fast fill (COPY / one INSERT, roll-ups in SQL) answers every query as a store
filled through `record_events` does, so its national-size figures are about the same store."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(300)
ROOT = Path(__file__).resolve().parents[1]


def bench(*args: str) -> str:
    # Run as the command (tests do not import benches), from the tree under test.
    result = subprocess.run([sys.executable, "-m", "bench.store", *args], cwd=ROOT, capture_output=True, text=True,
                            timeout=280)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def answers(*args: str) -> dict[tuple[str, str], dict[str, str]]:
    out = json.loads(bench("--events", "2500", "--repeat", "1", "--json", *args))
    assert out["same_answers"]
    # Workbook bytes carry the zip's clock: compare the query results, the report's included.
    return {(r["query"], r["scope"]): {k: v for k, v in r.items() if k.endswith("digest")}
            for r in out["rows"] if "XLSX" not in r["query"] and "digest" in str(r)}


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_the_fast_fill_gives_the_answers_of_the_ingest_path(backend: str) -> None:
    through_ingest = answers("--backend", backend)
    fast = answers("--backend", backend, "--fast-fill")
    assert fast == through_ingest
    assert len(fast) >= 20 and all(fast.values())


def test_the_national_shape_fills_decisions_and_thirty_days() -> None:
    output = bench("--national-size", "--events", "3000", "--repeat", "1", "--backend", "sqlite")
    assert "3,000 events, 10,000 checkpoints, 63 provinces, 30 days" in output
    assert "30 days" in output.splitlines()[2]
