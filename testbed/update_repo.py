"""Test machinery for software updates: a static HTTP server over a release repository.

`StaticServer(directory)` serves files (Python's http.server) on a free loopback port, as any
web server in front of `public/` would; `metadata_url` / `targets_url` give the unit's settings.
"""

from __future__ import annotations

import functools
import http.server
import threading
from pathlib import Path
from typing import Any


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class StaticServer:
    """http.server on 127.0.0.1:<free port> serving `directory` from a daemon thread."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        handler = functools.partial(_QuietHandler, directory=str(directory))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.port = int(self.httpd.server_address[1])
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="static-http", daemon=True)
        self.thread.start()

    @property
    def metadata_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/metadata/"

    @property
    def targets_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/targets/"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
