"""The officer screen's HTTP server (stdlib, threaded), on loopback only.

Routes: `/` the page, `/static/<file>`, `/state` (JSON), `/events` (server-sent events, one
`data:` line per change plus keep-alive comments), `/preview.mjpg` (MJPEG at a low rate; frames
are encoded only while someone watches). Requests whose Host header is not this loopback
address are refused, so no other web page can read the screen through DNS rebinding.

Officer actions are JSON POSTs: `/api/signin` `{officer, pin}`, `/api/signout`, `/api/decide`
`{outcome, reason, follows_seq}`, `/api/manual` `{outcome, reason, token}`. Only
`application/json` bodies are taken: a page on another origin cannot send one without a CORS
preflight, which this server never answers, so no other page can act for the officer.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any

from scanner.screen.state import ScreenState
from protocol.words import COLOURS

logger = logging.getLogger(__name__)

_STATIC_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                 ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}
_STATIC_FILES = ("index.html", "app.js", "style.css")
_KEEPALIVE_S = 10.0
_BOUNDARY = "chotframe"
_MAX_POST = 2048

PreviewSource = Callable[[], bytes | None]


def url_host(host: str) -> str:
    """The host as written in a URL or Host header (IPv6 in brackets)."""
    return f"[{host}]" if ":" in host else host


def _load_static() -> dict[str, bytes]:
    folder = resources.files("scanner.screen") / "static"
    files = {name: (folder / name).read_bytes() for name in _STATIC_FILES}
    # The colour names come from the core, the same words the dashboard shows.
    words = {"colours": {c: {"vi": vi, "en": en} for c, (vi, en) in COLOURS.items()}}
    files["words.js"] = f"window.CHOT_WORDS = {json.dumps(words, ensure_ascii=False)};\n".encode()
    return files


class ScreenServer(ThreadingHTTPServer):
    """HTTP server holding the state, the static files and the preview source."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, host: str, port: int, state: ScreenState, preview: PreviewSource | None,
                 preview_fps: float, desk: Any = None) -> None:
        self.state = state
        self.desk = desk
        self.preview = preview
        self.preview_interval = 1.0 / preview_fps
        self.static = _load_static()
        self.watchers = 0
        """Clients watching the camera preview right now."""
        self.stopping = threading.Event()
        self._watch_lock = threading.Lock()
        if ":" in host:
            self.address_family = socket.AF_INET6
        super().__init__((host, port), ScreenHandler)
        self.allowed_hosts = {f"{name}:{self.server_address[1]}"
                              for name in (url_host(host), "localhost", "127.0.0.1", "[::1]")}

    def watching(self, delta: int) -> None:
        """Count preview watchers (+1 on connect, -1 on leave)."""
        with self._watch_lock:
            self.watchers += delta


