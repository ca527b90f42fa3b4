"""A simulated officer at a demo unit: signs in on the officer screen and decides, as a person would.

It uses only the screen's own loopback page API (`/state`, `/api/signin`, `/api/decide`,
`/api/manual`), so the demo exercises the same path as a finger on the touch screen. After a red
for a dose the record lacks, the officer mostly lets the person through on their paper
certificate; after other reds and yellows mostly turns them back; now and then a person with no
phone shows a paper certificate and gets a manual check.
"""

from __future__ import annotations

import http.client
import json
import logging
import random
import threading
from typing import Any

logger = logging.getLogger(__name__)

RECORD_GAPS = ("too_soon_after_dose", "partial_vaccination", "incomplete_series", "policy_not_met")


class SimulatedOfficer:
    """One officer at one unit, in a thread of its own ("officer-<device>")."""

    def __init__(self, device: str, port: int, officer_id: str, pin: str, *, no_phone: int, seed: int,
                 poll_s: float = 0.5) -> None:
        self.device = device
        self.port = port
        self.officer_id = officer_id
        self.pin = pin
        self.no_phone = no_phone
        """People with no phone who will come for a manual check."""
        self.rng = random.Random(seed)
        self.poll_s = poll_s
        self.decided = 0
        self.manual = 0
        self.refused: dict[str, int] = {}
        self._stop = threading.Event()
        self._seen: set[int] = set()
        self._thread = threading.Thread(target=self._run, name=f"officer-{device}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        try:
            data = None if body is None else json.dumps(body).encode()
            headers = {"Host": f"127.0.0.1:{self.port}"}
            if data is not None:
                headers["Content-Type"] = "application/json"
            conn.request(method, path, body=data, headers=headers)
            return json.loads(conn.getresponse().read() or b"{}")
        finally:
            conn.close()

    def _post(self, path: str, body: dict[str, Any]) -> bool:
        answer = self._call("POST", path, body)
        if not answer.get("ok"):
            code = (answer.get("error") or {}).get("code", "unknown")
            self.refused[code] = self.refused.get(code, 0) + 1
        return bool(answer.get("ok"))

    def _run(self) -> None:
        while not self._stop.wait(self.poll_s):
            try:
                self._step()
            except (OSError, ValueError, http.client.HTTPException):
                continue  # the unit is starting or stopping: try again at the next poll

    def _step(self) -> None:
        state = self._call("GET", "/state")
        desk = state.get("desk") or {}
        if not desk.get("allowed") or desk.get("problem"):
            return
        if desk.get("officer") is None:
            self._post("/api/signin", {"officer": self.officer_id, "pin": self.pin})
            return
        pending = desk.get("pending")
        if pending and state.get("verdict") and pending["seq"] not in self._seen:
            self._seen.add(pending["seq"])
            choice = self._choose(pending, state["verdict"].get("reason", ""))
            if choice and self._post("/api/decide", {"outcome": choice["outcome"], "reason": choice["code"],
                                                     "follows_seq": pending["seq"]}):
                self.decided += 1
            return
        if self.no_phone and self.rng.random() < 0.02:
            choices = desk.get("manual_choices") or []
            paper = [c for c in choices if c["outcome"] == "let_through"]
            back = [c for c in choices if c["outcome"] == "turned_back"]
            pick = paper[0] if paper and self.rng.random() < 0.8 else (back[0] if back else None)
            if pick and self._post("/api/manual", {"outcome": pick["outcome"], "reason": pick["code"],
                                                   "token": desk.get("manual_token")}):
                self.manual += 1
                self.no_phone -= 1

    def _choose(self, pending: dict[str, Any], reason: str) -> dict[str, Any] | None:
        """Not every verdict gets a decision; a record gap mostly ends in a let-through on paper."""
        if self.rng.random() < 0.3:
            return None
        choices = {c["code"]: c for c in pending.get("choices", [])}
        if reason in RECORD_GAPS and "paper_proof" in choices and self.rng.random() < 0.7:
            return choices["paper_proof"]
        if "no_proof" in choices:
            return choices["no_proof"]
        return next(iter(choices.values()), None)
