"""Officers on the unit: the signed roster, PIN sign-in and the decisions they record.

`RosterKeeper` holds the checkpoint's roster (protocol.roster): only a correctly signed, newer
roster for this checkpoint replaces the one held, which is kept on disk (it holds PIN hashes,
never PINs) and checked again whenever the trust bundle, and so the list of roster keys, changes.

`OfficerDesk` is what the screen and the GPIO buttons talk to: sign in with a PIN (checked
offline against the slow hash; wrong PINs are counted and lock the unit out for longer and
longer, and the count survives a restart), sign out after inactivity, and record one decision
per yellow or red verdict, or a manual check, as an outbox event. Every refusal is a
`DeskError` with a code and a message in both languages, and records nothing.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from common.atomicfile import write_atomic
from protocol.roster import Officer, Roster, RosterError, RosterVersionError, load_public_keys, parse_roster
from verifier.decisions import DecisionError, DecisionRules

logger = logging.getLogger(__name__)

FAILURES_BEFORE_LOCK = 3
LOCK_BASE_S = 30.0
LOCK_MAX_S = 900.0
# What the unit tells the central about attacks on PINs (its status's `pins`): wrong PINs in the
# last hour, kept as their times; staff ids tried, only those on the roster (never what was typed
# otherwise, never a PIN), at most this many.
PIN_WINDOW_S = 3600.0
PIN_TIMES_KEPT = 1000
PIN_IDS_REPORTED = 10


class DeskError(Exception):
    """A sign-in or decision was refused; `code`, `message_vi`, `message_en` say why on screen."""

    def __init__(self, code: str, message_vi: str, message_en: str) -> None:
        self.code = code
        self.message_vi = message_vi
        self.message_en = message_en
        super().__init__(message_en)

    def to_json(self) -> dict[str, str]:
        return {"code": self.code, "vi": self.message_vi, "en": self.message_en}


@dataclass(frozen=True)
class RosterOffer:
    """What became of an offered roster; `reason` is readable by an operator."""

    accepted: bool
    reason: str


class RosterKeeper:
    """The checkpoint's current roster, from disk at start, then from MQTT."""

    def __init__(self, path: str | os.PathLike[str], checkpoint: str,
                 roster_keys: Callable[[], list[str] | tuple[str, ...]]) -> None:
        self.path = Path(path)
        self.checkpoint = checkpoint
        self._roster_keys = roster_keys
        self._lock = threading.Lock()
        self.current: Roster | None = None
        self.refused = 0
        """Rosters refused since start (bad signature, older, other checkpoint, malformed)."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return
        except OSError as e:
            logger.warning("roster %s unreadable: %s", self.path, e.strerror)
            return
        self.recheck(data)

    def _parse(self, data: bytes, min_version: int | None) -> Roster:
        try:
            keys = load_public_keys(self._roster_keys() or ())
        except RosterError:
            raise
        return parse_roster(data, keys, checkpoint=self.checkpoint, min_version=min_version)

    def recheck(self, data: bytes | None = None) -> None:
        """Check the held (or given) roster against the current roster keys; drop it if it fails
        (e.g. the ministry removed the key that signed it)."""
        with self._lock:
            raw = data if data is not None else (self.current.raw if self.current else None)
            if raw is None:
                return
            try:
                self.current = self._parse(raw, None)
            except RosterError as e:
                if self.current is not None or data is not None:
                    logger.warning("officer roster no longer accepted: %s", e)
                self.current = None

    def offer(self, data: bytes, source: str) -> RosterOffer:
        """Take a roster if it is signed by a listed roster key, for this checkpoint and newer."""
        with self._lock:
            held = self.current
            try:
                roster = self._parse(data, held.version + 1 if held else None)
            except RosterVersionError as e:
                if held is not None and e.version == held.version and data == held.raw:
                    return RosterOffer(False, f"roster version {held.version} from {source}: already held")
                self.refused += 1
                logger.warning("roster from %s refused: %s", source, e)
                return RosterOffer(False, str(e))
            except RosterError as e:
                self.refused += 1
                logger.warning("roster from %s refused: %s", source, e)
                return RosterOffer(False, str(e))
            try:
                write_atomic(self.path, data)
            except OSError as e:  # still used now; the next start gets it again from MQTT
                logger.error("roster %s could not be saved: %s", self.path, e.strerror)
            self.current = roster
        logger.info("officer roster version %d accepted from %s (%d officers)", roster.version, source,
                    len(roster.officers))
        return RosterOffer(True, f"roster version {roster.version} accepted")


@dataclass
class _Pending:
    seq: int
    result: str
    reason: str
    policy: str | None
    trust_version: int | None
    until: float
    decided: bool = False


class OfficerDesk:
    """Sign-in, sign-out and decisions; thread-safe (screen requests, GPIO callbacks, the pipeline)."""

    def __init__(self, roster: RosterKeeper, device_id: str, record: Callable[[dict[str, Any]], int],
                 rules: Callable[[], tuple[DecisionRules, str | None, int | None]], state_path: str | os.PathLike[str],
                 *, idle_s: float = 300.0, hold_s: float = 60.0, clock: Callable[[], float] = time.monotonic,
                 wall_clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
                 on_change: Callable[[], None] | None = None, unix_clock: Callable[[], float] = time.time,
                 on_screen: Callable[[], bool] | None = None,
                 on_decided: Callable[[], None] | None = None) -> None:
        self.roster = roster
        self.device_id = device_id
        self._record = record
        self._rules = rules
        self.state_path = Path(state_path)
        self.idle_s = idle_s
        self.hold_s = hold_s
        self._clock = clock
        self._wall = wall_clock
        self._on_change = on_change or (lambda: None)
        self._unix = unix_clock  # the lock-out survives restarts, so it is kept in Unix time
        # Whether a verdict is still on screen: once it has left, there is nothing to decide on.
        # (Every new verdict replaces or clears the pending one, so "a verdict on screen" is it.)
        self._on_screen = on_screen
        self._on_decided = on_decided or (lambda: None)  # e.g. let the verdict leave the screen
        self._lock = threading.RLock()
        self._officer: Officer | None = None
        self._last_action = 0.0
        self._pending: _Pending | None = None
        self.manual_token = 1
        """Changes after each manual check: a repeated tap carrying the old token is refused."""
        self.last_message: dict[str, str] | None = None
        self.failures, self.locked_until, self.failures_total = self._load_failures()
        self.wrong_at, self.lockouts_total, self.tried = self._load_attempts()

    # -- persistence of wrong-PIN counts (a restart must not reset the throttle) -------------
    def _load_failures(self) -> tuple[int, float, int]:
        try:
            data = json.loads(self.state_path.read_text(encoding="utf-8"))
            return int(data["failures"]), float(data["locked_until"]), int(data.get("failures_total", 0))
        except FileNotFoundError:
            return 0, 0.0, 0
        except (OSError, ValueError, KeyError, TypeError):
            logger.warning("sign-in state %s unreadable: starting locked for safety", self.state_path)
            return FAILURES_BEFORE_LOCK, self._unix() + LOCK_BASE_S, 0

    def _load_attempts(self) -> tuple[list[float], int, dict[str, float]]:
        """Wrong-PIN times of the last hour, lock-outs so far, roster ids tried (id -> last time)."""
        try:
            data = json.loads(self.state_path.read_text(encoding="utf-8"))
            times = [float(t) for t in data.get("wrong_at", [])][-PIN_TIMES_KEPT:]
            tried = {str(k): float(v) for k, v in dict(data.get("tried", {})).items()}
            return times, int(data.get("lockouts_total", 0)), tried
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return [], 0, {}

    def _save_failures(self) -> None:
        cutoff = self._unix() - PIN_WINDOW_S
        self.wrong_at = [t for t in self.wrong_at if t > cutoff][-PIN_TIMES_KEPT:]
        self.tried = {k: v for k, v in self.tried.items() if v > cutoff}
        body = {"failures": self.failures, "locked_until": self.locked_until, "failures_total": self.failures_total,
                "wrong_at": self.wrong_at, "lockouts_total": self.lockouts_total, "tried": self.tried}
        try:
            write_atomic(self.state_path, json.dumps(body).encode())
        except OSError as e:
            logger.error("sign-in state %s could not be saved: %s", self.state_path, e.strerror)

    # -- who is signed in ---------------------------------------------------------------------
    @property
    def officer(self) -> Officer | None:
        """The signed-in officer, or None (signed out after `idle_s` without an action)."""
        with self._lock:
            self._expire()
            return self._officer

    def _expire(self) -> None:
        if self._officer is not None and self._clock() - self._last_action > self.idle_s:
            logger.info("officer %s signed out after %d s without action", self._officer.id, self.idle_s)
            self._officer = None
            self._on_change()
        if self._officer is not None and (problem := self._roster_problem()) is not None:
            logger.info("officer %s signed out: %s", self._officer.id, problem.message_en)
            self._officer = None
            self._on_change()
        elif self._officer is not None:
            roster = self.roster.current
            if roster is None or roster.officer(self._officer.id) is None:  # revoked in a newer roster
                logger.info("officer %s signed out: no longer on the roster", self._officer.id)
                self._officer = None
                self._on_change()

    def _roster_problem(self) -> DeskError | None:
        roster = self.roster.current
        if roster is None:
            return DeskError("no_roster", "Thiết bị chưa có danh sách cán bộ: kết nối mạng để nhận.",
                             "This unit has no officer list yet: connect it to receive one.")
        if not roster.allows_device(self.device_id):
            return DeskError("unit_revoked", "Thiết bị này đã bị thu hồi: không thể ghi quyết định.",
                             "This unit has been revoked: decisions cannot be recorded.")
        if self._wall() >= roster.expires_at:
            return DeskError("roster_expired", "Danh sách cán bộ đã hết hạn: kết nối mạng để cập nhật.",
                             "The officer list has expired: connect the unit to update it.")
        return None

    def sign_in(self, officer_id: str, pin: str) -> Officer:
        """Check the PIN offline; refuses while locked out. The PIN is never logged or stored."""
        with self._lock:
            now = self._unix()
            if now < self.locked_until:
                wait = int(self.locked_until - now) + 1
                raise DeskError("locked", f"Sai mã PIN nhiều lần: thử lại sau {wait} giây.",
                                f"Too many wrong PINs: try again in {wait} s.")
            problem = self._roster_problem()
            if problem is not None:
                raise problem
            roster = self.roster.current
            assert roster is not None
            officer = roster.officer(officer_id) if isinstance(officer_id, str) else None
            # The hash runs even for an unknown id, so timing does not tell which ids exist.
            pin_hash = officer.pin if officer is not None else roster.officers[0].pin if roster.officers else None
            ok = pin_hash is not None and pin_hash.matches(pin if isinstance(pin, str) else "") and officer is not None
            if not ok or officer is None:  # (ok implies an officer; said again for the type checker)
                self.failures += 1
                self.failures_total += 1
                self.wrong_at.append(now)
                if officer is not None:  # a real staff id (may be reported); anything else typed is not kept
                    self.tried[officer.id] = now
                if self.failures >= FAILURES_BEFORE_LOCK:
                    extra = self.failures - FAILURES_BEFORE_LOCK
                    self.locked_until = now + min(LOCK_MAX_S, LOCK_BASE_S * 2 ** extra)
                    self.lockouts_total += 1
                self._save_failures()
                logger.warning("sign-in refused: wrong PIN or officer (%d in a row, %d in all)", self.failures,
                               self.failures_total)
                self._on_change()
                raise DeskError("wrong_pin", "Sai cán bộ hoặc mã PIN.", "Wrong officer or PIN.")
            if self.failures:
                self.failures, self.locked_until = 0, 0.0
                self._save_failures()
            self._officer = officer
            self._last_action = self._clock()
            self.last_message = None
        logger.info("officer %s signed in", officer.id)
        self._on_change()
        return officer

    def pin_report(self) -> dict[str, Any]:
        """The status's `pins`: counts and roster staff ids only, never a PIN or a typed id."""
        with self._lock:
            now = self._unix()
            cutoff = now - PIN_WINDOW_S
            tried = sorted((t, k) for k, t in self.tried.items() if t > cutoff)[-PIN_IDS_REPORTED:]
            return {"wrong_hour": sum(1 for t in self.wrong_at if t > cutoff), "wrong_total": self.failures_total,
                    "lockouts": self.lockouts_total, "locked": now < self.locked_until,
                    "officers": sorted(k for _, k in tried)}

    def sign_out(self) -> None:
        """End the officer's session."""
        with self._lock:
            if self._officer is not None:
                logger.info("officer %s signed out", self._officer.id)
            self._officer = None
        self._on_change()

    # -- verdicts to decide on ----------------------------------------------------------------
    def note_verdict(self, result: str, reason: str, policy: str | None, trust_version: int | None,
                     seq: int) -> bool:
        """A verdict was recorded as `seq`: a yellow or red one may now be decided on (until the
        next scan or `hold_s`). True when the screen should keep it up while the officer decides."""
        with self._lock:
            # A new person is at the desk: the last one's "Recorded: …" no longer applies to what shows.
            self.last_message = None
            if result not in ("yellow", "red"):
                self._pending = None
                return False
            self._pending = _Pending(seq, result, reason, policy, trust_version, self._clock() + self.hold_s)
            rules = self._rules()[0]
            return self._officer is not None and rules.allowed

    def pending(self) -> _Pending | None:
        """The verdict waiting for a decision, if any."""
        with self._lock:
            p = self._pending
            if p is None or p.decided or self._clock() > p.until:
                return None
            if self._on_screen is not None and not self._on_screen():
                return None
            return p

    def decide(self, outcome: str, reason: str, follows_seq: int) -> int:
        """Record the officer's decision on the verdict `follows_seq`; returns the decision's seq."""
        with self._lock:
            officer = self._require_officer()
            p = self._pending
            if p is not None and p.seq == follows_seq and p.decided:
                raise DeskError("already_decided", "Đã ghi quyết định cho lượt quét này.",
                                "A decision was already recorded for this scan.")
            if p is None or p.seq != follows_seq or self.pending() is None:
                raise DeskError("nothing_to_decide", "Không có kết quả vàng hoặc đỏ nào trên màn hình để quyết định.",
                                "There is no yellow or red verdict on screen to decide on.")
            rules, _policy, _tv = self._rules()
            self._check(rules, outcome, reason, p.result)
            seq = self._record({"kind": "decision", "outcome": outcome, "reason": reason, "officer": officer.id,
                                "follows_seq": p.seq, "follows_result": p.result, "follows_reason": p.reason,
                                "policy": p.policy, "trust_version": p.trust_version})
            p.decided = True
            self._done(officer, outcome, reason)
        self._on_decided()
        self._on_change()
        return seq

    def manual_check(self, outcome: str, reason: str, token: int) -> int:
        """Record a manual check (no QR code: paper proof only); `token` must be the current one."""
        with self._lock:
            officer = self._require_officer()
            if token != self.manual_token:
                raise DeskError("already_recorded", "Lần kiểm tra thủ công này đã được ghi.",
                                "This manual check was already recorded.")
            rules, policy, trust_version = self._rules()
            self._check(rules, outcome, reason, "manual")
            seq = self._record({"kind": "decision", "outcome": outcome, "reason": reason, "officer": officer.id,
                                "policy": policy, "trust_version": trust_version})
            self.manual_token += 1
            self._done(officer, outcome, reason)
        self._on_change()
        return seq

    def _require_officer(self) -> Officer:
        self._expire()
        if self._officer is None:
            raise DeskError("not_signed_in", "Cần cán bộ đăng nhập trước khi ghi quyết định.",
                            "An officer must sign in before recording a decision.")
        return self._officer

    @staticmethod
    def _check(rules: DecisionRules, outcome: str, reason: str, after: str) -> None:
        try:
            rules.check(outcome, reason, after)
        except DecisionError as e:
            raise DeskError(e.code, e.message_vi, e.message_en) from None

    def _done(self, officer: Officer, outcome: str, reason: str) -> None:
        self._last_action = self._clock()
        rule = self._rules()[0].reason(reason)
        label = rule.label if rule is not None else None
        self.last_message = {"code": "recorded", "vi": f"Đã ghi: {label.vi if label else reason}",
                             "en": f"Recorded: {label.en if label else reason}"}
        logger.info("officer %s recorded %s (%s)", officer.id, outcome, reason)

    # -- what the screen draws ------------------------------------------------------------------
    def view(self) -> dict[str, Any]:
        """The desk part of the screen state: JSON-ready, staff data only."""
        with self._lock:
            officer = self.officer
            roster = self.roster.current
            rules = self._rules()[0]
            pending = self.pending()
            problem = self._roster_problem()
            now = self._unix()
            return {
                "allowed": rules.allowed,
                "officer": None if officer is None else {"id": officer.id, "name": officer.name, "role": officer.role},
                "officers": [] if roster is None or problem is not None else
                [{"id": o.id, "name": o.name, "role": o.role} for o in roster.officers],
                "roster": None if roster is None else {"version": roster.version,
                                                       "expires_at": roster.expires_at.isoformat()},
                "problem": None if problem is None else problem.to_json(),
                "locked_s": max(0, int(self.locked_until - now)) if now < self.locked_until else 0,
                "failures": self.failures,
                "pending": None if pending is None else {"seq": pending.seq, "result": pending.result,
                                                         "choices": rules.choices(pending.result)},
                "manual_token": self.manual_token,
                "manual_choices": rules.choices("manual"),
                "message": self.last_message,
            }