class ScreenHandler(BaseHTTPRequestHandler):
    """One request to the officer screen."""

    server: ScreenServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        logger.debug("screen: " + format, *args)

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        if self.headers.get("Host") not in self.server.allowed_hosts:
            self._send(HTTPStatus.FORBIDDEN, b"wrong host\n", "text/plain; charset=utf-8")
            return
        path = self.path.split("?", 1)[0]
        if path in ("/", "/index.html"):
            self._send(HTTPStatus.OK, self.server.static["index.html"], _STATIC_TYPES[".html"])
        elif path.startswith("/static/") and path[8:] in self.server.static:
            name = path[8:]
            self._send(HTTPStatus.OK, self.server.static[name], _STATIC_TYPES["." + name.rsplit(".", 1)[1]])
        elif path == "/state":
            body = json.dumps(self.server.state.snapshot(), ensure_ascii=False).encode()
            self._send(HTTPStatus.OK, body, "application/json; charset=utf-8")
        elif path == "/events":
            self._events()
        elif path == "/preview.mjpg":
            self._preview()
        else:
            self._send(HTTPStatus.NOT_FOUND, b"not found\n", "text/plain; charset=utf-8")

    def do_POST(self) -> None:  # noqa: N802 - stdlib name
        if self.headers.get("Host") not in self.server.allowed_hosts:
            self._send(HTTPStatus.FORBIDDEN, b"wrong host\n", "text/plain; charset=utf-8")
            return
        path = self.path.split("?", 1)[0]
        content_type = (self.headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if content_type != "application/json":
            self._json(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, {"ok": False, "error": {
                "code": "bad_request", "vi": "Yêu cầu không hợp lệ.", "en": "Requests must be JSON."}})
            return
        if not 0 <= length <= _MAX_POST:
            self.close_connection = True
            self._json(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"ok": False, "error": {
                "code": "bad_request", "vi": "Yêu cầu quá lớn.", "en": "Request too large."}})
            return
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except (ValueError, UnicodeDecodeError):
            body = None
        if not isinstance(body, dict):
            self._json(HTTPStatus.BAD_REQUEST, {"ok": False, "error": {
                "code": "bad_request", "vi": "Yêu cầu không hợp lệ.", "en": "The request is not a JSON object."}})
            return
        self._officer_action(path, body)

    def _officer_action(self, path: str, body: dict[str, Any]) -> None:
        from scanner.officers import DeskError  # the screen also runs without officers

        desk, state = self.server.desk, self.server.state
        if desk is None or path not in ("/api/signin", "/api/signout", "/api/decide", "/api/manual"):
            self._json(HTTPStatus.NOT_FOUND, {"ok": False, "error": {
                "code": "not_found", "vi": "Chức năng này không bật trên thiết bị.",
                "en": "This unit does not take officer decisions."}})
            return
        try:
            answer: dict[str, Any] = {"ok": True}
            if path == "/api/signin":
                officer = desk.sign_in(body.get("officer"), body.get("pin"))
                answer["officer"] = officer.id
            elif path == "/api/signout":
                desk.sign_out()
            elif path == "/api/decide":
                answer["seq"] = desk.decide(body.get("outcome"), body.get("reason"), body.get("follows_seq"))
                state.release()
            else:
                answer["seq"] = desk.manual_check(body.get("outcome"), body.get("reason"), body.get("token"))
        except DeskError as e:
            self._json(HTTPStatus.CONFLICT, {"ok": False, "error": e.to_json()})
            return
        except Exception:  # noqa: BLE001 - e.g. a full disk: say so, record nothing half
            logger.exception("screen: officer action %s failed", path)
            self._json(HTTPStatus.INTERNAL_SERVER_ERROR, {"ok": False, "error": {
                "code": "not_saved", "vi": "Không lưu được quyết định: báo kỹ thuật.",
                "en": "The decision could not be saved: call a technician."}})
            return
        self._json(HTTPStatus.OK, answer)

    def _json(self, status: HTTPStatus, body: dict[str, Any]) -> None:
        self._send(status, json.dumps(body, ensure_ascii=False).encode(), "application/json; charset=utf-8")

    def _send(self, status: HTTPStatus, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def _stream_headers(self, content_type: str) -> None:
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", content_type)
        self.send_header("Cache-Control", "no-store")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True

    def _events(self) -> None:
        state = self.server.state
        self._stream_headers("text/event-stream; charset=utf-8")
        seen = -1
        try:
            while not self.server.stopping.is_set() and not state.closed:
                if state.version != seen:
                    snap = state.snapshot()
                    seen = snap["version"]
                    self.wfile.write(b"data: " + json.dumps(snap, ensure_ascii=False).encode() + b"\n\n")
                else:
                    self.wfile.write(b": keep-alive\n\n")
                self.wfile.flush()
                state.wait_change(seen, _KEEPALIVE_S)
        except (BrokenPipeError, ConnectionResetError, OSError):
            pass  # the page went away; EventSource reconnects by itself

    def _preview(self) -> None:
        source = self.server.preview
        if source is None:
            self._send(HTTPStatus.NOT_FOUND, b"no camera preview\n", "text/plain; charset=utf-8")
            return
        self._stream_headers(f"multipart/x-mixed-replace; boundary={_BOUNDARY}")
        self.server.watching(+1)
        try:
            while not self.server.stopping.is_set():
                started = time.monotonic()
                jpeg = source()
                if jpeg is not None:
                    self.wfile.write(f"--{_BOUNDARY}\r\nContent-Type: image/jpeg\r\n"
                                     f"Content-Length: {len(jpeg)}\r\n\r\n".encode() + jpeg + b"\r\n")
                    self.wfile.flush()
                wait = self.server.preview_interval - (time.monotonic() - started)
                self.server.stopping.wait(max(wait, 0.01))
        except (BrokenPipeError, ConnectionResetError, OSError):
            pass  # the viewer closed the preview; nothing to send it
        finally:
            self.server.watching(-1)
