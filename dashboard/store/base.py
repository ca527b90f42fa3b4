"""The central store's shared part: records, errors, the `Store` interface, time arithmetic.

`Store` is the small interface the ingest and the web app code against; each backend lives in
a module named after its technology (`sqlite.py`, the embedded default). Every query takes a
`Scope`, so a scoped user can never read outside their area, and every datetime in or out is
timezone-aware UTC.

Events hold no personal data: only device, checkpoint, seq, times, result, reason, policy and
trust version. `Event` refuses anything that does not look like those.
"""

from __future__ import annotations

import logging
import re
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Literal, overload

from dashboard.scope import Scope

# The contract's words and field rules (results, decision kinds, ids, codes): protocol.fields.
from protocol.fields import COUNTED, DECISION_KINDS, FOLLOWED, NAME, OUTCOMES, REASON
from protocol.fields import ID as ID_RE
from protocol.fields import OFFICER_ID as OFFICER_RE

logger = logging.getLogger(__name__)

Result = Literal["green", "yellow", "red"]
Role = Literal["admin", "province_admin", "supervisor", "viewer"]
Level = Literal["province", "district", "checkpoint"]
ROLES: tuple[str, ...] = ("admin", "province_admin", "supervisor", "viewer")
# Roles that administer: the national admin everything, a province admin inside its provinces.
ADMIN_ROLES: tuple[str, ...] = ("admin", "province_admin")
LEVELS: tuple[str, ...] = ("province", "district", "checkpoint")
LANGUAGES: tuple[str, ...] = ("vi", "en")


class StoreError(Exception):
    """Base of every store error; `str(e)` is a reason a person can read."""


class StoreUnavailable(StoreError):
    """The database cannot be reached now (server down, network); the same call may work later."""


class InvalidRecord(StoreError):
    """A record does not fit the schema (bad id, unknown result, personal-looking text...)."""


class UnknownCheckpoint(StoreError):
    """A device refers to a checkpoint that is not registered."""

    def __init__(self, checkpoint: str) -> None:
        self.checkpoint = checkpoint
        super().__init__(f"checkpoint {checkpoint!r} is not registered")


class UnknownDevice(StoreError):
    """No device with this id is registered."""

    def __init__(self, device: str) -> None:
        self.device = device
        super().__init__(f"device {device!r} is not registered")


class DuplicateUser(StoreError):
    """A user with this name already exists."""

    def __init__(self, username: str) -> None:
        self.username = username
        super().__init__(f"user {username!r} already exists")


class UnknownUser(StoreError):
    """No user with this name exists."""

    def __init__(self, username: str) -> None:
        self.username = username
        super().__init__(f"user {username!r} does not exist")


def utc(value: datetime) -> datetime:
    """Return `value` as an aware UTC datetime; naive datetimes are refused, not guessed."""
    if value.tzinfo is None:
        raise InvalidRecord("datetimes must carry a timezone (UTC expected)")
    return value.astimezone(timezone.utc)


def check_id(kind: str, value: str) -> str:
    """Return `value` if it is a valid identifier, else raise InvalidRecord naming `kind`."""
    if not isinstance(value, str) or not ID_RE.match(value):
        raise InvalidRecord(f"{kind} id must be 1-64 letters, digits, '_', '.' or '-', got {value!r}")
    return value


