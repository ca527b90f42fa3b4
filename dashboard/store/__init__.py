"""The central store: device registry, verdict counts, device status, users, trust bundles.

`base` holds what every backend shares (records, errors, the `Store` interface and the time
arithmetic of counting), `sql` the statements both SQL backends run; each backend is one module
named after its technology. Callers import from here and open a store with `open_store(target)`.
"""

from __future__ import annotations

from dashboard.store.base import *  # noqa: F403 - the package's public names
from dashboard.store.base import Store, StoreError
from dashboard.store.sqlite import MIGRATIONS, SqliteStore  # noqa: F401 - re-exported

__all__ = [name for name in dir() if not name.startswith("_")]

POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def is_postgres_url(target: str) -> bool:
    """True for a postgresql:// (or postgres://) URL."""
    return target.startswith(POSTGRES_SCHEMES)


def open_store(target: str, *, pool_size: int = 10) -> Store:
    """Open the configured store: a postgresql:// URL, else a SQLite file path (the embedded default)."""
    if is_postgres_url(target):
        try:
            from dashboard.store.postgres import PostgresStore  # psycopg only when asked for
        except ImportError:
            raise StoreError("a postgresql:// store needs psycopg 3 and psycopg_pool:"
                             " pip install 'chot[postgres]'") from None
        return PostgresStore(target, pool_size=pool_size)
    if "://" in target:
        raise StoreError(f"database {target.split('://')[0]}:// is not supported: give postgresql://... or a"
                         " SQLite file path")
    return SqliteStore(target)
