"""Stopping a server we started: gracefully as an upgrade would, or hard as a power cut."""

from __future__ import annotations

import subprocess


class ServerProcess:
    """Owns `self.proc`, the server's Popen (None when it is not running)."""

    proc: subprocess.Popen[bytes] | None = None
    stop_timeout_s: float = 10.0

    def stop(self, timeout: float | None = None) -> None:
        """Graceful stop (SIGTERM), then SIGKILL if it does not end in time."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(self.stop_timeout_s if timeout is None else timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def kill(self) -> None:
        """Hard stop (SIGKILL), as a power cut would."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self.proc = None
