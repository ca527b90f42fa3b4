"""The per-checkpoint reads answered in one statement (`reasons_by_checkpoint`,
`timeseries_by_checkpoint`, `verdicts_by_hour_of_day`) give what asking checkpoint by checkpoint
gives (the interface's fallback), on both backends, at minute edges as over whole days."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import pytest

from dashboard.scope import Scope
from dashboard.store import Event, Store, open_store

T0 = datetime(2026, 11, 20, 0, 0, tzinfo=timezone.utc)
PLACES = [("A1", "001", "01"), ("A2", "002", "01"), ("B1", "101", "10"), ("C1", "201", "20")]
REASONS = [("green", "complete_series"), ("yellow", "partial_vaccination"), ("red", "signature"),
           ("red", "policy_not_met"), ("red", "too_soon_after_dose")]


@pytest.fixture
def store(store_target: str) -> Iterator[Store]:
    s = open_store(store_target)
    for cp, district, province in PLACES:
        s.upsert_checkpoint(cp, f"Chốt {cp}", district, province)
        s.add_device(f"u-{cp}", cp)
    rng = random.Random(25)
    batch = []
    for seq in range(1, 1500):
        cp = rng.choice(PLACES)[0]
        at = T0 + timedelta(seconds=rng.randrange(3 * 86400))
        result, reason = rng.choice(REASONS)
        batch.append(Event(f"u-{cp}", cp, seq, at, result, reason, "vn-2021", 7, at + timedelta(seconds=3)))
    # One decision too: counted beside the verdicts, never in the hours of verdicts.
    batch.append(Event("u-A1", "A1", 5000, T0 + timedelta(hours=5), "decision", "paper_proof", "vn-2021", 7,
                       T0 + timedelta(hours=5), "let_through", "o1", 1, "red", "policy_not_met"))
    s.record_events(batch)
    s.upsert_checkpoint("Z9", "Chốt trống", "999", "10")  # registered, nothing counted
    yield s
    s.close()


SCOPES = [Scope.all(), Scope.of(provinces=["01"]), Scope.of(checkpoints=["B1"]), Scope.of(districts=["999"])]
RANGES = [(T0 + timedelta(hours=17), T0 + timedelta(days=2, hours=17)),  # local days in Hà Nội
          (T0 + timedelta(minutes=7), T0 + timedelta(hours=30, minutes=53)),  # minute edges
          (T0 + timedelta(days=1), T0 + timedelta(days=1))]  # empty


@pytest.mark.parametrize("scope", SCOPES, ids=["all", "province", "checkpoint", "empty district"])
@pytest.mark.parametrize("since,until", RANGES, ids=["local days", "minute edges", "empty"])
def test_one_statement_answers_as_checkpoint_by_checkpoint(store: Store, scope: Scope, since: datetime,
                                                           until: datetime) -> None:
    assert store.reasons_by_checkpoint(scope, since, until) == Store.reasons_by_checkpoint(store, scope, since, until)
    only = ("policy_not_met", "too_soon_after_dose")
    assert (store.reasons_by_checkpoint(scope, since, until, only)
            == Store.reasons_by_checkpoint(store, scope, since, until, only))
    for bucket_s in (3600, 1800, 86400):
        if (until - since).total_seconds() % bucket_s == 0 or bucket_s == 3600:
            assert (store.timeseries_by_checkpoint(scope, since, until, bucket_s)
                    == Store.timeseries_by_checkpoint(store, scope, since, until, bucket_s))
    hours = store.verdicts_by_hour_of_day(scope, since, until)
    assert hours == Store.verdicts_by_hour_of_day(store, scope, since, until)
    # Every verdict of the range is in exactly one hour of one checkpoint, decisions in none.
    assert sum(map(sum, hours.values())) == store.totals(scope, since, until).total


def test_the_whole_country_has_data_in_each_answer(store: Store) -> None:
    since, until = RANGES[0]
    found = store.reasons_by_checkpoint(Scope.all(), since, until)
    assert set(found) == {"A1", "A2", "B1", "C1"}
    assert all(r.result in ("green", "yellow", "red") for rows in found.values() for r in rows)
    assert len(store.verdicts_by_hour_of_day(Scope.all(), since, until)["A1"]) == 24
