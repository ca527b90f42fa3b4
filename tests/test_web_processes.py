"""Two `chot dashboard serve` processes on one PostgreSQL store behind Debian's nginx with the
shipped proxy config: any process serves any user, a logout on one holds on the other, login
throttling counts the failures of both, and live streams through nginx see changes stored by
another process."""

from __future__ import annotations

import http.client
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlencode

import pytest

from testbed.nginx import start_nginx
from common.localnet import free_port, wait_for_port
from dashboard.store import Event, open_store
from tests.support.dashboard_web import seed
from tests.test_dashboard_serve import Browser, read_event

pytestmark = [pytest.mark.timeout(180)]

REPO = Path(__file__).resolve().parent.parent


@dataclass
class Endpoint:
    """Somewhere to send HTTP requests: one serve process, or nginx in front of both."""

    port: int
    opened: list[http.client.HTTPConnection] = field(default_factory=list)

    def connect(self, timeout: float = 10.0) -> http.client.HTTPConnection:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        self.opened.append(conn)
        return conn


@dataclass
class Site:
    a: Endpoint
    b: Endpoint
    proxy: Endpoint
    target: str


@pytest.fixture
def site(postgres_url: str) -> Iterator[Site]:
    seeded = seed(postgres_url)
    seeded.store.close()
    workdir = Path(tempfile.mkdtemp(prefix="chot-web-"))
    procs: list[subprocess.Popen[bytes]] = []
    ports = [free_port(), free_port()]
    try:
        for i, port in enumerate(ports):
            data = workdir / f"data-{i}"
            conf = workdir / f"central-{i}.toml"
            conf.write_text(f'data_dir = "{data}"\n[store]\nurl = "{postgres_url}"\n[web]\nport = {port}\n'
                            'secret_key = "shared-secret-key-of-the-central-0123"\ntrusted_proxies = 1\n')
            with open(workdir / f"serve-{i}.log", "wb") as log:
                procs.append(subprocess.Popen([sys.executable, "-m", "chot", "dashboard", "-c", str(conf), "serve"],
                                              cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                                              stdin=subprocess.DEVNULL))
        listen = free_port()
        procs.append(start_nginx(workdir, listen, ports))
        for port in (*ports, listen):
            assert wait_for_port(port, 30), (workdir / "serve-0.log").read_text(errors="replace")
        yield Site(Endpoint(ports[0]), Endpoint(ports[1]), Endpoint(listen), postgres_url)
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(workdir, ignore_errors=True)


def test_a_session_from_one_process_works_on_the_other_and_logout_holds_on_both(site: Site) -> None:
    user = Browser(site.a)  # type: ignore[arg-type]
    assert user.login("sup_lc") == 302
    copy = Browser(site.b)  # type: ignore[arg-type]
    copy.cookie = user.cookie  # the same cookie, as a proxy sends it to either process
    resp, _ = copy.request("GET", "/")
    assert resp.status == 200
    _, page = copy.request("GET", "/")
    token = page.decode().split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    stolen = user.cookie  # a copy of the cookie kept elsewhere
    resp, _ = copy.request("POST", "/logout", urlencode({"csrf_token": token}).encode(),
                              {"Content-Type": "application/x-www-form-urlencoded"})
    assert resp.status == 302
    for endpoint in (site.a, site.b, site.proxy):
        thief = Browser(endpoint)  # type: ignore[arg-type]
        thief.cookie = stolen
        resp, _ = thief.request("GET", "/")
        assert resp.status == 302 and "/login" in (resp.getheader("Location") or "")


def test_login_throttling_counts_failures_on_every_process(site: Site) -> None:
    for endpoint in (site.a, site.b, site.a, site.b, site.a):  # five failures, spread over both
        assert Browser(endpoint).login("admin", "wrong-password-x") == 401  # type: ignore[arg-type]
    assert Browser(site.b).login("admin") == 429  # type: ignore[arg-type]  # the right one, too late
    assert Browser(site.proxy).login("admin") == 429  # type: ignore[arg-type]


def test_pages_and_live_streams_through_nginx_see_what_any_process_stored(site: Site) -> None:
    browser = Browser(site.proxy)  # type: ignore[arg-type]
    assert browser.login("admin") == 302
    for _ in range(4):  # least_conn spreads them over both processes
        resp, body = browser.request("GET", "/")
        assert resp.status == 200 and "IC7" in body.decode()
    conn = site.proxy.connect()
    conn.request("GET", "/stream/overview", headers={"Cookie": browser.cookie, "Accept": "text/event-stream"})
    stream = conn.getresponse()
    assert stream.status == 200 and stream.readline().decode().strip() == "retry: 1000"
    first = read_event(stream, "update")
    store = open_store(site.target)  # the ingest of another machine, say
    now = datetime.now(timezone.utc)
    store.record_events([Event("u-ic7-1", "IC7", 90_000 + i, now, "red", "signature", "vn-2021", 7, now)
                         for i in range(3)])
    store.close()
    second = read_event(stream, "update", timeout_s=20)  # unbuffered through nginx, with the news
    assert second != first and '"marker"' in second
    conn.close()
