"""`chot dashboard serve` as the real program: waitress in a subprocess on a seeded SQLite file.

Logs in over HTTP, holds more live streams open than the server has page threads and checks
that pages still answer, that the stream over the limit is sent back with a retry, that a
closed stream frees its slot, that the security headers survive, that trusted proxies are
believed only when configured, and that SIGTERM ends the server within a few seconds; the
drain on stop runs in-process on a slow WSGI app.
"""

from __future__ import annotations

import http.client
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from click.testing import CliRunner

from chot.cli import main
from common.typedconfig import ConfigError
from dashboard.config import WebConfig, parse_config
from dashboard.serve import DashboardServer
from dashboard.store import Event, SqliteStore
from tests.support.broker import free_port, wait_for_port
from tests.support.dashboard_web import ACCOUNTS, csrf_from, seed

REPO = Path(__file__).resolve().parent.parent
SECURITY_HEADERS = ("Content-Security-Policy", "X-Content-Type-Options", "Referrer-Policy")


@dataclass
class Served:
    """A running `chot dashboard serve` and what it was started on."""

    proc: subprocess.Popen[bytes]
    port: int
    db: Path
    log: Path
    opened: list[http.client.HTTPConnection] = field(default_factory=list)

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def connect(self, timeout: float = 30.0) -> http.client.HTTPConnection:
        """A connection whose every read gives up after `timeout` s: a hang guard, not a limit."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        self.opened.append(conn)
        return conn

    def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM; the exit code (raises TimeoutExpired after `timeout` s: a hang guard)."""
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., Served]]:
    """Start `chot dashboard serve` on a free port with [web] settings; stopped after the test."""
    started: list[Served] = []

    def start(*extra_args: str, **web: Any) -> Served:
        folder = tmp_path / f"central-{len(started)}"
        folder.mkdir()
        data_dir = folder / "data"
        data_dir.mkdir()
        seed(data_dir / "chot.db").store.close()
        port = free_port()
        lines = [f'data_dir = "{data_dir}"', "[web]", f"port = {port}", 'secret_key = "serve-test-secret-key-0123456789"']
        lines += [f"{key} = {value}" for key, value in web.items()]
        (folder / "central.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")
        log = folder / "serve.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "chot", "-v", "dashboard", "--config", str(folder / "central.toml"), "serve",
                 *extra_args], cwd=REPO, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        served = Served(proc, port, data_dir / "chot.db", log)
        started.append(served)
        try:
            wait_for_port(port, timeout=30)
        except TimeoutError:
            proc.kill()
            pytest.fail(f"the server did not listen:\n{served.output()}")
        return served

    yield start
    for served in started:
        for conn in served.opened:
            conn.close()
        if served.proc.poll() is None:
            served.proc.send_signal(signal.SIGTERM)
            try:
                served.proc.wait(10)
            except subprocess.TimeoutExpired:
                served.proc.kill()
                served.proc.wait(5)


class Browser:
    """Just enough of a browser: one session cookie, the login form with its CSRF token."""

    def __init__(self, served: Served) -> None:
        self.served = served
        self.cookie = ""

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[http.client.HTTPResponse, bytes]:
        """One request on a fresh connection: (response, body)."""
        conn = self.served.connect()
        all_headers = {"Cookie": self.cookie, **(headers or {})}
        conn.request(method, path, body=body, headers=all_headers)
        resp = conn.getresponse()
        data = resp.read()
        conn.close()
        if match := re.match(r"(chot_session=[^;]*)", resp.getheader("Set-Cookie") or ""):
            self.cookie = match.group(1)
        return resp, data

    def login(self, username: str, password: str | None = None, headers: dict[str, str] | None = None) -> int:
        _, page = self.request("GET", "/login")
        form = {"username": username, "password": ACCOUNTS[username][0] if password is None else password,
                "csrf_token": csrf_from(page.decode())}
        resp, _ = self.request("POST", "/login", urlencode(form).encode(),
                                  {"Content-Type": "application/x-www-form-urlencoded", **(headers or {})})
        return resp.status

    def open_stream(self, path: str = "/stream/overview") -> tuple[http.client.HTTPConnection, http.client.HTTPResponse, str]:
        """Open a live stream and read its first line (`retry: ...`)."""
        conn = self.served.connect()
        conn.request("GET", path, headers={"Cookie": self.cookie, "Accept": "text/event-stream"})
        resp = conn.getresponse()
        assert resp.status == 200, resp.read()
        assert resp.getheader("Content-Type", "").startswith("text/event-stream")
        return conn, resp, resp.readline().decode().strip()


def admitted(first_line: str) -> bool:
    """A stream the server kept open starts with the app's 1 s retry; a refused one with a long one."""
    return first_line == "retry: 1000"


