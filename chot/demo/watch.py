"""The demo's view of the dashboard: logged in as the admin, it reads the alarms a supervisor sees.

Used to say on the console when the cut link's unit shows up as offline on the devices page,
so the outage is seen where a supervisor would see it, through the real web app and its API.
"""

from __future__ import annotations

import http.cookiejar
import json
import re
import urllib.parse
import urllib.request
from typing import Any


class DashboardWatch:
    """A logged-in HTTP session on the dashboard (loopback), reading /api/v1/alarms."""

    def __init__(self, port: int, username: str, password: str, timeout: float = 5.0) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.username, self.password, self.timeout = username, password, timeout
        self._opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        self._logged_in = False

    def _login(self) -> None:
        with self._opener.open(f"{self.base}/login", timeout=self.timeout) as page:
            match = re.search(r'name="csrf_token" value="([^"]+)"', page.read().decode("utf-8"))
        if match is None:
            raise RuntimeError("the dashboard's login page has no form token")
        form = urllib.parse.urlencode({"username": self.username, "password": self.password,
                                       "csrf_token": match.group(1)}).encode()
        with self._opener.open(f"{self.base}/login", data=form, timeout=self.timeout):
            pass
        self._logged_in = True

    def alarms(self) -> list[dict[str, Any]]:
        """The alarms the devices page shows now (logs in first when needed)."""
        if not self._logged_in:
            self._login()
        with self._opener.open(f"{self.base}/api/v1/alarms", timeout=self.timeout) as resp:
            return list(json.loads(resp.read()).get("alarms", []))

    def offline(self, device: str) -> dict[str, Any] | None:
        """The offline alarm of `device`, if the dashboard raises one."""
        return next((a for a in self.alarms() if a.get("kind") == "offline" and a.get("device") == device), None)
