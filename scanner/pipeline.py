"""From frame to verdict: decode -> debounce -> verify -> feedback -> outbox.

One named thread ("pipeline") takes the newest frame, decodes it, and on a new scan judges the
payload with the current trust bundle and the unit's policy. The verdict goes first to the
feedback sinks (screen, GPIO: the officer waits for them), then to the recorder (outbox), which
sees only `event_fields()`. The payload and the verdict are dropped as soon as they are handed
on: the screen alone keeps the verdict, and only while it is shown.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any, Protocol

from scanner.capture import Capture
from scanner.debounce import Debounce
from scanner.worker import Worker
from scanner.repeats import new_key
from verifier import TrustStore, Verdict, VerifyOptions, verify
from verifier.errors import VerificationError
from verifier.verdict import RED

logger = logging.getLogger(__name__)

# Latencies kept for stats and the benchmark (about 11 minutes of frames at 15 fps).
_HISTORY = 10_000


class Decoder(Protocol):
    """The QR decoder stage (scanner.qr.decode.QrDecoder)."""

    def decode(self, gray: Any) -> str | None: ...

    def reset(self) -> None: ...


class BundleSource(Protocol):
    """Where the current trust bundle comes from (scanner.trust_sync.TrustKeeper)."""

    @property
    def current(self) -> Any: ...


# A policy with on_untrusted_clock = "refuse" judges nothing while the clock is wrong.
_CLOCK_REFUSED = ("clock_untrusted",
                  "The unit's clock is wrong: no verdict until it is set right.",
                  "Đồng hồ thiết bị sai: không thể kết luận cho đến khi chỉnh lại giờ.")

VerdictSink = Callable[[Verdict], None]
Recorder = Callable[[Verdict, datetime], None]


def utc_now() -> datetime:
    """The wall clock, in UTC."""
    return datetime.now(timezone.utc)


def load_policy(name: str, bundle: Any = None) -> Any:
    """The named policy: the trust bundle's copy when it has one, else the built-in one."""
    from verifier import policy

    document = (getattr(bundle, "policies", None) or {}).get(name)
    if document is not None and hasattr(policy.Policy, "from_document"):
        return policy.Policy.from_document(document)
    return policy.builtin_policy(name)


class Judge:
    """verify() with the current bundle's trust store, the unit's policy and clock state."""

    def __init__(self, policy_name: str, trust: BundleSource | None = None, *,
                 clock_ok: Callable[[datetime, datetime | None], bool] | None = None,
                 max_trust_age: timedelta | None = None, uci_key: bytes | None = None) -> None:
        self.policy_name = policy_name
        # Key of the verdict's certificate-id hash: fresh per process, never stored (scanner.repeats).
        self.uci_key = uci_key if uci_key is not None else new_key()
        self.trust = trust
        self.clock_ok = clock_ok
        self.max_trust_age = max_trust_age
        self._empty = TrustStore([])
        self._cached: tuple[Any, TrustStore, Any] | None = None
        # Raises verifier.policy.UnknownPolicy now, at start, rather than on the first person.
        self._fallback = load_policy(policy_name, trust.current if trust is not None else None)

    def prepare(self, bundle: Any) -> None:
        """Build the trust store and policy of a new bundle (off the frame path: a listener)."""
        if bundle is None:
            return
        try:
            policy = load_policy(self.policy_name, bundle)
        except VerificationError as e:  # a broken policy in a signed bundle: keep the one we have
            logger.error("trust bundle %s: policy %s unusable (%s); keeping the previous one",
                         getattr(bundle, "version", None), self.policy_name, e)
            policy = self._fallback
        self._cached = (bundle, bundle.trust_store(), policy)

    def policy(self) -> Any:
        """The policy judging now (the trust bundle's copy, else the built-in one)."""
        return self._current()[2]

    def trust_limit(self) -> timedelta | None:
        """The oldest trust bundle judged normally: the policy's limit, else the unit's (as verify())."""
        policy = self._current()[2]
        return getattr(policy, "max_trust_age", None) or self.max_trust_age

    def _current(self) -> tuple[Any, TrustStore, Any]:
        bundle = self.trust.current if self.trust is not None else None
        if bundle is None:
            return None, self._empty, self._fallback
        cached = self._cached
        if cached is None or cached[0] is not bundle:
            self.prepare(bundle)
            cached = self._cached
        assert cached is not None
        return cached

    def __call__(self, payload: str, now: datetime) -> Verdict:
        """Judge one payload at wall-clock time `now`."""
        bundle, store, policy = self._current()
        issued_at = getattr(bundle, "issued_at", None)
        clock_trusted = self.clock_ok(now, issued_at) if self.clock_ok is not None else True
        if not clock_trusted and getattr(policy, "on_untrusted_clock", "warn") == "refuse":
            return Verdict(RED, *_CLOCK_REFUSED, policy=getattr(policy, "name", None),
                           trust_version=getattr(store, "version", None))
        options = VerifyOptions(clock_trusted=clock_trusted,
                                trust_age=(now - issued_at) if issued_at is not None else None,
                                max_trust_age=self.max_trust_age, uci_key=self.uci_key)
        return verify(payload, store, now, policy, options)


