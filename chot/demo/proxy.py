"""A loopback TCP forwarder that can cut its links: one demo unit reaches the broker through it.

Cutting it is the demo's stand-in for a checkpoint losing its mobile link: the unit keeps
judging and queueing, and delivers its backlog when the link comes back.
"""

from __future__ import annotations

import logging
import selectors
import socket
import threading

logger = logging.getLogger(__name__)


class LinkCutter:
    """Forward 127.0.0.1:<port> to a target; `cut()` drops every connection and refuses new ones."""

    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._server.getsockname()[1]
        self._lock = threading.Lock()
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._up = True
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept_loop, name="demo-link", daemon=True)

    def start(self) -> None:
        self._thread.start()

    @property
    def up(self) -> bool:
        return self._up

    def cut(self) -> None:
        """Drop every forwarded connection; new ones are closed at once until `restore()`."""
        with self._lock:
            self._up = False
            pairs, self._pairs = self._pairs, []
        for a, b in pairs:
            for s in (a, b):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:  # the other side already closed it
                    pass
                s.close()

    def restore(self) -> None:
        self._up = True

    def stop(self) -> None:
        self._stop.set()
        self.cut()
        self._server.close()

    def _accept_loop(self) -> None:
        self._server.settimeout(0.2)
        while not self._stop.is_set():
            try:
                client, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if not self._up:
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=2)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._pairs.append((client, upstream))
            threading.Thread(target=self._pump, args=(client, upstream), name="demo-link-pump",
                             daemon=True).start()

    def _pump(self, a: socket.socket, b: socket.socket) -> None:
        sel = selectors.DefaultSelector()
        try:
            sel.register(a, selectors.EVENT_READ, b)
            sel.register(b, selectors.EVENT_READ, a)
            while not self._stop.is_set():
                for key, _ in sel.select(timeout=0.5):
                    source = key.fileobj
                    assert isinstance(source, socket.socket)  # only sockets are registered
                    data = source.recv(65536)
                    if not data:
                        return
                    key.data.sendall(data)
        except (OSError, ValueError):
            return
        finally:
            sel.close()
            for s in (a, b):
                try:
                    s.close()
                except OSError:  # closing a dead socket: nothing left to free
                    pass


class CutLinks:
    """One LinkCutter per broker address a unit knows, cut and restored together.

    A checkpoint's mobile link carries its way to every broker node: with several nodes, cutting
    one path would only make the unit fail over to the next node, not go offline.
    """

    def __init__(self, target_ports: list[int]) -> None:
        self._cutters = {port: LinkCutter(port) for port in target_ports}

    def start(self) -> None:
        for cutter in self._cutters.values():
            cutter.start()

    def port(self, target_port: int) -> int:
        """The local port that forwards to the broker on `target_port` while the link is up."""
        return self._cutters[target_port].port

    @property
    def up(self) -> bool:
        return all(c.up for c in self._cutters.values())

    def cut(self) -> None:
        for cutter in self._cutters.values():
            cutter.cut()

    def restore(self) -> None:
        for cutter in self._cutters.values():
            cutter.restore()

    def stop(self) -> None:
        for cutter in self._cutters.values():
            cutter.stop()
