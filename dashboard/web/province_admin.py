"""What a province admin may do: manage accounts and units inside its own provinces, never
grant more than its own scope. The national admin (role `admin`) may do everything.

Each check raises Overreach with a readable reason; the admin views call them before acting.
"""

from __future__ import annotations

from dashboard.scope import Scope
from dashboard.store import Device, Store, User
from dashboard.web.i18n import entry_words, translate

# The roles a province admin may give: never the national admin.
GRANTABLE_BY_PROVINCE_ADMIN: tuple[str, ...] = ("province_admin", "supervisor", "viewer")


class Overreach(PermissionError):
    """A province admin tried to act outside its province or above its role; says what."""


def is_national(user: User) -> bool:
    """True for the national admin, who manages everything."""
    return user.role == "admin"


def _district_inside(store: Store, district: str, provinces: frozenset[str]) -> bool:
    """A district (national code) lies inside `provinces` if every checkpoint registered in it does."""
    found = store.list_checkpoints(Scope.of(districts=[district]))
    return bool(found) and all(c.province in provinces for c in found)


def scope_inside(store: Store, scope: Scope, provinces: frozenset[str]) -> str | None:
    """The first entry of `scope` lying outside `provinces`, or None when it is all inside."""
    if scope.everything:
        return "all"
    for p in sorted(scope.provinces):
        if p not in provinces:
            return f"province:{p}"
    for d in sorted(scope.districts):
        if not _district_inside(store, d, provinces):
            return f"district:{d}"
    known = {c.id: c.province for c in store.list_checkpoints(Scope.of(checkpoints=scope.checkpoints))}
    for c in sorted(scope.checkpoints):
        if known.get(c) not in provinces:
            return f"checkpoint:{c}"
    return None


def check_new_user(store: Store, actor: User, role: str, scope: Scope) -> None:
    """Refuse an account the actor may not create (role above it, scope outside its provinces)."""
    if role == "province_admin" and (scope.everything or scope.districts or scope.checkpoints or not scope.provinces):
        raise Overreach(translate("pa_scope_provinces"))
    if is_national(actor):
        return
    if role not in GRANTABLE_BY_PROVINCE_ADMIN:
        raise Overreach(translate("pa_role_too_high", roles=", ".join(GRANTABLE_BY_PROVINCE_ADMIN)))
    outside = scope_inside(store, scope, actor.scope.provinces)
    if outside is not None:
        raise Overreach(translate("pa_scope_outside", entry=entry_words(outside)))


def check_user_target(store: Store, actor: User, target: User) -> None:
    """Refuse acting on an account outside the actor's provinces (or a national admin)."""
    if is_national(actor):
        return
    if target.role == "admin" or scope_inside(store, target.scope, actor.scope.provinces) is not None:
        raise Overreach(translate("pa_user_outside", username=target.username))
    # Province admins of one province cannot remove or demote each other: only a wider scope can.
    if target.role == "province_admin" and not target.scope.provinces < actor.scope.provinces:
        raise Overreach(translate("pa_peer", username=target.username))


def visible_users(store: Store, actor: User) -> list[User]:
    """The accounts an admin sees: all for the national one, those inside its provinces otherwise."""
    users = store.list_users()
    if is_national(actor):
        return users
    return [u for u in users if u.role != "admin" and scope_inside(store, u.scope, actor.scope.provinces) is None]


def check_device(store: Store, actor: User, device_id: str, checkpoint: str, province: str | None) -> None:
    """Refuse registering a unit outside the actor's provinces, at a checkpoint elsewhere, or
    taking over a unit id registered elsewhere (re-adding an id moves the unit)."""
    if is_national(actor):
        return
    own = actor.scope.provinces
    existing = {c.id: c for c in store.list_checkpoints(Scope.of(checkpoints=[checkpoint]))}.get(checkpoint)
    if (existing is not None and existing.province not in own) or (province is not None and province not in own) \
            or (existing is None and province is None):
        raise Overreach(translate("pa_device_outside", checkpoint=checkpoint))
    device = store.get_device(device_id)
    if device is not None and device.province not in own:
        raise Overreach(translate("pa_device_outside", checkpoint=device.checkpoint))


def check_device_target(actor: User, device: Device | None, device_id: str) -> None:
    """Refuse revoking a unit outside the actor's provinces (unknown ids are refused the same way)."""
    if is_national(actor):
        return
    if device is None or device.province not in actor.scope.provinces:
        raise Overreach(translate("pa_device_outside", checkpoint=device.checkpoint if device else device_id))


def province_of_user_scope(store: Store, scope: Scope) -> str | None:
    """The one province an account's scope lies in (for the audit log), or None."""
    if scope.everything:
        return None
    provinces = set(scope.provinces)
    provinces |= {c.province for c in store.list_checkpoints(Scope.of(districts=scope.districts, checkpoints=scope.checkpoints))}
    return next(iter(provinces)) if len(provinces) == 1 else None