def read_event(resp: http.client.HTTPResponse, name: str, timeout_s: float = 60.0) -> str:
    """Read SSE lines until an `event: <name>` block's data line; fails after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    seen = False
    while time.monotonic() < deadline:
        line = resp.readline().decode()
        if not line:
            raise AssertionError(f"the stream ended before an {name!r} event")
        if line.strip() == f"event: {name}":
            seen = True
        elif seen and line.startswith("data:"):
            return line
    raise AssertionError(f"no {name!r} event within {timeout_s} s")


def record_verdicts(db: Path, device: str, checkpoint: str, count: int, first_seq: int) -> None:
    """Store new verdicts the way the ingest does, so every watching stream has news."""
    now = datetime.now(timezone.utc)
    store = SqliteStore(str(db))
    try:
        store.record_events([Event(device, checkpoint, first_seq + i, now, "green", "complete_series", "vn-2021",
                                   7, now) for i in range(count)])
    finally:
        store.close()


def failures_by_address(db: Path, *ips: str) -> list[int]:
    """Failed logins the throttle counted against each address (asked for a user with none)."""
    store = SqliteStore(str(db))
    try:
        return [store.login_failures("no-such-user", ip, timedelta(minutes=5)) for ip in ips]
    finally:
        store.close()


def test_pages_answer_while_more_streams_than_page_threads_are_open(serve: Callable[..., Served]) -> None:
    served = serve(threads=2, max_streams=4)
    browser = Browser(served)
    assert browser.login("admin") == 302

    streams = []
    for _ in range(4):  # twice the page threads
        conn, resp, first = browser.open_stream()
        assert admitted(first), first
        assert '"page":"overview"' in read_event(resp, "update")  # its thread is running the app's stream
        streams.append((conn, resp))
        for name in SECURITY_HEADERS:
            assert resp.getheader(name), f"stream lost {name}"
        assert resp.getheader("Cache-Control") == "no-store" and resp.getheader("X-Accel-Buffering") == "no"

    # Pages, API and static files still answer, one after another and all at once. Were a page
    # queued behind the streams (which last CHOT_STREAM_MAX_S, 300 s), its read would hit the
    # connection's 30 s hang guard and fail; how fast pages answer is bench/store.py's figure.
    paths = ["/", "/devices", "/checkpoints/IC7", "/api/v1/overview", "/api/v1/devices", "/static/app.css"]
    for path in paths:
        resp, _ = browser.request("GET", path)
        assert resp.status == 200, (path, resp.status)
    with ThreadPoolExecutor(len(paths) * 2) as pool:
        answers = list(pool.map(lambda p: browser.request("GET", p), paths * 2))
    assert all(resp.status == 200 for resp, _ in answers), [r.status for r, _ in answers]
    page, html = browser.request("GET", "/")
    assert "text/html" in page.getheader("Content-Type", "")
    for name in SECURITY_HEADERS:
        assert page.getheader(name), f"page lost {name}"
    assert page.getheader("Cache-Control") == "no-store" and page.getheader("Server") == "chot"

    # An oversized body is refused from its Content-Length, before anything is buffered.
    big = served.connect()
    big.putrequest("POST", "/login")
    big.putheader("Content-Type", "application/x-www-form-urlencoded")
    big.putheader("Content-Length", str(64 * 1024 * 1024))
    big.endheaders(b"username=admin&password=")
    assert big.getresponse().status == 413

    # The fifth stream is sent back with a long retry, at once, with the same headers.
    conn, resp, first = browser.open_stream()
    retry = re.fullmatch(r"retry: (\d+)", first)
    assert retry and 15000 <= int(retry.group(1)) <= 45000, first
    conn.sock.settimeout(3)  # type: ignore[union-attr]
    assert b"retry: 1000" not in resp.read()  # the body ends: nothing streamed
    for name in SECURITY_HEADERS:
        assert resp.getheader(name), f"refused stream lost {name}"

    # The streams still carry news while pages are being served.
    record_verdicts(served.db, "u-ic7-1", "IC7", 3, first_seq=50_000)
    for _, resp in streams:
        assert '"page":"overview"' in read_event(resp, "update")

    # A browser that goes away frees its slot (noticed at the stream's next write).
    streams.pop()[0].close()
    record_verdicts(served.db, "u-ic7-1", "IC7", 1, first_seq=60_000)
    deadline = time.monotonic() + 15
    while True:
        conn, resp, first = browser.open_stream()
        if admitted(first):
            break
        conn.close()
        assert time.monotonic() < deadline, "the closed stream's slot was never freed"
        time.sleep(0.5)

    # Without trusted proxies a forwarded address is ignored: the throttle counts the real peer.
    assert browser.login("admin", "wrong-password", {"X-Forwarded-For": "203.0.113.7"}) == 401
    assert failures_by_address(served.db, "203.0.113.7", "127.0.0.1") == [0, 1]


def test_sigterm_ends_the_server_without_waiting_for_open_streams(serve: Callable[..., Served]) -> None:
    served = serve(threads=2, max_streams=3, shutdown_timeout_s=300)
    browser = Browser(served)
    assert browser.login("sup_lc") == 302
    streams = [browser.open_stream("/stream/devices")[1] for _ in range(2)]
    idle = served.connect()  # a keep-alive connection with nothing in flight
    idle.request("GET", "/", headers={"Cookie": browser.cookie})
    idle.getresponse().read()

    # Streams are not requests in flight: had the stop waited for them, it would wait out its
    # 300 s grace and stop()'s 60 s hang guard would fail the test.
    assert served.stop() == 0, served.output()
    assert "still running after" not in served.output()
    for resp in streams:
        resp.fp.raw._sock.settimeout(2)  # type: ignore[union-attr]
        try:
            while resp.readline():
                pass
        except (http.client.IncompleteRead, ConnectionError):
            pass  # cut mid-stream: the browser reconnects to the next server
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", served.port), timeout=1).close()
    assert "dashboard stopped:" in served.output()
    assert "2 live streams" in served.output()


def test_trusted_proxy_address_reaches_the_login_throttle(serve: Callable[..., Served]) -> None:
    served = serve(trusted_proxies=1)
    browser = Browser(served)
    assert browser.login("admin", "wrong-password", {"X-Forwarded-For": "203.0.113.7"}) == 401
    assert failures_by_address(served.db, "203.0.113.7", "127.0.0.1") == [1, 0]


def test_one_forwarded_address_hammering_leaves_anothers_login_alone(serve: Callable[..., Served]) -> None:
    """The real server behind a trusted proxy (issue 27): the hammering address is slowed, with a
    Retry-After, while the administrator's correct login through the same proxy goes in."""
    served = serve(trusted_proxies=1)
    attacker, office = Browser(served), Browser(served)
    hammer = {"X-Forwarded-For": "203.0.113.7"}
    for i in range(5):
        assert attacker.login("admin", f"wrong-password-{i}", hammer) == 401
    assert attacker.login("admin", None, hammer) == 429
    assert office.login("admin", None, {"X-Forwarded-For": "198.51.100.7"}) == 302
    resp, page = office.request("GET", "/admin/audit")
    assert resp.status == 200 and b"admin @ 203.0.113.7" in page