@dataclass(frozen=True)
class Event:
    """One verdict from a unit, as stored: no names, no dates of birth, no certificate ids."""

    device: str
    checkpoint: str
    seq: int
    ts: datetime
    result: str
    reason: str
    policy: str
    trust_version: int | None
    received_at: datetime
    outcome: str | None = None
    """Decisions only (result "decision" or "manual"): let_through or turned_back."""
    officer: str | None = None
    follows_seq: int | None = None
    follows_result: str | None = None
    follows_reason: str | None = None

    @property
    def is_decision(self) -> bool:
        """An officer's decision or manual check, not a verdict."""
        return self.result in DECISION_KINDS

    def __post_init__(self) -> None:
        check_id("device", self.device)
        check_id("checkpoint", self.checkpoint)
        if not isinstance(self.seq, int) or isinstance(self.seq, bool) or not 0 <= self.seq < 2**63:
            raise InvalidRecord("seq must be a non-negative integer")
        # The messages never repeat a refused text value: it could be a name sent by mistake.
        if self.result not in COUNTED:
            raise InvalidRecord("result must be green, yellow, red, decision or manual")
        if self.result in DECISION_KINDS:
            self._check_decision()
        elif any(v is not None for v in (self.outcome, self.officer, self.follows_seq, self.follows_result,
                                         self.follows_reason)):
            raise InvalidRecord("a verdict carries no decision fields")
        if not isinstance(self.reason, str) or not REASON.match(self.reason):
            raise InvalidRecord("reason must be a lower-case code of at most 64 characters")
        if not isinstance(self.policy, str) or not NAME.match(self.policy):
            raise InvalidRecord("policy must be a lower-case code of at most 64 characters")
        tv = self.trust_version
        if tv is not None and (not isinstance(tv, int) or isinstance(tv, bool) or tv < 0):
            raise InvalidRecord("trust_version must be a non-negative integer")
        object.__setattr__(self, "ts", utc(self.ts))
        object.__setattr__(self, "received_at", utc(self.received_at))

    def _check_decision(self) -> None:
        if self.outcome not in OUTCOMES:
            raise InvalidRecord("a decision's outcome must be let_through or turned_back")
        if not isinstance(self.officer, str) or not OFFICER_RE.match(self.officer):
            raise InvalidRecord("a decision needs an officer id")
        manual = self.result == "manual"
        if manual != (self.follows_seq is None):
            raise InvalidRecord("a decision follows a verdict's seq; a manual check follows none")
        if not manual:
            fs = self.follows_seq
            if not isinstance(fs, int) or isinstance(fs, bool) or not 0 <= fs < 2**63:
                raise InvalidRecord("follows_seq must be a non-negative integer")
            if self.follows_result not in FOLLOWED:
                raise InvalidRecord("a decision follows a yellow or red verdict")
            if not isinstance(self.follows_reason, str) or not REASON.match(self.follows_reason):
                raise InvalidRecord("follows_reason must be a lower-case code")
        elif self.follows_result is not None or self.follows_reason is not None:
            raise InvalidRecord("a manual check follows no verdict")


@dataclass(frozen=True)
class Checkpoint:
    """A control point, placed in a district and a province (administrative codes)."""

    id: str
    name: str
    district: str
    province: str
    policy: str | None = None


@dataclass(frozen=True)
class Device:
    """A registered unit with its latest reported status (None where it has not said yet)."""

    id: str
    checkpoint: str
    district: str
    province: str
    checkpoint_name: str
    created_at: datetime
    state: str = "unknown"  # "online" | "offline" | "unknown" (never reported)
    last_seen: datetime | None = None  # last event or status received from it
    status_at: datetime | None = None  # when its latest status message arrived
    software: str | None = None
    trust_version: int | None = None
    trust_age_s: float | None = None
    backlog: int | None = None
    clock: str | None = None  # "ok" | "behind_bundle" | "behind_last_seen"
    fps: float | None = None
    temperature_c: float | None = None
    uptime_s: float | None = None
    last_seq: int | None = None  # highest seq stored from it
    complete_at: datetime | None = None  # last time it said, online, that its outbox was empty
    broker: str | None = None  # "host:port" of the cluster node it last said it is on
    # Attacks on officer PINs, as of its last status (counts and staff ids only).
    pin_wrong_hour: int | None = None  # wrong PINs in the hour before that status
    pin_wrong_total: int | None = None
    pin_lockouts: int | None = None
    pin_locked: bool | None = None
    pin_officers: str | None = None  # comma-separated roster staff ids tried with a wrong PIN that hour

    @property
    def online(self) -> bool:
        """True if the unit's latest status says it is online."""
        return self.state == "online"


