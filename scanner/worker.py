"""A named background thread with a stop flag: the shape every long-running part of the unit has."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

logger = logging.getLogger(__name__)


class Worker:
    """Runs `target(stop_event)` in a named daemon thread; `stop()` sets the event and joins."""

    def __init__(self, name: str, target: Callable[[threading.Event], None]) -> None:
        self.name = name
        self._target = target
        self.stopping = threading.Event()
        """Set when the worker was asked to stop; the target polls or waits on it."""
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the thread (clearing an earlier stop)."""
        self.stopping.clear()
        self._thread = threading.Thread(target=self._target, args=(self.stopping,), name=self.name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> bool:
        """Ask the thread to stop and wait up to `timeout`; False (and an error log) if it did not."""
        self.stopping.set()
        thread, self._thread = self._thread, None
        if thread is None:
            return True
        thread.join(timeout)
        if thread.is_alive():
            logger.error("%s thread did not stop within %.1fs", self.name, timeout)
            return False
        return True

    @property
    def running(self) -> bool:
        """The thread is alive."""
        return self._thread is not None and self._thread.is_alive()
