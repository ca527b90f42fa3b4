"""The central store: device registry, verdict counts, device status, users, trust bundles.

`base` holds what every backend shares (records, errors, the `Store` interface and the time
arithmetic of counting); each backend is one module named after its technology. Callers import
from here and open a store with `open_store(database)`.
"""

from __future__ import annotations

from dashboard.store.base import *  # noqa: F403 - the package's public names
from dashboard.store.base import Store, StoreError
from dashboard.store.sqlite import MIGRATIONS, SqliteStore  # noqa: F401 - re-exported

__all__ = [name for name in dir() if not name.startswith("_")]


def open_store(database: str) -> Store:
    """Open the store named by the config's `database`: a SQLite file path (the only backend yet)."""
    if "://" in database:
        raise StoreError(f"database {database.split('://')[0]}:// is not supported yet: give a SQLite file path")
    return SqliteStore(database)
