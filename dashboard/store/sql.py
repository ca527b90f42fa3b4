"""What the SQL backends share: every statement on which SQLite and PostgreSQL agree.

`SqlStore` implements most of `Store` in portable SQL written with `?` placeholders; a backend
supplies connections and transactions (`_conn()`, `_read()`, `_write()`, each giving an object
whose `execute(sql, params)` returns a cursor), its schema and migrations, and the statements
where the dialects differ (storing a batch of events, a status, the change marker). A method
added here works on both backends at once.
"""

from __future__ import annotations

import json
import logging
from abc import abstractmethod
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

from dashboard import rollup
from dashboard.scope import Scope
from dashboard.store.base import (
    AUDIT_ACTIONS,
    LANGUAGES,
    LEVELS,
    MAX_BUCKETS,
    ROLES,
    STATUS_COLUMNS,
    USERNAME_RE,
    AuditEntry,
    Bucket,
    Checkpoint,
    Counts,
    DecisionCount,
    Device,
    DuplicateUser,
    Event,
    GroupCounts,
    InvalidRecord,
    LoginFailures,
    OfficerRecord,
    ReasonCount,
    RosterRecord,
    StatusUpdate,
    Store,
    TrustRecord,
    UnknownCheckpoint,
    UnknownUser,
    User,
    check_id,
    from_ms,
    minute_range,
    to_ms,
)
from protocol.fields import COUNTED, NAME, RESULTS
from protocol.fields import OFFICER_ID as OFFICER_RE

logger = logging.getLogger(__name__)


def check_events(batch: Sequence[Event]) -> None:
    """Refuse a batch holding anything but Event records (they are what was validated)."""
    for event in batch:
        if not isinstance(event, Event):
            raise InvalidRecord(f"record_events takes Event records, got {type(event).__name__}")


def count_inserted(rows: Sequence[Sequence[Any]], increments: dict[tuple[int, str, str, str], int],
                   decisions: dict[tuple[Any, ...], int]) -> None:
    """Add the events a batch really inserted (RETURNING device, seq, minute, checkpoint, result,
    reason, officer, outcome, follows_result, follows_reason) to its roll-up increments:
    (minute, checkpoint, result, reason), and for decisions the decision_counts key."""
    for _device, _seq, minute, cp, result, reason, officer, outcome, f_result, f_reason in rows:
        key = (minute, cp, result, reason)
        increments[key] = increments.get(key, 0) + 1
        if officer is not None:
            dkey = (cp, minute, officer, outcome, reason, f_result or "", f_reason or "")
            decisions[dkey] = decisions.get(dkey, 0) + 1


def warn_counter_reset(device: str, seq: int) -> None:
    """A duplicate (device, seq) with a different time is not a redelivery: the unit's counter
    restarted (a new SD card?), and its new events would be dropped. Say so loudly."""
    logger.warning("device %s sent seq %d again with another time: its sequence counter was"
                   " reset, so these events are not counted; register it under a new id", device, seq)


