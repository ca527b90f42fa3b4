"""Helpers for the dashboard web tests: a seeded store (SQLite or PostgreSQL), accounts, logging in.

Not a plugin: the web test modules import what they use.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from dashboard.scope import Scope
from dashboard.store import Event, StatusUpdate, Store, open_store
from dashboard.web.auth import hash_password

# Noon in Hà Nội: far from a local midnight, so "today" is one unambiguous day in every test.
PINNED_NOW = datetime(2026, 11, 25, 5, 0, tzinfo=timezone.utc)
XSS_NAME = '<script>alert("cp")</script>'
XSS_SOFTWARE = "<img src=x onerror=alert(1)>"

# username -> (password, role, scope)
ACCOUNTS: dict[str, tuple[str, str, Scope]] = {
    "admin": ("admin-password-1", "admin", Scope.all()),
    "sup_lc": ("lao-cai-password", "supervisor", Scope.of(provinces=["10"])),
    "view_lc": ("viewer-password-1", "viewer", Scope.of(provinces=["10"])),
    "sup_hn": ("ha-noi-password-1", "supervisor", Scope.of(provinces=["01"])),
    "padmin_lc": ("lao-cai-admin-pw-1", "province_admin", Scope.of(provinces=["10"])),
}


@cache
def password_hash(password: str) -> str:
    """Hash once per test session: scrypt is slow on purpose."""
    return hash_password(password)


@dataclass
class Seeded:
    """What `seed` put in the store, for assertions."""

    store: Store
    target: str
    """The SQLite path or PostgreSQL URL the store was opened on (the app opens the same)."""
    now: datetime
    seq: int = 1000
    apps: list[Any] = field(default_factory=list)
    """Apps made on this store by `make_app`: their pooled stores are closed with it."""

    def close(self) -> None:
        """Close the store and every app's pooled store (before the database is dropped)."""
        from dashboard.web.state import close_shared_store

        for app in self.apps:
            close_shared_store(app)
        self.store.close()

    def events(self, device: str, checkpoint: str, results: list[tuple[str, str]], at: datetime | None = None) -> int:
        """Store verdicts (result, reason) from `device`; returns how many were new."""
        at = at or self.now
        batch = []
        for result, reason in results:
            self.seq += 1
            batch.append(Event(device, checkpoint, self.seq, at, result, reason, "vn-2021", 7, at))
        return self.store.record_events(batch)


@pytest.fixture
def seeded(store_target: str) -> Any:
    """A seeded store on each backend, fresh per test (import this fixture into the test module)."""
    s = seed(store_target)
    yield s
    s.close()


def seed(target: str | Path, now: datetime = PINNED_NOW) -> Seeded:
    """A store with two provinces, three checkpoints, three units, four accounts and some verdicts.

    Lào Cai (10): IC7 with u-ic7-1 (online) and u-ic7-2 (offline for an hour): 5 green, 2 yellow,
    3 red. Hà Nội (01): HN-GIA with u-hn-1 (online, clock behind): 4 green, 1 red. Lào Cai also
    has XSS1, whose name is a script tag.
    """
    store = open_store(str(target))
    store.upsert_checkpoint("IC7", "IC7 Nội Bài–Lào Cai", "080", "10")
    store.upsert_checkpoint("HN-GIA", "Chốt Gia Lâm", "004", "01")
    store.upsert_checkpoint("XSS1", XSS_NAME, "081", "10")
    for device, checkpoint in (("u-ic7-1", "IC7"), ("u-ic7-2", "IC7"), ("u-hn-1", "HN-GIA")):
        store.add_device(device, checkpoint)
    for username, (password, role, scope) in ACCOUNTS.items():
        store.create_user(username, password_hash(password), role, scope)
    healthy: dict[str, Any] = dict(software="chot 0.1.0", trust_version=7, trust_age_s=3600.0, backlog=0, clock="ok",
                   fps=14.5, temperature_c=52.3, uptime_s=7200.0)
    store.record_status("u-ic7-1", StatusUpdate("online", **healthy), now)
    store.record_status("u-ic7-2", StatusUpdate("offline"), now - timedelta(hours=1))
    store.record_status("u-hn-1", StatusUpdate("online", **{**healthy, "clock": "behind_bundle",
                                                           "software": XSS_SOFTWARE}), now)
    seeded = Seeded(store, str(target), now)
    seeded.events("u-ic7-1", "IC7", [("green", "complete_series")] * 5 + [("yellow", "partial")] * 2
                  + [("red", "signature")] * 2 + [("red", "cwt_expired")])
    seeded.events("u-hn-1", "HN-GIA", [("green", "complete_series")] * 4 + [("red", "revoked")])
    return seeded


def make_app(seeded: Seeded, instance: Path, **overrides: Any) -> Any:
    """The web app on the seeded file, its clock pinned to the seed's `now`."""
    from dashboard.web import create_app

    config = {"TESTING": True, "SECRET_KEY": "test-secret-key", "CHOT_DATABASE": seeded.target,
              "CHOT_NOW": lambda: seeded.now, "INSTANCE_PATH": str(instance),
              "CHOT_STREAM_MAX_S": 0.5, "CHOT_STREAM_POLL_S": 0.05}
    app = create_app(test_config={**config, **overrides})
    seeded.apps.append(app)
    return app


def csrf_from(html: str) -> str:
    """The CSRF token embedded in a rendered form."""
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF token in the page"
    return match.group(1)


def login(client: Any, username: str, password: str | None = None) -> Any:
    """Log in through the real form (GET for the token, then POST); returns the POST response."""
    page = client.get("/login")
    token = csrf_from(page.get_data(as_text=True))
    password = ACCOUNTS[username][0] if password is None else password
    return client.post("/login", data={"username": username, "password": password, "csrf_token": token})


def page_token(client: Any, path: str = "/") -> str:
    """A CSRF token from a page the logged-in client can open."""
    return csrf_from(client.get(path).get_data(as_text=True))


class LiveServer:
    """The dashboard app on a real threaded HTTP server on a free loopback port (for browsers)."""

    def __init__(self, app: Any) -> None:
        import threading

        from werkzeug.serving import make_server

        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="dashboard-http", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop accepting requests; open streams end at their own time limit."""
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(10)
