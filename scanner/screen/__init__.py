"""The officer screen: a full-screen verdict page served on loopback for the kiosk browser.

`OfficerScreen.show(verdict)` is a pipeline feedback sink; `update_status(...)` feeds the
trust, network, clock, counts and camera lines. The page (static HTML/JS/CSS, no build step)
follows changes through server-sent events and plays a distinct sound per colour.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from scanner.screen.server import PreviewSource, ScreenServer, url_host
from scanner.screen.state import ScreenState
from verifier import Verdict

logger = logging.getLogger(__name__)


class OfficerScreen:
    """State, HTTP server and verdict expiry, started and stopped together."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, language: str = "vi",
                 verdict_seconds: float = 4.0, preview: PreviewSource | None = None,
                 preview_fps: float = 2.0, desk: Any = None) -> None:
        self.state = ScreenState(language, verdict_seconds)
        self.desk = desk
        """The scanner.officers.OfficerDesk the page's sign-in and decision buttons reach (or None)."""
        self._host, self._port = host, port
        self._preview, self._preview_fps = preview, preview_fps
        self.server: ScreenServer | None = None
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        """Bind and serve in background threads (raises OSError if the port is taken)."""
        self.server = ScreenServer(self._host, self._port, self.state, self._preview, self._preview_fps,
                                   desk=self.desk)
        self._stop.clear()
        self._threads = [
            threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.2},
                             name="screen-http", daemon=True),
            threading.Thread(target=self.state.run_expiry, args=(self._stop,), name="screen-expiry", daemon=True),
        ]
        for t in self._threads:
            t.start()
        logger.info("officer screen at %s", self.url)

    @property
    def url(self) -> str:
        """The page's address."""
        if self.server is None:
            raise RuntimeError("screen not started")
        host, port = self.server.server_address[:2]
        return f"http://{url_host(str(host))}:{port}/"

    @property
    def watchers(self) -> int:
        """Clients watching the live preview."""
        return self.server.watchers if self.server is not None else 0

    def show(self, verdict: Verdict) -> None:
        """Feedback sink: put the verdict on screen."""
        self.state.show(verdict)

    def __call__(self, verdict: Verdict) -> None:
        self.show(verdict)

    def update_status(self, status: dict[str, Any]) -> None:
        """Replace the status lines."""
        self.state.update_status(status)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving and forget the verdict on show."""
        self._stop.set()
        self.state.close()
        if self.server is not None:
            self.server.stopping.set()
            self.server.shutdown()
            self.server.server_close()
        for t in self._threads:
            t.join(timeout)
        self._threads = []
        self.server = None
