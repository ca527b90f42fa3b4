"""Loopback plumbing shared by the demo, the benches and the tests: free ports, waiting for one."""

from __future__ import annotations

import socket
import time


def free_port(preferred: int | None = None) -> int:
    """`preferred` if nothing listens on it on 127.0.0.1, else any free loopback port."""
    for candidate in ([preferred] if preferred else []) + [0]:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", candidate))
            except OSError:
                continue
            return int(s.getsockname()[1])
    raise RuntimeError("no free port on 127.0.0.1")


def wait_for_port(port: int, timeout: float = 10.0, host: str = "127.0.0.1") -> bool:
    """True once something accepts TCP connections on host:port, False after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def parse_address(text: str, default_port: int) -> tuple[str, int]:
    """("host", port) from "host:port", "host" or "[v6]:port"; ValueError with a readable reason."""
    if not isinstance(text, str) or not text.strip() or any(c.isspace() for c in text):
        raise ValueError(f"broker address must be host or host:port, got {text!r}")
    host, port_text = text, ""
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else rest
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    if not host or (port_text and not port_text.isdigit()):
        raise ValueError(f"broker address must be host or host:port, got {text!r}")
    port = int(port_text) if port_text else default_port
    if not 1 <= port <= 65535:
        raise ValueError(f"broker port must be between 1 and 65535, got {port} in {text!r}")
    return host, port
