"""The JSON API: everything the pages show, under the same login, roles and scope."""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, g, jsonify, request

from dashboard.web.data import snapshots
from dashboard.web.auth import error_response, roles_required
from dashboard.web.i18n import current_language, translate
from dashboard.web.state import get_store, now, settings, user_scope
from dashboard.web.templating import scope_words
from dashboard.web.views.pages import checkpoint_context_or_abort, devices_context, overview_context

logger = logging.getLogger(__name__)

bp = Blueprint("api", __name__, url_prefix="/api/v1")


@bp.get("/me")
def me() -> Any:
    """The logged-in account: name, role, scope and language."""
    user = g.user
    return jsonify({"username": user.username, "role": user.role, "scope": user_scope().entries(),
                    "language": current_language()})


@bp.get("/overview")
def overview() -> Any:
    """Totals (today and `from`..`to`), by province and checkpoint, time series, reasons, alarms."""
    try:
        return jsonify(overview_context(request.args)["data"])
    except snapshots.PeriodError as e:
        return error_response(400, f"{translate('bad_period')} {e}")


@bp.get("/checkpoints")
def checkpoints() -> Any:
    """The checkpoints in the user's scope."""
    return jsonify({"checkpoints": snapshots.checkpoints_list(get_store(), user_scope())})


@bp.get("/checkpoints/<checkpoint_id>")
def checkpoint(checkpoint_id: str) -> Any:
    """One checkpoint: units, today's counts, reasons, recent results (403 outside the scope, 404 if none)."""
    return jsonify(checkpoint_context_or_abort(checkpoint_id)["data"])


@bp.get("/devices")
@roles_required("admin", "province_admin", "supervisor")
def devices() -> Any:
    """Units in scope with their health, the alarms, and the latest trust version."""
    return jsonify(devices_context()["data"])


@bp.get("/alarms")
@roles_required("admin", "province_admin", "supervisor")
def alarms() -> Any:
    """Only the alarms of the units in scope."""
    store = get_store()
    return jsonify({"alarms": snapshots.alarms(store, store.list_devices(user_scope()), settings(), now())})


@bp.get("/trust")
@roles_required("admin", "province_admin", "supervisor")
def trust() -> Any:
    """The latest accepted trust bundle and how many units in scope run each version."""
    return jsonify(snapshots.trust_view(get_store(), user_scope()))


@bp.get("/users")
@roles_required("admin", "province_admin")
def users() -> Any:
    """The accounts the admin manages (all, or those inside a province admin's provinces),
    never their password hashes."""
    from dashboard.web.province_admin import visible_users

    return jsonify({"users": [
        {"username": u.username, "role": u.role, "scope": u.scope.entries(), "scope_text": scope_words(u.scope),
         "language": u.language}
        for u in visible_users(get_store(), g.user)
    ]})


@bp.get("/audit")
@roles_required("admin", "province_admin")
def audit() -> Any:
    """The audit log in the admin's scope (`province=<code>` narrows it; others are refused)."""
    from dashboard.web.views.admin import audit_entries
    from dashboard.web.province_admin import Overreach

    try:
        entries = audit_entries()
    except Overreach as e:
        return error_response(403, str(e))
    return jsonify({"entries": [
        {"id": e.id, "at": snapshots.iso(e.at), "actor": e.actor, "action": e.action, "target": e.target,
         "province": e.province, "detail": e.detail} for e in entries
    ]})