def test_dev_flag_keeps_flasks_development_server(serve: Callable[..., Served]) -> None:
    served = serve("--dev")
    resp, _ = Browser(served).request("GET", "/login")
    assert resp.status == 200 and resp.getheader("Server", "").startswith("Werkzeug/")
    served.stop()  # SIGTERM ends it (a hang would time out)


def test_a_taken_port_is_a_readable_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = tmp_path / "central.toml"
        config.write_text(f'data_dir = "{tmp_path / "data"}"\n[web]\nsecret_key = "k-0123456789abcdef"\n', encoding="utf-8")
        result = CliRunner().invoke(main, ["dashboard", "--config", str(config), "serve", "--port", str(port)])
    assert result.exit_code == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize("web, key", [({"threads": 0}, "web.threads"), ({"max_streams": 0}, "web.max_streams"),
                                      ({"trusted_proxies": -1}, "web.trusted_proxies"),
                                      ({"shutdown_timeout_s": 0}, "web.shutdown_timeout_s"),
                                      ({"threads": "many"}, "web.threads")])
def test_bad_server_settings_name_their_key(web: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse_config({"web": web})
    assert key in str(e.value)


class HeldApp:
    """A WSGI app whose every answer waits until the test releases it (a long report, an upload
    being checked): the test decides when work ends, so nothing depends on the machine's speed."""

    def __init__(self) -> None:
        self.entered, self.release = threading.Event(), threading.Event()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        self.entered.set()
        self.release.wait(120)
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "4")])
        return [b"done"]


@pytest.mark.parametrize("grace_s, answered", [(300.0, True), (0.5, False)])
def test_stop_lets_requests_in_flight_finish_within_the_grace(grace_s: float, answered: bool) -> None:
    app = HeldApp()
    server = DashboardServer(app, WebConfig(threads=2, max_streams=1, shutdown_timeout_s=grace_s), "127.0.0.1", 0)
    stop = threading.Event()
    stats: list[Any] = []
    runner = threading.Thread(target=lambda: stats.append(server.serve_until(stop)), name="serve-under-test")
    runner.start()
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    try:
        conn.request("GET", "/report")
        assert app.entered.wait(60)  # the request is in the app now
        stop.set()
        with pytest.raises(OSError):  # the listener closes at once (60 s: a hang guard)
            closed_by = time.monotonic() + 60
            while time.monotonic() < closed_by:
                socket.create_connection(("127.0.0.1", server.port), timeout=0.5).close()
                time.sleep(0.05)
        if answered:
            runner.join(0.5)
            assert runner.is_alive()  # still waiting for the request (the grace is 300 s)
            app.release.set()
            resp = conn.getresponse()
            assert (resp.status, resp.read()) == (200, b"done")
            runner.join(60)  # ends once the request is done, long before the grace
        else:
            with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
                conn.getresponse()  # cut after the 0.5 s grace, while the app still held it
            runner.join(60)
            assert not app.release.is_set()
        assert not runner.is_alive()
        assert stats[0].pages_in_flight == (0 if answered else 1)
    finally:
        conn.close()
        app.release.set()
        stop.set()
        runner.join(10)
