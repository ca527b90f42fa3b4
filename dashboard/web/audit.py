"""Recording administrative actions in the store's audit log from a web request."""

from __future__ import annotations

import logging

from flask import g

from dashboard.web.state import get_store

logger = logging.getLogger(__name__)


def record(action: str, target: str, province: str | None = None, detail: str = "") -> None:
    """Keep `action` by the logged-in user; a failure to log is logged, never hidden as success."""
    actor = g.user.username if g.get("user") is not None else "-"
    get_store().record_audit(actor, action, target, province, detail)
    logger.info("audit: %s %s %s (province %s)", actor, action, target, province or "-")
