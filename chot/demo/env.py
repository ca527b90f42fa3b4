"""The environment each demo process gets: what any program needs, and only its own secrets.

A unit in the field holds its own MQTT password and nothing of the central's; the demo keeps it
so: children do not inherit the demo's environment, they get the plain settings below (where
programs and Python live, language, time zone, temporary folder) and the secrets of their role.
"""

from __future__ import annotations

from collections.abc import Mapping

# Plain settings a child may see: none of them is a secret.
_PLAIN = frozenset({"PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "TERM",
                    "VIRTUAL_ENV", "PYTHONPATH", "PYTHONHASHSEED", "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE"})
_PLAIN_PREFIXES = ("LC_",)

INGEST_PASSWORD = "CHOT_INGEST_MQTT_PASSWORD"
DASHBOARD_PASSWORD = "CHOT_DASHBOARD_MQTT_PASSWORD"
SECRET_KEY = "CHOT_DASHBOARD_SECRET_KEY"
UNIT_PASSWORD = "CHOT_MQTT_PASSWORD"  # scanner.config.MqttConfig.password_env's default
STORE_URL = "CHOT_STORE_URL"  # dashboard.config.StoreConfig.url_env's default: the URL holds a password

# Role -> the secrets it needs. The dashboard publishes uploaded trust bundles and signed officer
# rosters with its own account (the roster key is a file in the central's data folder).
SECRETS_BY_ROLE: dict[str, tuple[str, ...]] = {
    "mosquitto": (),
    "nats": (),
    "nginx": (),
    "postgres": (),
    "ingest": (INGEST_PASSWORD,),
    "dashboard": (DASHBOARD_PASSWORD, SECRET_KEY),
    "publish-trust": (DASHBOARD_PASSWORD,),
    "publish-rosters": (DASHBOARD_PASSWORD,),
}

# Roles that open the central store: they also get its URL when it is PostgreSQL (the national
# profile); the embedded SQLite file needs no secret.
STORE_ROLES = frozenset({"ingest", "dashboard", "publish-trust", "publish-rosters"})


def plain_environment(base: Mapping[str, str]) -> dict[str, str]:
    """The non-secret settings of `base` that a child process needs to run."""
    return {k: v for k, v in base.items() if k in _PLAIN or k.startswith(_PLAIN_PREFIXES)}


def central_environment(role: str, base: Mapping[str, str], secrets: Mapping[str, str]) -> dict[str, str]:
    """The environment of a central process (`role` in SECRETS_BY_ROLE): plain settings + its secrets
    (and the store URL if `secrets` has one and the role opens the store)."""
    own = {name: secrets[name] for name in SECRETS_BY_ROLE[role]}
    if role in STORE_ROLES and STORE_URL in secrets:
        own[STORE_URL] = secrets[STORE_URL]
    return {**plain_environment(base), **own}


def unit_environment(base: Mapping[str, str], password: str) -> dict[str, str]:
    """The environment of one unit: plain settings and its own MQTT password, nothing else."""
    return {**plain_environment(base), UNIT_PASSWORD: password}
