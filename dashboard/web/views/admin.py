"""Admin pages: accounts, registering and revoking units, officers and their rosters, uploading
the trust bundle.

The work itself is done by the back end (`dashboard.devices`, `dashboard.trust`, the store);
these views only read forms, call it, and show the outcome or a readable reason.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from flask import Blueprint, current_app, g, render_template, request

from dashboard import devices as registry
from dashboard import officers as roster
from dashboard import trust as trust_publisher
from dashboard.broker import BrokerError
from dashboard.scope import Scope, ScopeError
from dashboard.store import LANGUAGES, ROLES, StoreError, UnknownUser
from dashboard.web import audit as audit_log
from dashboard.web import province_admin as pa
from dashboard.web.data import snapshots
from dashboard.web.auth import MIN_PASSWORD_LENGTH, error_response, hash_password, roles_required
from dashboard.web.i18n import translate
from dashboard.web.data.provinces import province_label
from dashboard.web.state import get_store, now, user_scope

logger = logging.getLogger(__name__)

bp = Blueprint("admin", __name__, url_prefix="/admin")


class AdminError(Exception):
    """An admin action could not be done; the message says why."""


def _dashboard_config() -> Any:
    config = current_app.config.get("CHOT_CONFIG")
    if config is None:
        raise AdminError(translate("unavailable", what="dashboard config (broker files)"))
    return config


def _page(template: str, message: str | None = None, error: str | None = None, status: int = 200,
          **extra: Any) -> Any:
    if status == 403:
        g.refusal = error  # for the audit log of refusals (dashboard.web.audit)
    return render_template(template, message=message, error=error, **extra), status


# -- users ------------------------------------------------------------------------------------
# The create-account form starts on the role that can do least: a slip leaves a viewer, not an admin.
DEFAULT_ROLE = "viewer"


def _users_page(message: str | None = None, error: str | None = None, status: int = 200) -> Any:
    roles = ROLES if pa.is_national(g.user) else pa.GRANTABLE_BY_PROVINCE_ADMIN
    return _page("admin_users.html", message, error, status, users=pa.visible_users(get_store(), g.user),
                 roles=roles, default_role=DEFAULT_ROLE, languages=LANGUAGES, min_password=MIN_PASSWORD_LENGTH,
                 scope_choices=_scope_choices())


def _scope_choices() -> list[tuple[str, str]]:
    """The scope entries this admin may grant, each with its name: provinces, then checkpoints."""
    scope = user_scope()
    checkpoints = get_store().list_checkpoints(scope)
    provinces = sorted({c.province for c in checkpoints if scope.everything or c.province in scope.provinces})
    return ([(f"province:{p}", province_label(p)) for p in provinces]
            + [(f"checkpoint:{c.id}", c.name) for c in checkpoints])


def _granted_scope(role: str, entries: list[str]) -> Scope:
    """The scope an account with `role` gets from `entries`, checked against what the admin may
    grant (AdminError when empty, pa.Overreach when above the admin's own)."""
    scope = Scope.all() if role == "admin" else Scope.parse(entries)
    if scope.is_empty:
        raise AdminError(translate("scope_required"))
    pa.check_new_user(get_store(), g.user, role, scope)
    return scope


@bp.get("/users")
@roles_required("admin", "province_admin")
def users() -> Any:
    """All accounts and the form to create one."""
    return _users_page()


@bp.post("/users")
@roles_required("admin", "province_admin")
def create_user() -> Any:
    """Create an account with a role and a scope."""
    form = request.form
    username = form.get("username", "").strip()
    password = form.get("password", "")
    role = form.get("role", "")
    language = form.get("language", "vi")
    try:
        if len(password) < MIN_PASSWORD_LENGTH:
            raise AdminError(translate("password_too_short", n=MIN_PASSWORD_LENGTH))
        lines = [line for line in form.get("scope", "").splitlines() if line.strip()]
        scope = _granted_scope(role, lines)
        get_store().create_user(username, hash_password(password), role, scope, language)
    except pa.Overreach as e:
        return _users_page(error=str(e), status=403)
    except (AdminError, ScopeError, StoreError) as e:
        return _users_page(error=str(e), status=400)
    audit_log.record("user_created", username, pa.province_of_user_scope(get_store(), scope),
                     f"role {role}, scope {', '.join(scope.entries())}")
    return _users_page(message=translate("user_created", username=username))


@bp.post("/users/<username>/access")
@roles_required("admin", "province_admin")
def change_access(username: str) -> Any:
    """Change an account's role and scope, within what the admin itself may grant."""
    store = get_store()
    target = store.get_user(username)
    role = request.form.get("role", "")
    # One line per entry, or entries separated by spaces or commas (the table's inline field).
    lines = [entry for entry in re.split(r"[\s,]+", request.form.get("scope", "")) if entry]
    try:
        if target is None:
            raise AdminError(str(UnknownUser(username)))
        if target.username == g.user.username:
            raise AdminError(translate("bad_request"))  # nobody widens or narrows their own access
        pa.check_user_target(store, g.user, target)
        scope = _granted_scope(role, lines)
        store.set_user_access(username, role, scope)
    except pa.Overreach as e:
        return _users_page(error=str(e), status=403)
    except (AdminError, ScopeError, StoreError) as e:
        return _users_page(error=str(e), status=400)
    audit_log.record("user_scope_changed", username, pa.province_of_user_scope(store, scope),
                     f"{target.role} {', '.join(target.scope.entries())} -> {role} {', '.join(scope.entries())}")
    return _users_page(message=translate("user_access_changed", username=username))


@bp.post("/users/<username>/remove")
@roles_required("admin", "province_admin")
def remove_user(username: str) -> Any:
    """Remove an account inside the admin's scope (never one's own)."""
    store = get_store()
    target = store.get_user(username)
    try:
        if target is None:
            raise AdminError(str(UnknownUser(username)))
        pa.check_user_target(store, g.user, target)
        if target.username == g.user.username:
            raise AdminError(translate("bad_request"))
        store.delete_user(username)
    except pa.Overreach as e:
        return _users_page(error=str(e), status=403)
    except AdminError as e:
        return _users_page(error=str(e), status=400)
    audit_log.record("user_removed", username, pa.province_of_user_scope(store, target.scope), f"role {target.role}")
    return _users_page(message=translate("user_removed", username=username))


# -- devices ----------------------------------------------------------------------------------
def _devices_page(message: str | None = None, error: str | None = None, status: int = 200) -> Any:
    store = get_store()
    return _page("admin_devices.html", message, error, status,
                 devices=[snapshots.device_dict(d, now()) for d in store.list_devices(user_scope())],
                 checkpoints=snapshots.checkpoints_list(store, user_scope()))


@bp.get("/devices")
@roles_required("admin", "province_admin")
def devices() -> Any:
    """Registered units and the form to add one."""
    return _devices_page()


@bp.post("/devices")
@roles_required("admin", "province_admin")
def add_device() -> Any:
    """Register a unit through dashboard.devices (credentials, ACL, broker reload)."""
    form = request.form
    device_id = form.get("device", "").strip()
    checkpoint = form.get("checkpoint", "").strip()
    try:
        pa.check_device(get_store(), g.user, device_id, checkpoint, form.get("province", "").strip() or None)
    except pa.Overreach as e:
        return _devices_page(error=str(e), status=403)
    try:
        creds = registry.add_device(
            get_store(), _dashboard_config(), device_id, form.get("checkpoint", "").strip(),
            district=form.get("district", "").strip() or None,
            province=form.get("province", "").strip() or None,
            checkpoint_name=form.get("checkpoint_name", "").strip() or None,
        )
    except (AdminError, StoreError, BrokerError, OSError, ValueError) as e:
        logger.warning("adding device %s failed: %s", device_id, e)
        return _devices_page(error=str(e), status=400)
    placed = get_store().get_device(creds.device)
    audit_log.record("device_added", creds.device, placed.province if placed else None, f"checkpoint {creds.checkpoint}")
    return _devices_page(message=translate("device_added", device=creds.device, password=creds.password))


@bp.post("/devices/<device_id>/remove")
@roles_required("admin", "province_admin")
def remove_device(device_id: str) -> Any:
    """Revoke a unit through dashboard.devices."""
    device = get_store().get_device(device_id)
    try:
        pa.check_device_target(g.user, device, device_id)
    except pa.Overreach as e:
        return _devices_page(error=str(e), status=403)
    try:
        registry.remove_device(get_store(), _dashboard_config(), device_id)
    except (AdminError, StoreError, BrokerError, OSError, ValueError) as e:
        logger.warning("removing device %s failed: %s", device_id, e)
        return _devices_page(error=str(e), status=400)
    audit_log.record("device_removed", device_id, device.province if device else None,
                     f"checkpoint {device.checkpoint}" if device else "")
    return _devices_page(message=translate("device_removed", device=device_id))


@bp.post("/devices/<device_id>/rotate")
@roles_required("admin", "province_admin")
def rotate_password(device_id: str) -> Any:
    """A new broker password for a unit through dashboard.devices (the old one stops at once)."""
    device = get_store().get_device(device_id)
    try:
        pa.check_device_target(g.user, device, device_id)
    except pa.Overreach as e:
        return _devices_page(error=str(e), status=403)
    try:
        creds = registry.rotate_password(get_store(), _dashboard_config(), device_id)
    except (AdminError, StoreError, BrokerError, OSError, ValueError) as e:
        logger.warning("rotating the password of device %s failed: %s", device_id, e)
        return _devices_page(error=str(e), status=400)
    audit_log.record("device_password_rotated", device_id, device.province if device else None,
                     f"checkpoint {device.checkpoint}" if device else "")
    logger.info("device %s got a new password from the web by %s", device_id, g.user.username)
    return _devices_page(message=translate("password_rotated", device=creds.device, password=creds.password))


# -- officers ---------------------------------------------------------------------------------
def _officers_page(message: str | None = None, error: str | None = None, status: int = 200) -> Any:
    store = get_store()
    scope = user_scope()  # the national admin: every checkpoint; a province admin: its provinces'
    checkpoints = snapshots.checkpoints_list(store, scope)
    listed = store.list_officers(scope)
    rosters = {c["id"]: store.latest_roster(c["id"]) for c in checkpoints}
    return _page("admin_officers.html", message, error, status, officers=listed, checkpoints=checkpoints,
                 checkpoint_names={c["id"]: c["name"] for c in checkpoints},
                 rosters={cp: r.version for cp, r in rosters.items() if r is not None})


def _check_officer_checkpoint(checkpoint: str) -> None:
    """A province admin manages the officers of its own provinces' checkpoints only."""
    if not any(c.id == checkpoint for c in get_store().list_checkpoints(user_scope())):
        raise pa.Overreach(translate("pa_checkpoint_outside", checkpoint=checkpoint[:40]))


def _checkpoint_province(checkpoint: str) -> str | None:
    """The province of a registered checkpoint (for the audit log), or None."""
    found = get_store().list_checkpoints(Scope.of(checkpoints=[checkpoint]))
    return found[0].province if found else None


@bp.get("/officers")
@roles_required("admin", "province_admin")
def officers() -> Any:
    """Officers per checkpoint, their rosters' versions, and the form to add one."""
    return _officers_page()


@bp.post("/officers")
@roles_required("admin", "province_admin")
def add_officer() -> Any:
    """Add an officer (or set a new PIN) and publish the checkpoint's signed roster."""
    form = request.form
    checkpoint, officer_id = form.get("checkpoint", "").strip(), form.get("officer", "").strip()
    try:
        _check_officer_checkpoint(checkpoint)
    except pa.Overreach as e:
        return _officers_page(error=str(e), status=403)
    try:
        roster.add_officer(get_store(), _dashboard_config(), checkpoint, officer_id, form.get("name", ""),
                           form.get("role", ""), form.get("pin", ""))
    except (AdminError, roster.OfficerError, trust_publisher.TrustPublishError, StoreError, BrokerError) as e:
        logger.warning("adding officer %s at %s failed: %s", officer_id, checkpoint, e)
        return _officers_page(error=str(e), status=400)
    audit_log.record("officer_saved", f"{checkpoint}/{officer_id}", _checkpoint_province(checkpoint),
                     f"role {form.get('role', '')[:20]}")
    return _officers_page(message=translate("officer_saved", officer=officer_id, checkpoint=checkpoint))


@bp.post("/officers/<checkpoint_id>/<officer_id>/remove")
@roles_required("admin", "province_admin")
def remove_officer(checkpoint_id: str, officer_id: str) -> Any:
    """Revoke an officer: the checkpoint's next roster, published now, leaves them out."""
    checkpoint = checkpoint_id
    try:
        _check_officer_checkpoint(checkpoint)
    except pa.Overreach as e:
        return _officers_page(error=str(e), status=403)
    try:
        roster.remove_officer(get_store(), _dashboard_config(), checkpoint, officer_id)
    except (AdminError, roster.OfficerError, trust_publisher.TrustPublishError, StoreError, BrokerError) as e:
        logger.warning("removing officer %s at %s failed: %s", officer_id, checkpoint, e)
        return _officers_page(error=str(e), status=400)
    audit_log.record("officer_removed", f"{checkpoint}/{officer_id}", _checkpoint_province(checkpoint))
    return _officers_page(message=translate("officer_removed", officer=officer_id, checkpoint=checkpoint))


# -- trust ------------------------------------------------------------------------------------
def _trust_page(message: str | None = None, error: str | None = None, status: int = 200) -> Any:
    return _page("admin_trust.html", message, error, status, trust=snapshots.trust_view(get_store(), Scope.all()))


@bp.get("/trust")
@roles_required("admin")
def trust() -> Any:
    """The current trust bundle, which units run which version, and the upload form."""
    return _trust_page()


@bp.post("/trust")
@roles_required("admin")
def upload_trust() -> Any:
    """Check an uploaded bundle's signature and version, keep it, publish it retained."""
    upload = request.files.get("bundle")
    data = upload.read() if upload else b""
    if not data:
        return _trust_page(error=translate("bad_request"), status=400)
    try:
        record = trust_publisher.accept_bundle(get_store(), _dashboard_config(), data, uploaded_by=g.user.username)
    except (AdminError, trust_publisher.TrustPublishError, BrokerError, StoreError) as e:
        logger.warning("trust bundle upload refused: %s", e)
        return _trust_page(error=str(e), status=400)
    audit_log.record("trust_uploaded", f"version {record.version}", None)
    return _trust_page(message=translate("trust_published", version=record.version))


# -- audit log --------------------------------------------------------------------------------
def audit_entries() -> list[Any]:
    """The audit log the admin may read: `province=<code>` narrows it; another province is refused."""
    scope = user_scope()
    province = request.args.get("province", "").strip()[:10]
    if province:
        if not (scope.everything or province in scope.provinces):
            raise pa.Overreach(translate("audit_province_outside", province=province_label(province)))
        scope = Scope.of(provinces=[province])
    return get_store().audit_log(scope, limit=500)


@bp.get("/audit")
@roles_required("admin", "province_admin")
def audit() -> Any:
    """Every administrative action in the admin's scope, newest first."""
    try:
        entries = audit_entries()
    except pa.Overreach as e:
        return error_response(403, str(e))
    return render_template("admin_audit.html", entries=entries, province=request.args.get("province", ""))
