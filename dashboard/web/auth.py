"""Accounts in the web app: login and logout, sessions, CSRF tokens, throttling, role checks.

Every request needs a logged-in user unless its endpoint is listed in PUBLIC_ENDPOINTS: access
is denied by default, so a new page or API route cannot be left open by forgetting a decorator.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import logging
import secrets
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from math import ceil
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from werkzeug.security import check_password_hash, generate_password_hash
from werkzeug.wrappers import Response as WerkzeugResponse

from dashboard.web.i18n import LANGUAGES, translate
from dashboard.web.login_throttle import ThrottlePolicy
from dashboard.web.state import get_store, now

logger = logging.getLogger(__name__)

bp = Blueprint("auth", __name__)

F = TypeVar("F", bound=Callable[..., Any])

# Endpoints reachable without a session. /metrics checks its own bearer token.
PUBLIC_ENDPOINTS = frozenset({"auth.login", "auth.language", "static", "metrics.metrics", "metrics.health"})
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
MIN_PASSWORD_LENGTH = 10
# A real hash of a random password, checked when the user does not exist, so a wrong username
# takes as long as a wrong password and does not reveal which accounts exist.
_DUMMY_HASH = generate_password_hash(secrets.token_urlsafe(16))


class AuthError(Exception):
    """Base of login problems; `key` names the text shown to the person."""

    key = "login_failed"


class LoginThrottled(AuthError):
    """Too many recent failures for this username or from this address."""

    key = "login_throttled"

    def __init__(self, wait_s: float) -> None:
        self.seconds = max(1, ceil(wait_s))
        super().__init__(f"login throttled for {self.seconds} s")


class BadCredentials(AuthError):
    """Unknown username or wrong password (deliberately not told apart)."""


def hash_password(password: str) -> str:
    """A salted, slow hash of `password` (werkzeug's scrypt), for `Store.create_user`."""
    return generate_password_hash(password)


def wants_json() -> bool:
    """True for machine routes (API, stream, metrics, health), which get status codes, not redirects."""
    return request.path.startswith(("/api/", "/stream", "/metrics", "/healthz"))


def _password_marker(password_hash: str) -> str:
    """A short digest of the stored hash: a password change ends every older session."""
    return hashlib.sha256(password_hash.encode()).hexdigest()[:16]


class EndedSessions:
    """Ids of sessions ended by logout, kept until they would have expired anyway.

    Sessions live in signed cookies, so a copied cookie would outlive its logout; remembering
    the ended ids refuses it. Kept in this process's memory when the store keeps no sessions
    (SQLite, one web process): a restart forgets them (the cookies still expire after
    PERMANENT_SESSION_LIFETIME). With PostgreSQL they live in the store (`session_was_ended`).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._until: dict[str, float] = {}

    def end(self, sid: str, lifetime_s: float) -> None:
        """Refuse `sid` from now on."""
        now = time.monotonic()
        with self._lock:
            self._until = {k: t for k, t in self._until.items() if t > now}  # forget long-expired ones
            self._until[sid] = now + lifetime_s

    def ended(self, sid: str) -> bool:
        """True if `sid` was logged out."""
        with self._lock:
            return sid in self._until


def _ended_sessions() -> EndedSessions:
    return current_app.extensions.setdefault("chot_ended_sessions", EndedSessions())


def session_was_ended(sid: str) -> bool:
    """True if `sid` was logged out: in the store when it keeps sessions (so a logout on one web
    process holds on all), else in this process's memory (the one-process profile)."""
    store = get_store()
    if store.shared_sessions:
        return bool(sid) and store.session_ended(sid)
    return _ended_sessions().ended(sid)


def end_this_session(sid: str) -> None:
    """Refuse `sid` from now on, wherever sessions are kept."""
    lifetime = current_app.permanent_session_lifetime.total_seconds()
    store = get_store()
    if store.shared_sessions:
        store.end_session(sid, datetime.now(timezone.utc) + timedelta(seconds=lifetime))
    else:
        _ended_sessions().end(sid, lifetime)


def load_user() -> None:
    """before_request: put the session's user (or None) on `g`."""
    g.user = None
    if request.endpoint == "static":
        return
    username = session.get("user")
    if not username:
        return
    if session_was_ended(session.get("sid", "")):
        session.clear()
        return
    user = get_store().get_user(username)
    if user is None or session.get("pw") != _password_marker(user.password_hash):
        session.clear()
        return
    g.user = user


def require_login() -> WerkzeugResponse | None:
    """before_request: deny by default everything that is not public to anonymous visitors."""
    if request.endpoint in PUBLIC_ENDPOINTS or g.get("user") is not None:
        return None
    if request.endpoint is None:  # unknown URL: a 404 says nothing about the data
        return None
    if wants_json():
        return error_response(401, translate("login_required"))
    return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))


def csrf_token() -> str:
    """This session's CSRF token (made on first use); every form embeds it."""
    token = session.get("csrf")
    if not token:
        token = secrets.token_urlsafe(32)
        session["csrf"] = token
    return token