class SqlStore(Store):
    """The portable part of a SQL backend (see the module docstring for what a backend adds)."""

    # The driver's exception for a broken unique key (a user or bundle version that exists).
    _integrity_errors: tuple[type[BaseException], ...] = ()

    @abstractmethod
    def _conn(self) -> Any:
        """Something whose `execute(sql, params)` runs one statement (inside `_read`/`_write`, theirs)."""

    @abstractmethod
    def _read(self) -> Any:
        """A `with` block in which every statement reads one snapshot."""

    @abstractmethod
    def _write(self) -> Any:
        """A `with` block around one write transaction, giving its connection."""

    # -- registry ----------------------------------------------------------------------------
    def upsert_checkpoint(
        self, id: str, name: str, district: str, province: str, policy: str | None = None
    ) -> Checkpoint:
        check_id("checkpoint", id)
        for label, value in (("name", name), ("district", district), ("province", province)):
            if not isinstance(value, str) or not value.strip() or len(value) > 200:
                raise InvalidRecord(f"checkpoint {label} must be 1-200 characters, got {value!r}")
        if policy is not None and not NAME.match(policy):
            raise InvalidRecord(f"policy must be a lower-case code, got {policy!r}")
        with self._write() as conn:
            if conn.execute("SELECT 1 FROM checkpoints WHERE id = ?", (id,)).fetchone() is None:
                rollup.include_checkpoint(conn, id)  # events counted before it was registered
            conn.execute(
                "INSERT INTO checkpoints (id, name, district, province, policy) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT(id) DO UPDATE SET name = excluded.name, district = excluded.district,"
                " province = excluded.province, policy = excluded.policy",
                (id, name.strip(), district.strip(), province.strip(), policy),
            )
        return Checkpoint(id, name.strip(), district.strip(), province.strip(), policy)

    def list_checkpoints(self, scope: Scope) -> list[Checkpoint]:
        where, params = scope.sql("province", "district", "id")
        rows = self._conn().execute(
            f"SELECT id, name, district, province, policy FROM checkpoints WHERE {where}"
            " ORDER BY province, district, id", params,
        ).fetchall()
        return [Checkpoint(*row) for row in rows]

    def add_device(self, device_id: str, checkpoint: str) -> Device:
        check_id("device", device_id)
        with self._write() as conn:
            if conn.execute("SELECT 1 FROM checkpoints WHERE id = ?", (checkpoint,)).fetchone() is None:
                raise UnknownCheckpoint(checkpoint)
            conn.execute(
                "INSERT INTO devices (id, checkpoint, created_at, state) VALUES (?, ?, ?, 'unknown')"
                " ON CONFLICT(id) DO UPDATE SET checkpoint = excluded.checkpoint",
                (device_id, checkpoint, to_ms(datetime.now(timezone.utc))),
            )
        device = self.get_device(device_id)
        assert device is not None
        return device

    def remove_device(self, device_id: str) -> bool:
        with self._write() as conn:
            cur = conn.execute("DELETE FROM devices WHERE id = ?", (device_id,))
            return cur.rowcount > 0

    _DEVICE_SELECT = (
        "SELECT d.id, d.checkpoint, c.district, c.province, c.name, d.created_at, d.state,"
        " d.last_seen, d.status_at, d.software, d.trust_version, d.trust_age_s, d.backlog, d.clock,"
        " d.fps, d.temperature_c, d.uptime_s, d.last_seq, d.complete_at, d.broker,"
        " d.pin_wrong_hour, d.pin_wrong_total, d.pin_lockouts, d.pin_locked, d.pin_officers"
        " FROM devices d JOIN checkpoints c ON c.id = d.checkpoint"
    )

    @staticmethod
    def _device(row: Sequence[Any]) -> Device:
        return Device(
            row[0], row[1], row[2], row[3], row[4], from_ms(row[5]) or datetime.now(timezone.utc),
            state=row[6], last_seen=from_ms(row[7]), status_at=from_ms(row[8]), software=row[9],
            trust_version=row[10], trust_age_s=row[11], backlog=row[12], clock=row[13], fps=row[14],
            temperature_c=row[15], uptime_s=row[16], last_seq=row[17], complete_at=from_ms(row[18]),
            broker=row[19], pin_wrong_hour=row[20], pin_wrong_total=row[21], pin_lockouts=row[22],
            pin_locked=None if row[23] is None else bool(row[23]), pin_officers=row[24],
        )

    def get_device(self, device_id: str) -> Device | None:
        row = self._conn().execute(self._DEVICE_SELECT + " WHERE d.id = ?", (device_id,)).fetchone()
        return None if row is None else self._device(row)

    def list_devices(self, scope: Scope) -> list[Device]:
        where, params = scope.sql("c.province", "c.district", "c.id")
        rows = self._conn().execute(
            self._DEVICE_SELECT + f" WHERE {where} ORDER BY d.checkpoint, d.id", params
        ).fetchall()
        return [self._device(row) for row in rows]

    def record_status(self, device_id: str, status: StatusUpdate, received_at: datetime) -> bool:
        at = to_ms(received_at)
        values = [getattr(status, name) for name in STATUS_COLUMNS]
        sets = ", ".join(f"{name} = ?" for name in STATUS_COLUMNS)
        with self._write() as conn:
            if status.state == "online":
                # An online unit with an empty outbox has delivered everything it judged until now.
                empty = 1 if status.backlog == 0 else 0
                cur = conn.execute(
                    f"UPDATE devices SET state = ?, status_at = ?, {sets}, last_seen = CASE WHEN last_seen IS NULL"
                    " OR last_seen < ? THEN ? ELSE last_seen END, complete_at = CASE WHEN ? = 1 AND"
                    " (complete_at IS NULL OR complete_at < ?) THEN ? ELSE complete_at END WHERE id = ?",
                    (status.state, at, *values, at, at, empty, at, at, device_id),
                )
            else:
                # An offline will carries no health: keep the last known values for the page.
                cur = conn.execute("UPDATE devices SET state = ?, status_at = ? WHERE id = ?",
                                   (status.state, at, device_id))
            if cur.rowcount:
                self._count_change(conn, 1, device=device_id)
            return bool(cur.rowcount > 0)

    def _count_change(self, conn: Any, n: int, *, checkpoints: Sequence[str] = (), device: str | None = None) -> None:
        """Move the change marker by `n` inside a write transaction (a backend that pushes changes
        also announces the checkpoints touched, or the device's)."""
        conn.execute("UPDATE meta SET value = value + ? WHERE key = 'changes'", (n,))

    # -- queries -----------------------------------------------------------------------------
    # Every dashboard figure is one statement (one round trip on PostgreSQL, one snapshot on
    # both): the roll-up pieces of a range are read as one UNION ALL, summed in the database.
    def _sums_sql(self, scope: Scope, start: int, end: int, keys: Callable[[rollup.Piece], Sequence[str]], *,
                  grid: tuple[int, int] | None = None, per_checkpoint: bool = False,
                  all_time: Sequence[str] | None = None,
                  only: tuple[str, Sequence[Any]] | None = None) -> tuple[str, list[Any]] | None:
        """A subquery of rows (k0, k1, ..., count) over minutes [start, end), read from the
        coarsest roll-ups that fit; unscoped queries not split by checkpoint read the country's.

        `all_time` (key columns of the running totals, e.g. ("checkpoint", "result")): when
        [start, end) holds every counted minute (the `/metrics` case) the rows come from the
        running totals instead; the choice is made inside the statement. `only`: a further condition
        on the roll-up rows and its parameters. None when nothing to read.
        """
        country = scope.everything and not per_checkpoint
        inner, scope_params = scope.sql("province", "district", "id")
        registered = f"checkpoint IN (SELECT id FROM checkpoints WHERE {inner})"
        where, params = ("1 = 1", []) if country else (registered, list(scope_params))
        if only is not None:
            where, params = f"{where} AND {only[0]}", [*params, *only[1]]
        parts: list[str] = []
        args: list[Any] = []
        covering = "(b.f IS NULL OR (? <= b.f AND b.f <= b.l AND b.l < ?))"
        bounds = ("(SELECT MAX(CASE WHEN key = 'first_minute' THEN value END) AS f,"
                  " MAX(CASE WHEN key = 'last_minute' THEN value END) AS l FROM meta) b")
        for piece in rollup.split_range(start, end, grid):
            table = piece.country_table if country else piece.checkpoint_table
            columns = ", ".join(f"{expr} AS k{i}" for i, expr in enumerate(keys(piece)))
            if all_time is None:
                parts.append(f"SELECT {columns}, count FROM {table} WHERE unit >= ? AND unit < ? AND {where}")
                args += [piece.lo, piece.hi, *params]
            else:
                parts.append(f"SELECT {columns}, count FROM {table}, {bounds} WHERE unit >= ? AND unit < ?"
                             f" AND {where} AND NOT {covering}")
                args += [piece.lo, piece.hi, *params, start, end]
        if all_time is not None:
            columns = ", ".join(f"{expr} AS k{i}" for i, expr in enumerate(all_time))
            parts.append(f"SELECT {columns}, count FROM {rollup.TOTALS_TABLE}, {bounds}"
                         f" WHERE {registered} AND {covering}")
            args += [*scope_params, start, end]
        if not parts:
            return None
        return " UNION ALL ".join(parts), args

    def _sum_counts(self, scope: Scope, start: int, end: int, keys: Callable[[rollup.Piece], Sequence[str]], *,
                    grid: tuple[int, int] | None = None, per_checkpoint: bool = False,
                    all_time: Sequence[str] | None = None,
                    only: tuple[str, Sequence[Any]] | None = None) -> dict[tuple[Any, ...], int]:
        """SUM(count) grouped by the `keys` expressions (see `_sums_sql`), in one statement."""
        sub = self._sums_sql(scope, start, end, keys, grid=grid, per_checkpoint=per_checkpoint, all_time=all_time,
                             only=only)
        if sub is None:
            return {}
        sql, args = sub
        n = len(all_time) if all_time is not None else len(keys(rollup.Piece(rollup.MINUTE, 0, 0)))
        group = ", ".join(f"k{i}" for i in range(n))
        rows = self._conn().execute(f"SELECT {group}, SUM(count) FROM ({sql}) s GROUP BY {group}", args)
        return {tuple(key): int(total) for *key, total in rows}

    def totals(self, scope: Scope, since: datetime, until: datetime) -> Counts:
        start, end = minute_range(since, until)
        sums = self._sum_counts(scope, start, end, lambda p: ("result",), all_time=("result",))
        return Counts(**{key[0]: n for key, n in sums.items() if key[0] in COUNTED and n})

    def totals_by(self, scope: Scope, since: datetime, until: datetime, level: str) -> list[GroupCounts]:
        if level not in LEVELS:
            raise InvalidRecord(f"level must be province, district or checkpoint, got {level!r}")
        start, end = minute_range(since, until)
        sub = self._sums_sql(scope, start, end, lambda p: ("checkpoint", "result"), per_checkpoint=True,
                             all_time=("checkpoint", "result"))
        if sub is None:
            return []
        sql, args = sub
        # Provinces and districts are labelled by their code, checkpoints by their name.
        key, label = {"province": ("c.province", "c.province"), "district": ("c.district", "c.district"),
                      "checkpoint": ("c.id", "c.name")}[level]
        rows = self._conn().execute(
            f"SELECT {key}, MIN({label}), s.k1, SUM(s.count) FROM ({sql}) s JOIN checkpoints c ON c.id = s.k0"
            f" GROUP BY {key}, s.k1", args,
        )
        groups: dict[str, tuple[str, dict[str, int]]] = {}
        for group, name, result, n in rows:
            counts = groups.setdefault(group, (name, {}))[1]
            counts[result] = counts.get(result, 0) + int(n)
        return [GroupCounts(k, groups[k][0], Counts(**groups[k][1])) for k in sorted(groups)]

    @staticmethod
    def _buckets(start: int, end: int, bucket_s: int) -> tuple[int, int]:
        """Width in minutes and number of buckets of a chart over [start, end)."""
        if not isinstance(bucket_s, int) or bucket_s < 60 or bucket_s % 60:
            raise InvalidRecord(f"bucket_s must be a positive multiple of 60, got {bucket_s!r}")
        width = bucket_s // 60
        count = -(-(end - start) // width)
        if count > MAX_BUCKETS:
            raise InvalidRecord(f"{count} buckets asked for; at most {MAX_BUCKETS}: use wider buckets")
        return width, count

    def timeseries(self, scope: Scope, since: datetime, until: datetime, bucket_s: int) -> list[Bucket]:
        start, end = minute_range(since, until)
        width, count = self._buckets(start, end, bucket_s)
        # Units of a roll-up are used only where they fall inside one bucket (see split_range).
        sums = self._sum_counts(scope, start, end, lambda p: (f"(unit * {p.size} - {start}) / {width}", "result"),
                                grid=(start, width))
        filled: list[dict[str, int]] = [{} for _ in range(count)]
        for (index, result), n in sums.items():
            filled[int(index)][result] = n
        return [
            Bucket(datetime.fromtimestamp((start + i * width) * 60, tz=timezone.utc), Counts(**c))
            for i, c in enumerate(filled)
        ]

    def timeseries_by_checkpoint(self, scope: Scope, since: datetime, until: datetime,
                                 bucket_s: int) -> dict[str, list[Bucket]]:
        start, end = minute_range(since, until)
        width, _count = self._buckets(start, end, bucket_s)
        sums = self._sum_counts(scope, start, end,
                                lambda p: ("checkpoint", f"(unit * {p.size} - {start}) / {width}", "result"),
                                grid=(start, width), per_checkpoint=True)
        found: dict[str, dict[int, dict[str, int]]] = {}
        for (cp, index, result), n in sums.items():
            if n:
                found.setdefault(cp, {}).setdefault(int(index), {})[result] = n
        return {cp: [Bucket(datetime.fromtimestamp((start + i * width) * 60, tz=timezone.utc), Counts(**c))
                     for i, c in sorted(buckets.items())] for cp, buckets in sorted(found.items())}

    def verdicts_by_hour_of_day(self, scope: Scope, since: datetime, until: datetime) -> dict[str, list[int]]:
        start, end = minute_range(since, until)
        verdicts = ", ".join(f"'{r}'" for r in RESULTS)
        sums = self._sum_counts(
            scope, start, end,
            lambda p: ("checkpoint", f"(unit * {p.size} - {start}) / 60 % 24",
                       f"CASE WHEN result IN ({verdicts}) THEN 1 ELSE 0 END"),
            grid=(start, 60), per_checkpoint=True)
        found: dict[str, list[int]] = {}
        for (cp, hour, verdict), n in sums.items():
            if verdict and n:
                found.setdefault(cp, [0] * 24)[int(hour)] += n
        return found

    def reasons(self, scope: Scope, since: datetime, until: datetime) -> list[ReasonCount]:
        start, end = minute_range(since, until)
        sums = self._sum_counts(scope, start, end, lambda p: ("result", "reason"))
        ordered = sorted(sums.items(), key=lambda item: (-item[1], item[0][0], item[0][1]))
        # Verdict reasons only: decisions have their own counts (decision_counts).
        return [ReasonCount(result, reason, n) for (result, reason), n in ordered if result in RESULTS]

    def reasons_by_checkpoint(self, scope: Scope, since: datetime, until: datetime,
                              reasons: Sequence[str] | None = None) -> dict[str, list[ReasonCount]]:
        start, end = minute_range(since, until)
        only = None if reasons is None else (
            f"reason IN ({', '.join('?' for _ in reasons)})" if reasons else "1 = 0", list(reasons))
        sums = self._sum_counts(scope, start, end, lambda p: ("checkpoint", "result", "reason"), per_checkpoint=True,
                                only=only)
        ordered = sorted(sums.items(), key=lambda item: (item[0][0], -item[1], item[0][1], item[0][2]))
        found: dict[str, list[ReasonCount]] = {}
        for (cp, result, reason), n in ordered:
            if result in RESULTS and n:
                found.setdefault(cp, []).append(ReasonCount(result, reason, n))
        return found

    def decision_counts(self, scope: Scope, since: datetime, until: datetime) -> list[DecisionCount]:
        start, end = minute_range(since, until)
        inner, params = scope.sql("province", "district", "id")
        rows = self._conn().execute(
            "SELECT checkpoint, officer, outcome, reason, follows_result, follows_reason, SUM(count)"
            " FROM decision_counts WHERE minute >= ? AND minute < ?"
            f" AND checkpoint IN (SELECT id FROM checkpoints WHERE {inner})"
            " GROUP BY checkpoint, officer, outcome, reason, follows_result, follows_reason"
            " ORDER BY checkpoint, officer, outcome, reason, follows_result, follows_reason",
            [start, end, *params],
        ).fetchall()
        return [DecisionCount(row[0], row[1], row[2], row[3], row[4], row[5], int(row[6])) for row in rows]

    def counts_by_device(self, checkpoint: str, since: datetime, until: datetime) -> dict[str, Counts]:
        rows = self._conn().execute(
            "SELECT device, result, COUNT(*) FROM events WHERE checkpoint = ? AND ts >= ? AND ts < ?"
            " GROUP BY device, result", (checkpoint, to_ms(since), to_ms(until)),
        ).fetchall()
        tallies: dict[str, dict[str, int]] = {}
        for device, result, n in rows:
            if result in ("green", "yellow", "red", "decision", "manual"):
                tallies.setdefault(device, {})[result] = int(n)
        return {device: Counts(**t) for device, t in tallies.items()}

    def recent_events(self, scope: Scope, checkpoint: str | None = None, limit: int = 50) -> list[Event]:
        limit = max(0, min(int(limit), 1000))
        where, params = scope.sql("c.province", "c.district", "c.id")
        if checkpoint is not None:
            where += " AND e.checkpoint = ?"
            params.append(checkpoint)
        rows = self._conn().execute(
            "SELECT e.device, e.checkpoint, e.seq, e.ts, e.result, e.reason, e.policy,"
            " e.trust_version, e.received_at, e.outcome, e.officer, e.follows_seq, e.follows_result,"
            " e.follows_reason FROM events e JOIN checkpoints c ON c.id = e.checkpoint"
            f" WHERE {where} ORDER BY e.id DESC LIMIT ?", [*params, limit],
        ).fetchall()
        return [
            Event(d, cp, seq, from_ms(ts), res, reason, pol, tv, from_ms(rec), *rest)
            for d, cp, seq, ts, res, reason, pol, tv, rec, *rest in rows
        ]

    def change_marker(self) -> int:
        row = self._conn().execute("SELECT value FROM meta WHERE key = 'changes'").fetchone()
        return int(row[0])

    def prune_events(self, received_before: datetime) -> int:
        # Per-minute counts are kept, so totals and charts stay exact; only the single rows (used
        # for recent lists and to recognise redeliveries) go. Units resend within hours, not months.
        cutoff = to_ms(received_before)
        deleted = 0
        while True:  # in slices, so the ingest is never locked out for long
            with self._write() as conn:
                cur = conn.execute(
                    "DELETE FROM events WHERE id IN (SELECT id FROM events WHERE received_at < ? LIMIT 5000)",
                    (cutoff,),
                )
            deleted += cur.rowcount
            if cur.rowcount < 5000:
                return deleted

    def record_rejects(self, counts: Mapping[str, int]) -> None:
        rows = [(reason[:64], int(n)) for reason, n in counts.items() if n]
        if not rows:
            return
        with self._write() as conn:
            conn.executemany(
                "INSERT INTO ingest_rejects (reason, count) VALUES (?, ?)"
                " ON CONFLICT(reason) DO UPDATE SET count = ingest_rejects.count + excluded.count", rows,
            )

    def reject_counts(self) -> dict[str, int]:
        rows = self._conn().execute("SELECT reason, count FROM ingest_rejects ORDER BY reason")
        return {reason: int(n) for reason, n in rows}

    # -- officers and rosters ------------------------------------------------------------------
    def upsert_officer(self, checkpoint: str, officer_id: str, name: str, role: str, pin: str) -> OfficerRecord:
        if not isinstance(officer_id, str) or not OFFICER_RE.match(officer_id):
            raise InvalidRecord(f"officer id must be 1-32 letters, digits, '_', '.' or '-', got {officer_id!r}")
        if not isinstance(name, str) or not 0 < len(name.strip()) <= 100:
            raise InvalidRecord("officer name must be 1-100 characters")
        if not isinstance(pin, str) or not pin.startswith("{"):
            raise InvalidRecord("an officer needs a PIN hash")
        now = to_ms(datetime.now(timezone.utc))
        with self._write() as conn:
            if conn.execute("SELECT 1 FROM checkpoints WHERE id = ?", (checkpoint,)).fetchone() is None:
                raise UnknownCheckpoint(checkpoint)
            conn.execute(
                "INSERT INTO officers (checkpoint, id, name, role, pin, updated_at) VALUES (?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (checkpoint, id) DO UPDATE SET name = excluded.name, role = excluded.role,"
                " pin = excluded.pin, updated_at = excluded.updated_at",
                (checkpoint, officer_id, name.strip(), role, pin, now),
            )
        return OfficerRecord(checkpoint, officer_id, name.strip(), role, pin, from_ms(now))

    def remove_officer(self, checkpoint: str, officer_id: str) -> bool:
        with self._write() as conn:
            cur = conn.execute("DELETE FROM officers WHERE checkpoint = ? AND id = ?", (checkpoint, officer_id))
            return cur.rowcount > 0

    def list_officers(self, scope: Scope, checkpoint: str | None = None) -> list[OfficerRecord]:
        inner, params = scope.sql("province", "district", "id")
        where = f"checkpoint IN (SELECT id FROM checkpoints WHERE {inner})"
        if checkpoint is not None:
            where += " AND checkpoint = ?"
            params.append(checkpoint)
        rows = self._conn().execute(
            f"SELECT checkpoint, id, name, role, pin, updated_at FROM officers WHERE {where} ORDER BY checkpoint, id",
            params,
        ).fetchall()
        return [OfficerRecord(row[0], row[1], row[2], row[3], row[4], from_ms(row[5])) for row in rows]

    def save_roster(self, checkpoint: str, version: int, raw: bytes) -> RosterRecord:
        now = to_ms(datetime.now(timezone.utc))
        with self._write() as conn:
            conn.execute(
                "INSERT INTO rosters (checkpoint, version, raw, published_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (checkpoint) DO UPDATE SET version = excluded.version, raw = excluded.raw,"
                " published_at = excluded.published_at",
                (checkpoint, int(version), bytes(raw), now),
            )
        return RosterRecord(checkpoint, int(version), bytes(raw), from_ms(now))

    def latest_roster(self, checkpoint: str) -> RosterRecord | None:
        row = self._conn().execute(
            "SELECT checkpoint, version, raw, published_at FROM rosters WHERE checkpoint = ?", (checkpoint,)
        ).fetchone()
        return None if row is None else RosterRecord(row[0], row[1], bytes(row[2]), from_ms(row[3]))

    # -- users -------------------------------------------------------------------------------
    def create_user(
        self, username: str, password_hash: str, role: str, scopes: Scope, language: str = "vi"
    ) -> User:
        if not isinstance(username, str) or not USERNAME_RE.match(username):
            raise InvalidRecord(f"username must be 1-64 letters, digits, '_', '.', '@' or '-', got {username!r}")
        if role not in ROLES:
            raise InvalidRecord(f"role must be one of {', '.join(ROLES)}, got {role!r}")
        if language not in LANGUAGES:
            raise InvalidRecord(f"language must be vi or en, got {language!r}")
        if not password_hash:
            raise InvalidRecord("a password hash is required")
        scope = Scope.all() if role == "admin" else scopes
        created = datetime.now(timezone.utc)
        try:
            with self._write() as conn:
                conn.execute(
                    "INSERT INTO users (username, password_hash, role, scope, language, created_at)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (username, password_hash, role, json.dumps(scope.to_json()), language, to_ms(created)),
                )
        except self._integrity_errors:
            raise DuplicateUser(username) from None
        return User(username, password_hash, role, scope, language, from_ms(to_ms(created)))

    @staticmethod
    def _user(row: Sequence[Any]) -> User:
        return User(row[0], row[1], row[2], Scope.from_json(json.loads(row[3])), row[4], from_ms(row[5]))

    def get_user(self, username: str) -> User | None:
        row = self._conn().execute(
            "SELECT username, password_hash, role, scope, language, created_at FROM users"
            " WHERE username = ?", (username,),
        ).fetchone()
        return None if row is None else self._user(row)

    def list_users(self) -> list[User]:
        rows = self._conn().execute(
            "SELECT username, password_hash, role, scope, language, created_at FROM users ORDER BY username"
        ).fetchall()
        return [self._user(row) for row in rows]

    def set_user_language(self, username: str, language: str) -> None:
        if language not in LANGUAGES:
            raise InvalidRecord(f"language must be vi or en, got {language!r}")
        with self._write() as conn:
            cur = conn.execute("UPDATE users SET language = ? WHERE username = ?", (language, username))
            if cur.rowcount == 0:
                raise UnknownUser(username)

    def record_login_failure(self, username: str, ip: str, at: datetime | None = None) -> None:
        when = to_ms(at or datetime.now(timezone.utc))
        with self._write() as conn:
            conn.execute("INSERT INTO login_failures (username, ip, at) VALUES (?, ?, ?)",
                         (username[:200], ip[:64], when))
            # Old attempts say nothing about guessing now; keep the table small.
            conn.execute("DELETE FROM login_failures WHERE at < ?", (when - 86_400_000,))

    def clear_login_failures(self, username: str, ip: str) -> None:
        with self._write() as conn:
            conn.execute("DELETE FROM login_failures WHERE username = ? AND ip = ?", (username, ip))

    def login_failures(self, username: str, ip: str, window: timedelta, now: datetime | None = None) -> int:
        since = to_ms((now or datetime.now(timezone.utc)) - window)
        conn = self._conn()
        by_user = conn.execute("SELECT COUNT(*) FROM login_failures WHERE username = ? AND at >= ?",
                               (username, since)).fetchone()[0]
        by_ip = conn.execute("SELECT COUNT(*) FROM login_failures WHERE ip = ? AND at >= ?",
                             (ip, since)).fetchone()[0]
        return int(max(by_user, by_ip))

    def login_failure_stats(self, username: str, ip: str, window: timedelta,
                            now: datetime | None = None) -> LoginFailures:
        since = to_ms((now or datetime.now(timezone.utc)) - window)
        conn = self._conn()
        pair = conn.execute("SELECT COUNT(*), MAX(at) FROM login_failures WHERE username = ? AND ip = ? AND at >= ?",
                            (username, ip, since)).fetchone()
        address = conn.execute("SELECT COUNT(*), MAX(at) FROM login_failures WHERE ip = ? AND at >= ?",
                               (ip, since)).fetchone()
        account = conn.execute("SELECT COUNT(DISTINCT ip), MAX(at) FROM login_failures WHERE username = ? AND at >= ?",
                               (username, since)).fetchone()

        def last(ms: Any) -> datetime | None:
            return from_ms(int(ms)) if ms is not None else None

        return LoginFailures(int(pair[0]), last(pair[1]), int(address[0]), last(address[1]),
                             int(account[0]), last(account[1]))

    def delete_user(self, username: str) -> bool:
        with self._write() as conn:
            return conn.execute("DELETE FROM users WHERE username = ?", (username,)).rowcount > 0

    def set_user_access(self, username: str, role: str, scopes: Scope) -> User:
        if role not in ROLES:
            raise InvalidRecord(f"role must be one of {', '.join(ROLES)}, got {role!r}")
        scope = Scope.all() if role == "admin" else scopes
        with self._write() as conn:
            cur = conn.execute("UPDATE users SET role = ?, scope = ? WHERE username = ?",
                               (role, json.dumps(scope.to_json()), username))
            if cur.rowcount == 0:
                raise UnknownUser(username)
        user = self.get_user(username)
        assert user is not None
        return user

    # -- audit -------------------------------------------------------------------------------
    def record_audit(self, actor: str, action: str, target: str, province: str | None = None,
                     detail: str = "", at: datetime | None = None) -> AuditEntry:
        if action not in AUDIT_ACTIONS:
            raise InvalidRecord(f"audit action must be one of {', '.join(AUDIT_ACTIONS)}, got {action!r}")
        when = to_ms(at or datetime.now(timezone.utc))
        row = (when, str(actor)[:64], action, str(target)[:200], province, str(detail)[:500])
        with self._write() as conn:
            new_id = conn.execute(
                "INSERT INTO audit_log (at, actor, action, target, province, detail) VALUES (?, ?, ?, ?, ?, ?)"
                " RETURNING id", row).fetchone()[0]
        return AuditEntry(int(new_id), from_ms(when), *row[1:])

    def audit_log(self, scope: Scope, limit: int = 200) -> list[AuditEntry]:
        limit = max(0, min(int(limit), 5000))
        if scope.everything:
            where, params = "1 = 1", []
        else:
            provinces = sorted(scope.provinces)
            where = f"province IN ({', '.join('?' for _ in provinces)})" if provinces else "0 = 1"
            params = provinces
        rows = self._conn().execute(
            f"SELECT id, at, actor, action, target, province, detail FROM audit_log WHERE {where}"
            " ORDER BY id DESC LIMIT ?", [*params, limit],
        ).fetchall()
        return [AuditEntry(r[0], from_ms(r[1]), *r[2:]) for r in rows]

    # -- trust -------------------------------------------------------------------------------
    def save_trust_bundle(
        self,
        version: int,
        raw: bytes,
        issued_at: datetime | None,
        next_update: datetime | None,
        uploaded_by: str | None = None,
    ) -> TrustRecord:
        if not isinstance(version, int) or version < 0:
            raise InvalidRecord(f"bundle version must be a non-negative integer, got {version!r}")
        uploaded = datetime.now(timezone.utc)
        try:
            with self._write() as conn:
                conn.execute(
                    "INSERT INTO trust_bundles (version, raw, issued_at, next_update, uploaded_at,"
                    " uploaded_by) VALUES (?, ?, ?, ?, ?, ?)",
                    (version, bytes(raw), issued_at and to_ms(issued_at), next_update and to_ms(next_update),
                     to_ms(uploaded), uploaded_by),
                )
        except self._integrity_errors:
            raise InvalidRecord(f"trust bundle version {version} is already stored") from None
        return TrustRecord(version, bytes(raw), issued_at, next_update, from_ms(to_ms(uploaded)),
                           uploaded_by)

    def latest_trust_bundle(self) -> TrustRecord | None:
        row = self._conn().execute(
            "SELECT version, raw, issued_at, next_update, uploaded_at, uploaded_by FROM trust_bundles"
            " ORDER BY version DESC LIMIT 1"
        ).fetchone()
        if row is None:
            return None
        return TrustRecord(row[0], bytes(row[1]), from_ms(row[2]), from_ms(row[3]),
                           from_ms(row[4]), row[5])