@dataclass(frozen=True)
class Counts:
    """Verdict counts and, beside them, officer decisions after a scan and manual checks;
    `total` (verdicts only), `pass_rate` (green + yellow over total: let through) and
    `green_rate` (green only over total: fully valid) are derived."""

    green: int = 0
    yellow: int = 0
    red: int = 0
    decision: int = 0
    manual: int = 0

    @property
    def total(self) -> int:
        """All verdicts."""
        return self.green + self.yellow + self.red

    @property
    def pass_rate(self) -> float | None:
        """Share of verdicts that let the person through, or None when there are none."""
        return (self.green + self.yellow) / self.total if self.total else None

    @property
    def green_rate(self) -> float | None:
        """Share of verdicts fully valid (green only), or None when there are none."""
        return self.green / self.total if self.total else None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form for the API."""
        return {"green": self.green, "yellow": self.yellow, "red": self.red, "total": self.total,
                "pass_rate": self.pass_rate, "green_rate": self.green_rate, "decisions": self.decision, "manual_checks": self.manual}


@dataclass(frozen=True)
class GroupCounts:
    """Counts of one province, district or checkpoint (`key` is its code, `label` its name)."""

    key: str
    label: str
    counts: Counts


@dataclass(frozen=True)
class Bucket:
    """Counts in the time bucket starting at `start` (UTC)."""

    start: datetime
    counts: Counts


@dataclass(frozen=True)
class ReasonCount:
    """How many verdicts had this result and reason."""

    result: str
    reason: str
    count: int


@dataclass(frozen=True)
class DecisionCount:
    """Decisions of one officer at one checkpoint with the same outcome, reason and the verdict
    they followed ("" for manual checks): the rows of the decision roll-up."""

    checkpoint: str
    officer: str
    outcome: str
    reason: str
    follows_result: str
    follows_reason: str
    count: int


@dataclass(frozen=True)
class OfficerRecord:
    """An officer allowed at one checkpoint; `pin` is the JSON of a scrypt PIN hash (never a PIN)."""

    checkpoint: str
    id: str
    name: str
    role: str
    pin: str = field(repr=False)
    updated_at: datetime | None = None


@dataclass(frozen=True)
class RosterRecord:
    """The latest signed roster published for a checkpoint."""

    checkpoint: str
    version: int
    raw: bytes = field(repr=False)
    published_at: datetime | None = None


@dataclass(frozen=True)
class User:
    """A dashboard account; `password_hash` is whatever the web app's hasher produced."""

    username: str
    password_hash: str
    role: str
    scope: Scope
    language: str = "vi"
    created_at: datetime | None = None


@dataclass(frozen=True)
class TrustRecord:
    """A trust bundle accepted by the dashboard; `raw` is the exact signed file."""

    version: int
    raw: bytes
    issued_at: datetime | None
    next_update: datetime | None
    uploaded_at: datetime
    uploaded_by: str | None = None


@dataclass(frozen=True)
class AuditEntry:
    """One administrative action: who did what to which target, and when (no personal data of
    scanned people; officers' and supervisors' account names are staff data)."""

    id: int
    at: datetime
    actor: str
    action: str
    target: str
    province: str | None = None  # the province it concerns, None for a national action
    detail: str = ""


AUDIT_ACTIONS: tuple[str, ...] = (
    "user_created", "user_removed", "user_scope_changed", "device_added", "device_removed",
    "device_password_rotated", "trust_uploaded", "export", "report", "officer_saved", "officer_removed",
    "refused",  # a logged-in user was refused (403): target = what was asked, detail = the reason
    "login_attack",  # failed logins began to be slowed down: target = account @ address, detail = counts
)


@dataclass(frozen=True)
class LoginFailures:
    """Recent failed logins as the login throttle weighs them (all within one window)."""

    pair: int  # this account from this address
    pair_last: datetime | None
    address: int  # any account from this address
    address_last: datetime | None
    account_addresses: int  # distinct addresses that failed this account
    account_last: datetime | None


