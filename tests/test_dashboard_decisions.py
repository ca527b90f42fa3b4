"""Officer decisions on the dashboard: their own counts beside green/yellow/red on pages, API,
live stream and /metrics; the share of record-gap reds lifted on paper proof per province and
checkpoint; per-officer counts for supervisors only; let-through alarms against the area."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from dashboard.decisions import decision_view
from dashboard.scope import Scope
from dashboard.store import Event
from tests.support.dashboard_web import Seeded, login, make_app, seeded  # noqa: F401 - fixture

METRICS_TOKEN = "scrape-token-for-tests"


def decide(seeded: Seeded, device: str, checkpoint: str, officer: str, outcome: str, reason: str,
           follows: tuple[str, str] | None) -> None:
    """One decision after a verdict (result, reason) recorded just before it, or a manual check."""
    batch = []
    at = seeded.now
    if follows is not None:
        seeded.seq += 1
        batch.append(Event(device, checkpoint, seeded.seq, at, follows[0], follows[1], "vn-2021", 7, at))
    seeded.seq += 1
    verdict_seq = seeded.seq - 1 if follows else None
    batch.append(Event(device, checkpoint, seeded.seq, at, "decision" if follows else "manual", reason, "vn-2021", 7,
                       at, outcome, officer, verdict_seq, follows[0] if follows else None,
                       follows[1] if follows else None))
    assert seeded.store.record_events(batch) == len(batch)


@pytest.fixture
def decided(seeded: Seeded) -> Seeded:
    # IC7 (Lào Cai, 10): 4 reds for a record gap, 3 lifted on paper proof by CA-1, a turn-back by
    # CA-2 after a yellow, two manual checks. HN-GIA (Hà Nội, 01): one forged-looking red turned back.
    for _ in range(3):
        decide(seeded, "u-ic7-1", "IC7", "CA-1", "let_through", "paper_proof", ("red", "too_soon_after_dose"))
    seeded.events("u-ic7-1", "IC7", [("red", "too_soon_after_dose")])
    decide(seeded, "u-ic7-2", "IC7", "CA-2", "turned_back", "no_proof", ("yellow", "partial_vaccination"))
    decide(seeded, "u-ic7-1", "IC7", "CA-1", "let_through", "paper_proof", None)
    decide(seeded, "u-ic7-1", "IC7", "CA-2", "turned_back", "no_proof", None)
    decide(seeded, "u-hn-1", "HN-GIA", "HN-9", "turned_back", "no_proof", ("red", "signature"))
    return seeded


@pytest.fixture
def app(decided: Seeded, tmp_path: Path) -> Any:
    return make_app(decided, tmp_path / "instance", CHOT_METRICS_TOKEN=METRICS_TOKEN)


def as_user(app: Any, username: str) -> Any:
    c = app.test_client()
    assert login(c, username).status_code == 302
    return c


def test_overview_api_counts_decisions_beside_verdicts(app: Any) -> None:
    data = as_user(app, "admin").get("/api/v1/overview").json
    today = data["today"]
    # Seeded verdicts (10 at IC7, 5 at HN) + the 5 verdicts decided on + 1 more red.
    assert (today["green"], today["yellow"], today["red"]) == (9, 3, 9)
    assert (today["decisions"], today["manual_checks"]) == (5, 2)
    assert today["total"] == 21  # verdicts only
    ic7 = next(c for c in data["by_checkpoint"] if c["key"] == "IC7")
    assert (ic7["decisions"], ic7["manual_checks"]) == (4, 2)
    assert sum(b["decisions"] for b in data["timeseries"]["buckets"]) == 5
    # Reasons stay the verdicts' reasons: no decision rows among them.
    assert all(r["result"] in ("yellow", "red") for r in data["reasons"])


def test_record_gap_share_per_province_and_checkpoint(app: Any) -> None:
    dec = as_user(app, "admin").get("/api/v1/overview").json["decisions"]
    ic7 = next(c for c in dec["by_checkpoint"] if c["key"] == "IC7")
    assert (ic7["gap_reds"], ic7["gap_lifted"], ic7["gap_lifted_share"]) == (4, 3, 0.75)
    lc = next(p for p in dec["by_province"] if p["key"] == "10")
    assert (lc["gap_reds"], lc["gap_lifted"]) == (4, 3)
    hn = next(p for p in dec["by_province"] if p["key"] == "01")
    assert (hn["gap_reds"], hn["gap_lifted"], hn["gap_lifted_share"]) == (0, 0, None)  # a forgery is no gap


def test_officer_counts_for_supervisors_in_scope_only(app: Any) -> None:
    dec = as_user(app, "sup_lc").get("/api/v1/overview").json["decisions"]
    officers = {(o["checkpoint"], o["officer"]): o for o in dec["by_officer"]}
    assert set(officers) == {("IC7", "CA-1"), ("IC7", "CA-2")}  # not Hà Nội's HN-9
    assert (officers[("IC7", "CA-1")]["decisions"], officers[("IC7", "CA-1")]["manual_checks"]) == (3, 1)
    assert officers[("IC7", "CA-2")]["turned_back"] == 2
    viewer = as_user(app, "view_lc").get("/api/v1/overview").json["decisions"]
    assert viewer["by_officer"] == [] and viewer["by_checkpoint"]
    page = as_user(app, "sup_lc").get("/").get_data(as_text=True)
    assert 'data-test-id="officer-IC7-CA-1"' in page and 'data-test-id="today-decisions"' in page
    assert "HN-9" not in page
    assert "officer-IC7" not in as_user(app, "view_lc").get("/").get_data(as_text=True)


def test_checkpoint_page_and_stream_show_decisions(app: Any) -> None:
    c = as_user(app, "sup_lc")
    data = c.get("/api/v1/checkpoints/IC7").json
    assert (data["today"]["decisions"], data["today"]["manual_checks"]) == (4, 2)
    assert any(e["result"] == "manual" and e["officer"] for e in data["recent"])
    stream = c.get("/stream/checkpoint/IC7", buffered=True).get_data(as_text=True)
    assert "checkpoint-today-decisions" in stream and "event: update" in stream


def test_metrics_count_decisions(app: Any) -> None:
    text = app.test_client().get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}).get_data(as_text=True)
    assert 'chot_decisions_total{checkpoint="IC7",province="10",kind="decision"} 4' in text
    assert 'chot_decisions_total{checkpoint="IC7",province="10",kind="manual"} 2' in text
    assert 'chot_decisions_total{checkpoint="HN-GIA",province="01",kind="decision"} 1' in text


def test_let_through_alarm_against_the_area(seeded: Seeded) -> None:
    """A checkpoint letting everyone through while its province's others turn most back."""
    store = seeded.store
    store.upsert_checkpoint("IC8", "IC8", "080", "10")
    store.add_device("u-ic8-1", "IC8")
    for i in range(12):
        decide(seeded, "u-ic8-1", "IC8", "CA-8", "turned_back" if i % 4 else "let_through", "no_proof"
               if i % 4 else "paper_proof", ("red", "policy_not_met"))
    for _ in range(12):
        decide(seeded, "u-ic7-1", "IC7", "CA-7", "let_through", "official_duty", ("red", "signature"))
    since, until = seeded.now - timedelta(hours=1), seeded.now + timedelta(hours=1)
    view = decision_view(store, Scope.all(), since, until, officers=True, above_area=0.3, min_decisions=10)
    kinds = {(a["kind"], a["device"]) for a in view["alarms"]}
    assert kinds == {("let_through_checkpoint", "IC7"), ("let_through_officer", "IC7/CA-7")}
    # Below the minimum number of decisions nobody is flagged; a higher threshold flags nobody.
    assert decision_view(store, Scope.all(), since, until, officers=True, above_area=0.3, min_decisions=13)["alarms"] == []
    assert decision_view(store, Scope.all(), since, until, officers=True, above_area=0.6, min_decisions=10)["alarms"] == []
    # Without officer rows (a viewer) only the checkpoint alarm remains.
    assert {a["kind"] for a in decision_view(store, Scope.all(), since, until, officers=False, above_area=0.3,
                                             min_decisions=10)["alarms"]} == {"let_through_checkpoint"}
