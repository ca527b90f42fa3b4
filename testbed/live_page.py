"""A supervisor's live page, watched the way a browser watches it, recording when news arrived.

`LivePage` logs in through the real form (behind nginx) and keeps the page's server-sent event
stream open in a thread, as the page's EventSource and its script (dashboard/web/static) do:
after a dropped stream it reconnects once the last `retry:` has passed; after a refused one (a
503 while the store is down, a 502) it tries again 15 s later, like the script; after a
redirect to the login page it logs in again. Each `update` event's arrival time is kept, so
the longest gap between two updates is what the supervisor went without news.
"""

from __future__ import annotations

import http.client
import re
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlencode

REFUSED_RETRY_S = 15.0  # dashboard/web/static: a refused EventSource is started again after 15 s
READ_TIMEOUT_S = 30.0  # a stream says something at least every CHOT_STREAM_REFRESH_S (5 s)


@dataclass
class LiveLog:
    """What the watcher saw: update times (unix seconds), reconnects, refusals by status."""

    updates: list[float] = field(default_factory=list)
    streams_opened: int = 0
    dropped: int = 0
    refused: dict[str, int] = field(default_factory=dict)
    logins: int = 0


def longest_gap(times: list[float], start: float | None = None, end: float | None = None) -> float:
    """The longest time between two consecutive `times` whose interval touches [start, end]."""
    gaps = [b - a for a, b in zip(times, times[1:])
            if (start is None or b >= start) and (end is None or a <= end)]
    return max(gaps, default=0.0)


class LivePage:
    """One supervisor's live overview through nginx on `port`, watched in a thread until `stop()`."""

    def __init__(self, port: int, username: str, password: str, path: str = "/stream/overview") -> None:
        self.port = port
        self.username = username
        self.password = password
        self.path = path
        self.log = LiveLog()
        self.cookie = ""
        self._stop = threading.Event()
        self._conn: http.client.HTTPConnection | None = None
        self._thread = threading.Thread(target=self._run, name="live-page", daemon=True)

    def start(self) -> None:
        self.login()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        conn = self._conn
        if conn is not None and conn.sock is not None:
            try:
                conn.sock.shutdown(2)  # wakes the reader blocked on the stream
            except OSError:  # already closed by the server or nginx: nothing to wake
                pass
        self._thread.join(READ_TIMEOUT_S + 5)

    # -- the login form ----------------------------------------------------------------------
    def _request(self, method: str, path: str, body: bytes | None = None,
                 headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=15)
        try:
            conn.request(method, path, body=body, headers={"Cookie": self.cookie, **(headers or {})})
            resp = conn.getresponse()
            data = resp.read()
            if match := re.match(r"(chot_session=[^;]*)", resp.getheader("Set-Cookie") or ""):
                self.cookie = match.group(1)
            return resp.status, data
        finally:
            conn.close()

    def login(self) -> bool:
        """Log in through the form (GET for the CSRF token, then POST); True on the redirect home."""
        try:
            status, page = self._request("GET", "/login")
            token = re.search(rb'name="csrf_token" value="([^"]+)"', page)
            if status != 200 or token is None:
                return False
            form = {"username": self.username, "password": self.password, "csrf_token": token.group(1).decode()}
            status, _ = self._request("POST", "/login", urlencode(form).encode(),
                                      {"Content-Type": "application/x-www-form-urlencoded"})
        except OSError:
            return False
        self.log.logins += status == 302
        return status == 302

    # -- the stream --------------------------------------------------------------------------
    def _run(self) -> None:
        retry_s = 1.0
        while not self._stop.is_set():
            wait_s, retry_s = self._follow_once(retry_s)
            self._stop.wait(wait_s)

    def _refused(self, why: str) -> tuple[float, float]:
        self.log.refused[why] = self.log.refused.get(why, 0) + 1
        return REFUSED_RETRY_S, REFUSED_RETRY_S

    def _follow_once(self, retry_s: float) -> tuple[float, float]:
        """Open the stream and read it until it ends; returns (wait before the next try, retry)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=READ_TIMEOUT_S)
        self._conn = conn
        try:
            conn.request("GET", self.path, headers={"Cookie": self.cookie, "Accept": "text/event-stream"})
            resp = conn.getresponse()
            if resp.status in (301, 302, 401):  # the session is gone: the page would go to /login
                resp.read()
                self.login()
                return retry_s, retry_s
            if resp.status != 200 or not (resp.getheader("Content-Type") or "").startswith("text/event-stream"):
                resp.read()
                return self._refused(str(resp.status))
            self.log.streams_opened += 1
            event = ""
            while not self._stop.is_set():
                line = resp.readline().decode(errors="replace")
                if not line:
                    break
                line = line.rstrip("\r\n")
                if line.startswith("retry:"):
                    retry_s = int(line.split(":", 1)[1]) / 1000
                elif line.startswith("event:"):
                    event = line.split(":", 1)[1].strip()
                elif line.startswith("data:") and event == "update":
                    self.log.updates.append(time.time())
                elif line.startswith("data:") and event == "denied":
                    self.login()  # the page reloads, which sends it through the login
                elif not line:
                    event = ""
            self.log.dropped += 1
            return retry_s, retry_s
        except (OSError, http.client.HTTPException):
            self.log.dropped += 1  # a network error: EventSource reconnects after `retry`
            return retry_s, retry_s
        finally:
            self._conn = None
            conn.close()
