"""bench/certlogic.py runs, its three evaluators agree on every case, and --json has its stable names."""

from __future__ import annotations

import json

from click.testing import CliRunner

from bench.certlogic import main


def test_one_round_agrees_and_prints_the_stable_names() -> None:
    result = CliRunner().invoke(main, ["--rounds", "1", "--json"])
    assert result.exit_code == 0, result.output  # a disagreement between evaluators exits non-zero
    figures = json.loads(result.output)
    assert {"cases", "rounds", "decide_us", "exact_us", "peer_us", "peer_cost_over_decide", "peer_cost_over_exact",
            "exact_cost_over_decide", "reasons", "python", "machine", "command"} <= set(figures)
    assert figures["cases"] == sum(figures["reasons"].values()) and len(figures["reasons"]) >= 10
    assert {"complete_series", "partial_vaccination", "negative_test", "recovered"} <= set(figures["reasons"])