def check_csrf() -> Response | None:
    """before_request: refuse any state-changing request whose token does not match the session."""
    if request.method not in UNSAFE_METHODS or current_app.config.get("CHOT_CSRF_DISABLED"):
        return None
    sent = request.headers.get("X-CSRF-Token") or request.form.get("csrf_token", "")
    expected = session.get("csrf", "")
    if not expected or not sent or not hmac.compare_digest(str(sent), str(expected)):
        logger.info("CSRF token missing or wrong on %s %s", request.method, request.path)
        return error_response(400, translate("csrf_failed"))
    return None


def error_response(status: int, message: str) -> Response:
    """A refusal with a readable reason: JSON for machine routes, a page otherwise."""
    g.refusal = message  # for the audit log of refusals (dashboard.web.audit)
    if wants_json():
        resp = jsonify({"error": message, "status": status})
    else:
        resp = current_app.make_response(render_template("error.html", status=status, message=message))
    resp.status_code = status
    return resp


def roles_required(*roles: str) -> Callable[[F], F]:
    """Allow the view only to logged-in users with one of `roles` (403 otherwise)."""

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            user = g.get("user")
            if user is None:
                abort(401)
            if user.role not in roles:
                abort(403)
            return view(*args, **kwargs)

        return cast(F, wrapped)  # functools.wraps keeps the view's name and signature

    return decorate


def authenticate(username: str, password: str, ip: str) -> Any:
    """Check a login against the throttle and the stored hash; returns the User or raises AuthError.

    The throttle (dashboard.web.login_throttle) weighs this account from this address apart from
    this address and this account: one address hammering does not stop a correct login elsewhere.
    """
    cfg = current_app.config
    store = get_store()
    policy = ThrottlePolicy.for_max_failures(cfg["CHOT_LOGIN_MAX_FAILURES"])
    window = timedelta(seconds=cfg["CHOT_LOGIN_WINDOW_S"])
    at = now()
    wait = policy.wait_s(store.login_failure_stats(username, ip, window, at), at)
    if wait > 0:
        raise LoginThrottled(wait)
    user = store.get_user(username) if username else None
    ok = check_password_hash(user.password_hash if user else _DUMMY_HASH, password)
    if user is None or not ok:
        store.record_login_failure(username, ip, at)
        _tell_admin_of_attack(store, policy, username, ip, window, at)
        raise BadCredentials("wrong username or password")
    store.clear_login_failures(username, ip)
    return user


def _tell_admin_of_attack(store: Any, policy: ThrottlePolicy, username: str, ip: str,
                          window: timedelta, at: datetime) -> None:
    """Put it on the audit page when failures begin to be slowed down (and every ten after)."""
    seen = store.login_failure_stats(username, ip, window, at)
    step = policy.starts_or_grows(seen)
    if step is None:
        return
    wait = policy.wait_s(seen, at)
    detail = (f"slowed {step}, failures {seen.pair} here, {seen.address} from address, "
              f"{seen.account_addresses} addresses, wait {ceil(wait)} s")
    logger.warning("login attack? %s from %s: %s", username or "-", ip, detail)
    store.record_audit("-", "login_attack", f"{username or '-'} @ {ip}", None, detail, at)


def start_session(user: Any) -> None:
    """Begin a fresh session for `user`: nothing from before login survives (no fixation)."""
    session.clear()
    session.permanent = True
    session["user"] = user.username
    session["sid"] = secrets.token_urlsafe(16)
    session["pw"] = _password_marker(user.password_hash)
    session["csrf"] = secrets.token_urlsafe(32)


def safe_next(target: str | None) -> str:
    """Where to go after login: only a path on this site, never another host."""
    if target:
        parts = urlsplit(target)
        if not parts.scheme and not parts.netloc and target.startswith("/") and not target.startswith("//"):
            return target
    return url_for("views.overview")


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    """The login form; a good login starts a new session and goes where the user was headed."""
    if request.method == "GET":
        return render_template("login.html", error=None, next=request.args.get("next", ""))
    username = request.form.get("username", "").strip()[:64]
    password = request.form.get("password", "")[:256]
    ip = request.remote_addr or "unknown"
    try:
        user = authenticate(username, password, ip)
    except LoginThrottled as e:
        logger.warning("login throttled from %s for %s s", ip, e.seconds)
        message = translate(e.key, seconds=e.seconds)
        page = render_template("login.html", error=message, next=request.form.get("next", ""))
        return page, 429, {"Retry-After": str(e.seconds)}
    except BadCredentials as e:
        logger.info("failed login from %s", ip)
        return render_template("login.html", error=translate(e.key), next=request.form.get("next", "")), 401
    start_session(user)
    logger.info("login by %s (%s)", user.username, user.role)
    return redirect(safe_next(request.form.get("next")))


@bp.route("/logout", methods=["POST"])
def logout() -> Any:
    """End the session, here and for any copy of its cookie."""
    if session.get("sid"):
        end_this_session(session["sid"])
    session.clear()
    return redirect(url_for("auth.login"))


@bp.route("/language", methods=["POST"])
def language() -> Any:
    """Switch language: stored with the user when logged in, else kept in the session."""
    lang = request.form.get("lang", "")
    if lang not in LANGUAGES:
        return error_response(400, translate("bad_request"))
    user = g.get("user")
    if user is not None:
        get_store().set_user_language(user.username, lang)
    session["lang"] = lang
    return redirect(safe_next(request.form.get("next")))
