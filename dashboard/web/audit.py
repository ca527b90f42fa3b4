"""Recording administrative actions in the store's audit log from a web request."""

from __future__ import annotations

import logging

from flask import Flask, Response, g, request

from dashboard.web.state import get_store

logger = logging.getLogger(__name__)


def record(action: str, target: str, province: str | None = None, detail: str = "") -> None:
    """Keep `action` by the logged-in user; a failure to log is logged, never hidden as success."""
    actor = g.user.username if g.get("user") is not None else "-"
    get_store().record_audit(actor, action, target, province, detail)
    logger.info("audit: %s %s %s (province %s)", actor, action, target, province or "-")


def _actor_province() -> str | None:
    """The actor's one province, so that its province admin sees the refusal too (else national)."""
    user = g.get("user")
    provinces = sorted(user.scope.provinces) if user is not None and not user.scope.everything else []
    return provinces[0] if len(provinces) == 1 else None


def install_refusal_log(app: Flask) -> None:
    """Every refusal (403) of a logged-in user goes to the audit log: what was asked and why not,
    so a province admin's tries beyond its province or a supervisor's requests for another
    province's exports are on record beside what was done."""

    @app.after_request
    def log_refusal(resp: Response) -> Response:
        if resp.status_code == 403 and g.get("user") is not None:
            try:
                asked = f"{request.method} {request.full_path.rstrip('?')}"[:300]
                record("refused", asked, _actor_province(), str(g.get("refusal") or "")[:300])
            except Exception:  # the refusal itself must still reach the user
                logger.exception("could not log a refusal of %s", request.path)
        return resp