class PipelineStats:
    """Counters and recent latencies of the pipeline (read from other threads)."""

    def __init__(self) -> None:
        self.decoded = 0
        """Frames decoded."""
        self.reads = 0
        """Frames in which a code was read."""
        self.scans = 0
        """New scans (verdicts made)."""
        self.frame_ms: deque[float] = deque(maxlen=_HISTORY)
        """Per decoded frame: capture to done, in ms."""
        self.verdict_ms: deque[float] = deque(maxlen=_HISTORY)
        """Per verdict: capture of the frame to feedback given, in ms."""
        self.frame_cpu_ms: deque[float] = deque(maxlen=_HISTORY)
        """Per decoded frame: CPU time of this thread on it, in ms (steady on a busy machine)."""
        self.verdict_cpu_ms: deque[float] = deque(maxlen=_HISTORY)
        """Per verdict: CPU time from decoding to feedback given, in ms."""
        self.last_result: str | None = None
        self.last_loop_at = time.monotonic()
        """When the pipeline loop last went round (for the watchdog)."""


class Pipeline:
    """The frame-to-verdict loop, in its own thread."""

    def __init__(self, capture: Capture, decoder: Decoder, debounce: Debounce,
                 judge: Callable[[str, datetime], Verdict], *, feedback: Sequence[VerdictSink] = (),
                 recorders: Sequence[Recorder] = (), max_fps: float = 0.0,
                 wall_clock: Callable[[], datetime] = utc_now) -> None:
        self.capture = capture
        self.decoder = decoder
        self.debounce = debounce
        self.judge = judge
        self.feedback = list(feedback)
        self.recorders = list(recorders)
        self.min_interval = 1.0 / max_fps if max_fps > 0 else 0.0
        self.wall_clock = wall_clock
        self.stats = PipelineStats()
        self._worker = Worker("pipeline", self._run)

    def start(self) -> None:
        """Start the pipeline thread."""
        self._worker.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop after the frame in hand."""
        self._worker.stop(timeout)

    @property
    def running(self) -> bool:
        """The thread is alive."""
        return self._worker.running

    def _run(self, stop: threading.Event) -> None:
        last = 0.0
        while not stop.is_set():
            self.stats.last_loop_at = time.monotonic()
            if self.min_interval:
                wait = last + self.min_interval - time.monotonic()
                if wait > 0 and stop.wait(wait):
                    break
            frame = self.capture.take(timeout=0.5)
            if frame is None:
                continue
            last = time.monotonic()
            try:
                self.process(frame.gray, frame.ts)
            except Exception:  # one bad frame must not end the unit's scanning
                logger.exception("pipeline: frame %d failed", frame.seq)

    def process(self, gray: Any, captured_at: float) -> Verdict | None:
        """Run one frame through the stages; returns the verdict of a new scan (else None)."""
        cpu_start = time.thread_time()
        payload = self.decoder.decode(gray)
        stats = self.stats
        stats.decoded += 1
        if payload is not None:
            stats.reads += 1
        if not self.debounce.frame(payload, time.monotonic()):
            stats.frame_ms.append((time.monotonic() - captured_at) * 1000)
            stats.frame_cpu_ms.append((time.thread_time() - cpu_start) * 1000)
            return None
        assert payload is not None
        now = self.wall_clock()
        verdict = self.judge(payload, now)
        del payload  # only the verdict goes on; the raw text is never kept
        self._dispatch(self.feedback, verdict)
        done = time.monotonic()
        stats.verdict_ms.append((done - captured_at) * 1000)
        stats.frame_ms.append((done - captured_at) * 1000)
        stats.verdict_cpu_ms.append((time.thread_time() - cpu_start) * 1000)
        stats.frame_cpu_ms.append(stats.verdict_cpu_ms[-1])
        stats.scans += 1
        stats.last_result = verdict.result
        logger.info("verdict %s (%s, policy %s, trust %s)", verdict.result, verdict.reason,
                    verdict.policy, verdict.trust_version)
        for record in self.recorders:
            try:
                record(verdict, now)
            except Exception:
                logger.exception("pipeline: recording the verdict failed")
        return verdict

    @staticmethod
    def _dispatch(sinks: Sequence[VerdictSink], verdict: Verdict) -> None:
        for sink in sinks:
            try:
                sink(verdict)
            except Exception:  # a broken buzzer must not hide the verdict on screen
                logger.exception("pipeline: feedback %r failed", sink)