@dataclass(frozen=True)
class StatusUpdate:
    """A device's status message as the ingest parsed it (the contract's status fields only)."""

    state: str
    software: str | None = None
    trust_version: int | None = None
    trust_age_s: float | None = None
    backlog: int | None = None
    clock: str | None = None
    fps: float | None = None
    temperature_c: float | None = None
    uptime_s: float | None = None
    broker: str | None = None
    pin_wrong_hour: int | None = None
    pin_wrong_total: int | None = None
    pin_lockouts: int | None = None
    pin_locked: bool | None = None
    pin_officers: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Store(ABC):
    """What the ingest and the web app need from storage; every query is limited by a Scope."""

    shared: bool = False
    """True when one instance may serve every thread of a process (a pool); False: one per thread
    or request (SQLite connections belong to their thread)."""
    shared_sessions: bool = False
    """True when the store keeps ended sessions (`end_session`), so that a logout holds in every web
    process; False: the web app keeps them in its own memory (the one-process profile)."""

    # -- lifecycle -------------------------------------------------------------------------
    @abstractmethod
    def close(self) -> None:
        """Release connections."""

    # -- sessions (stores with shared_sessions) --------------------------------------------
    def end_session(self, sid: str, until: datetime) -> None:
        """Refuse the web session `sid` until `until` (it expires by itself then)."""
        raise NotImplementedError(f"{type(self).__name__} keeps no sessions")

    def session_ended(self, sid: str) -> bool:
        """True if the web session `sid` was logged out."""
        raise NotImplementedError(f"{type(self).__name__} keeps no sessions")

    # -- registry --------------------------------------------------------------------------
    @abstractmethod
    def upsert_checkpoint(
        self, id: str, name: str, district: str, province: str, policy: str | None = None
    ) -> Checkpoint:
        """Create or update a checkpoint."""

    @abstractmethod
    def list_checkpoints(self, scope: Scope) -> list[Checkpoint]:
        """Checkpoints inside `scope`, ordered by province, district, id."""

    @abstractmethod
    def add_device(self, device_id: str, checkpoint: str) -> Device:
        """Register a unit at a registered checkpoint (re-adding moves it); UnknownCheckpoint if not."""

    @abstractmethod
    def remove_device(self, device_id: str) -> bool:
        """Forget a unit (its counted events stay); False if it was not registered."""

    @abstractmethod
    def get_device(self, device_id: str) -> Device | None:
        """One unit with its status, or None."""

    @abstractmethod
    def list_devices(self, scope: Scope) -> list[Device]:
        """Units inside `scope` with their status, ordered by checkpoint, id."""

    # -- ingest ----------------------------------------------------------------------------
    @abstractmethod
    def record_events(self, batch: Sequence[Event]) -> int:
        """Store a batch in one transaction; returns how many were new (same (device, seq) = once)."""

    @abstractmethod
    def record_status(self, device_id: str, status: StatusUpdate, received_at: datetime) -> bool:
        """Save a unit's latest status; False (nothing stored) if the device is not registered."""

    # -- queries ---------------------------------------------------------------------------
    @abstractmethod
    def totals(self, scope: Scope, since: datetime, until: datetime) -> Counts:
        """Counts of verdicts with since <= ts < until (per-minute resolution)."""

    @abstractmethod
    def totals_by(self, scope: Scope, since: datetime, until: datetime, level: str) -> list[GroupCounts]:
        """Counts per province, district or checkpoint, ordered by key; only groups with data."""

    @abstractmethod
    def timeseries(self, scope: Scope, since: datetime, until: datetime, bucket_s: int) -> list[Bucket]:
        """Counts per `bucket_s` (a multiple of 60), every bucket present, zeros included."""

    @abstractmethod
    def reasons(self, scope: Scope, since: datetime, until: datetime) -> list[ReasonCount]:
        """Counts per (result, reason), largest first."""

    def reasons_by_checkpoint(self, scope: Scope, since: datetime, until: datetime,
                              reasons: Sequence[str] | None = None) -> dict[str, list[ReasonCount]]:
        """`reasons` of each checkpoint inside `scope` that has any (only those `reasons` if given),
        in one go (a backend answers it with one query; this fallback asks per checkpoint)."""
        found: dict[str, list[ReasonCount]] = {}
        for cp in self.list_checkpoints(scope):
            rows = [r for r in self.reasons(Scope.of(checkpoints=[cp.id]), since, until)
                    if r.count and (reasons is None or r.reason in reasons)]
            if rows:
                found[cp.id] = rows
        return found

    def timeseries_by_checkpoint(self, scope: Scope, since: datetime, until: datetime,
                                 bucket_s: int) -> dict[str, list[Bucket]]:
        """`timeseries` of each checkpoint inside `scope`, keeping only checkpoints and buckets
        that hold counts (a backend answers it with one query; this fallback asks per checkpoint)."""
        found: dict[str, list[Bucket]] = {}
        for cp in self.list_checkpoints(scope):
            buckets = [b for b in self.timeseries(Scope.of(checkpoints=[cp.id]), since, until, bucket_s)
                       if b.counts != Counts()]
            if buckets:
                found[cp.id] = buckets
        return found

    @abstractmethod
    def counts_by_device(self, checkpoint: str, since: datetime, until: datetime) -> dict[str, Counts]:
        """Per unit of `checkpoint`, its verdicts, decisions and manual checks with since <= ts <
        until, read from the single events (kept `prune --keep-days`, at least a day): what each
        unit's own screen counter shows for its day."""

    @abstractmethod
    def recent_events(self, scope: Scope, checkpoint: str | None = None, limit: int = 50) -> list[Event]:
        """The latest stored events inside `scope` (optionally one checkpoint), newest first."""

    @abstractmethod
    def change_marker(self) -> int:
        """A cheap number that grows whenever an event or a status is stored (for SSE polling)."""

    def verdicts_by_hour_of_day(self, scope: Scope, since: datetime, until: datetime) -> dict[str, list[int]]:
        """Per checkpoint inside `scope` with verdicts, 24 totals: hour h holds the verdicts of hours
        h, h + 24, h + 48... counted from `since` (from a local midnight, with no change of UTC offset
        in the range, these are the local hours of the day). A backend answers in one query."""
        found: dict[str, list[int]] = {}
        for cp, buckets in self.timeseries_by_checkpoint(scope, since, until, 3600).items():
            hours = [0] * 24
            for b in buckets:
                hours[int((b.start - since).total_seconds()) // 3600 % 24] += b.counts.total
            if any(hours):
                found[cp] = hours
        return found

    def change_feed(self) -> Any:
        """A feed that pushes committed changes by checkpoint (`dashboard.store.pgnotify.ChangeFeed`,
        one per process), or None: live pages then poll `change_marker` (SQLite, a local read)."""
        return None

    @abstractmethod
    def prune_events(self, received_before: datetime) -> int:
        """Delete single events received before this time (counts stay); returns how many."""

    @abstractmethod
    def record_rejects(self, counts: Mapping[str, int]) -> None:
        """Add to the ingest's counts of refused messages, by reason (kept across restarts)."""

    @abstractmethod
    def reject_counts(self) -> dict[str, int]:
        """How many messages the ingest refused, by reason, since the store was made."""

    @abstractmethod
    def decision_counts(self, scope: Scope, since: datetime, until: datetime) -> list[DecisionCount]:
        """Decisions and manual checks with since <= ts < until, per checkpoint, officer, outcome,
        reason and followed verdict (kept when single events are pruned). dashboard.decisions
        turns them into shares, per-officer counts and alarms."""

    # -- officers and their rosters ----------------------------------------------------------
    @abstractmethod
    def upsert_officer(self, checkpoint: str, officer_id: str, name: str, role: str, pin: str) -> OfficerRecord:
        """Add an officer at a registered checkpoint, or change their name, role or PIN hash."""

    @abstractmethod
    def remove_officer(self, checkpoint: str, officer_id: str) -> bool:
        """Revoke an officer at a checkpoint; False if they were not there."""

    @abstractmethod
    def list_officers(self, scope: Scope, checkpoint: str | None = None) -> list[OfficerRecord]:
        """Officers of the checkpoints inside `scope` (optionally one), by checkpoint and id."""

    @abstractmethod
    def save_roster(self, checkpoint: str, version: int, raw: bytes) -> RosterRecord:
        """Keep the roster just published for a checkpoint (replacing the older one)."""

    @abstractmethod
    def latest_roster(self, checkpoint: str) -> RosterRecord | None:
        """The checkpoint's latest published roster, or None."""

    # -- users -----------------------------------------------------------------------------
    @abstractmethod
    def create_user(
        self, username: str, password_hash: str, role: str, scopes: Scope, language: str = "vi"
    ) -> User:
        """Add an account; DuplicateUser if the name is taken, InvalidRecord for a bad role."""

    @abstractmethod
    def get_user(self, username: str) -> User | None:
        """One account, or None."""

    @abstractmethod
    def list_users(self) -> list[User]:
        """All accounts, by name."""

    @abstractmethod
    def set_user_language(self, username: str, language: str) -> None:
        """Switch a user's language ("vi" or "en"); UnknownUser if absent."""

    @abstractmethod
    def record_login_failure(self, username: str, ip: str, at: datetime | None = None) -> None:
        """Remember a failed login attempt."""

    @abstractmethod
    def clear_login_failures(self, username: str, ip: str) -> None:
        """Forget this user's failures from this address (after a successful login)."""

    @abstractmethod
    def login_failures(self, username: str, ip: str, window: timedelta, now: datetime | None = None) -> int:
        """Failures within `window`: the larger of those for this username and those from this ip."""

    @abstractmethod
    def login_failure_stats(self, username: str, ip: str, window: timedelta,
                            now: datetime | None = None) -> LoginFailures:
        """Failures within `window` for this account from this address, from this address, and
        the number of addresses that failed this account (what the throttle's delays grow with)."""

    @abstractmethod
    def delete_user(self, username: str) -> bool:
        """Remove an account; False if there was none."""

    @abstractmethod
    def set_user_access(self, username: str, role: str, scopes: Scope) -> User:
        """Change an account's role and scope (admins get everything); UnknownUser if absent."""

    # -- audit -----------------------------------------------------------------------------
    @abstractmethod
    def record_audit(self, actor: str, action: str, target: str, province: str | None = None,
                     detail: str = "", at: datetime | None = None) -> AuditEntry:
        """Keep one administrative action (action one of AUDIT_ACTIONS)."""

    @abstractmethod
    def audit_log(self, scope: Scope, limit: int = 200) -> list[AuditEntry]:
        """Newest first: everything for Scope.all(), else only entries of the scope's provinces."""

    # -- trust -----------------------------------------------------------------------------
    @abstractmethod
    def save_trust_bundle(
        self,
        version: int,
        raw: bytes,
        issued_at: datetime | None,
        next_update: datetime | None,
        uploaded_by: str | None = None,
    ) -> TrustRecord:
        """Keep an accepted trust bundle (versions are unique)."""

    @abstractmethod
    def latest_trust_bundle(self) -> TrustRecord | None:
        """The highest-version bundle, or None."""


USERNAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
# A unit clock that runs ahead, or was never set (a Pi has no RTC), must not move counts to the
# wrong minute: such events are counted at the time the central service received them.
MAX_CLOCK_AHEAD_S = 300
EARLIEST_PLAUSIBLE_TS = datetime(2021, 1, 1, tzinfo=timezone.utc)
MAX_BUCKETS = 5000
STATUS_COLUMNS = ("software", "trust_version", "trust_age_s", "backlog", "clock", "fps",
                   "temperature_c", "uptime_s", "broker", "pin_wrong_hour", "pin_wrong_total", "pin_lockouts",
                   "pin_locked", "pin_officers")


def to_ms(value: datetime) -> int:
    return int(utc(value).timestamp() * 1000)


@overload
def from_ms(value: int) -> datetime: ...
@overload
def from_ms(value: int | None) -> datetime | None: ...
def from_ms(value: int | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value / 1000, tz=timezone.utc)


def counted_minute(event: Event) -> int:
    """The UTC minute (since the epoch) an event is counted in."""
    at = event.ts
    if at > event.received_at + timedelta(seconds=MAX_CLOCK_AHEAD_S) or at < EARLIEST_PLAUSIBLE_TS:
        at = event.received_at
    return int(at.timestamp()) // 60


def minute_range(since: datetime, until: datetime) -> tuple[int, int]:
    """Minutes m with since <= m*60 < until."""
    start = -(-int(utc(since).timestamp()) // 60)
    end = -(-int(utc(until).timestamp()) // 60)
    return start, max(start, end)
