"""What officers' decisions tell the ministry: lifted record gaps, per-officer counts, alarms.

From the store's decision roll-up (`Store.decision_counts`) and red verdict counts:
- per province and checkpoint, the share of reds for an incomplete or missing record
  (`verifier.decisions.RECORD_GAP_REASONS`) that officers let through on paper proof: where the
  national records are missing, which is what the ministry needs to fix them;
- per officer (staff data, for supervisors in scope) decisions, let-throughs, turn-backs and
  manual checks;
- alarms when a checkpoint's or an officer's share of let-throughs among their decisions is far
  above their province's (`alarms.let_through_above_area`, with at least
  `alarms.let_through_min_decisions` decisions), which may mean a lax or bribed gate.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from dashboard.scope import Scope
from dashboard.store import DecisionCount, Store
from verifier.decisions import PAPER_PROOF, RECORD_GAP_REASONS


@dataclass
class Tally:
    """Decisions of one group (a province, a checkpoint or an officer)."""

    decisions: int = 0
    """After a scan."""
    manual: int = 0
    """Manual checks without a scan."""
    let_through: int = 0
    turned_back: int = 0
    gap_reds: int = 0
    """Red verdicts for an incomplete or missing record."""
    gap_lifted: int = 0
    """...of which officers let through on paper proof."""
    reasons: dict[str, int] = field(default_factory=dict)

    def add(self, row: DecisionCount) -> None:
        if row.follows_result:
            self.decisions += row.count
        else:
            self.manual += row.count
        if row.outcome == "let_through":
            self.let_through += row.count
        else:
            self.turned_back += row.count
        if (row.outcome == "let_through" and row.reason == PAPER_PROOF and row.follows_result == "red"
                and row.follows_reason in RECORD_GAP_REASONS):
            self.gap_lifted += row.count
        self.reasons[row.reason] = self.reasons.get(row.reason, 0) + row.count

    @property
    def all_decisions(self) -> int:
        return self.decisions + self.manual

    @property
    def let_through_share(self) -> float | None:
        return self.let_through / self.all_decisions if self.all_decisions else None

    @property
    def gap_lifted_share(self) -> float | None:
        return self.gap_lifted / self.gap_reds if self.gap_reds else None

    def as_dict(self) -> dict[str, Any]:
        return {"decisions": self.decisions, "manual_checks": self.manual, "let_through": self.let_through,
                "turned_back": self.turned_back, "let_through_share": self.let_through_share,
                "gap_reds": self.gap_reds, "gap_lifted": self.gap_lifted, "gap_lifted_share": self.gap_lifted_share,
                "reasons": dict(sorted(self.reasons.items()))}


def _gap_reds(store: Store, scope: Scope, since: datetime, until: datetime) -> dict[str, int]:
    """Red verdicts for a record gap, per checkpoint (one roll-up query for the whole scope)."""
    found: dict[str, int] = {}
    for cp, rows in store.reasons_by_checkpoint(scope, since, until, RECORD_GAP_REASONS).items():
        n = sum(r.count for r in rows if r.result == "red" and r.reason in RECORD_GAP_REASONS)
        if n:
            found[cp] = n
    return found


def decision_view(store: Store, scope: Scope, since: datetime, until: datetime, *, officers: bool,
                  above_area: float, min_decisions: int) -> dict[str, Any]:
    """Decision tallies by province, checkpoint and (when `officers`) officer, and their alarms."""
    places = {c.id: c for c in store.list_checkpoints(scope)}
    rows = store.decision_counts(scope, since, until)
    by_cp: dict[str, Tally] = {}
    by_officer: dict[tuple[str, str], Tally] = {}
    for row in rows:
        if row.checkpoint not in places:
            continue
        by_cp.setdefault(row.checkpoint, Tally()).add(row)
        by_officer.setdefault((row.checkpoint, row.officer), Tally()).add(row)
    for cp, n in _gap_reds(store, scope, since, until).items():
        if cp not in places:
            continue
        by_cp.setdefault(cp, Tally()).gap_reds = n
    by_province: dict[str, Tally] = {}
    for cp, tally in by_cp.items():
        p = by_province.setdefault(places[cp].province, Tally())
        for name in ("decisions", "manual", "let_through", "turned_back", "gap_reds", "gap_lifted"):
            setattr(p, name, getattr(p, name) + getattr(tally, name))
        for reason, n in tally.reasons.items():
            p.reasons[reason] = p.reasons.get(reason, 0) + n

    alarms: list[dict[str, Any]] = []

    def check(kind: str, key: str, label: str, tally: Tally, province: str) -> None:
        area = by_province[province].let_through_share
        share = tally.let_through_share
        if share is None or area is None or tally.all_decisions < min_decisions:
            return
        if share - area > above_area:
            alarms.append({"kind": kind, "device": key, "checkpoint": places_cp(key), "label": label,
                           "share": share, "area_share": area, "decisions": tally.all_decisions,
                           "province": province})

    def places_cp(key: str) -> str:
        return key.split("/", 1)[0]

    for cp, tally in sorted(by_cp.items()):
        check("let_through_checkpoint", cp, places[cp].name, tally, places[cp].province)
    if officers:
        for (cp, officer), tally in sorted(by_officer.items()):
            check("let_through_officer", f"{cp}/{officer}", officer, tally, places[cp].province)
    return {
        "by_province": [{"key": p, **t.as_dict()} for p, t in sorted(by_province.items())],
        "by_checkpoint": [{"key": cp, "label": places[cp].name, "province": places[cp].province, **t.as_dict()}
                          for cp, t in sorted(by_cp.items())],
        "by_officer": [{"checkpoint": cp, "checkpoint_name": places[cp].name, "officer": officer, **t.as_dict()}
                       for (cp, officer), t in sorted(by_officer.items())] if officers else [],
        "alarms": alarms,
        "record_gap_reasons": list(RECORD_GAP_REASONS),
    }
