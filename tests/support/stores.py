"""One suite, both backends: fixtures that give a fresh store target on SQLite or PostgreSQL.

`backend` is parametrized over `sqlite` and `postgres`; `store_target` is a fresh SQLite file
path or a fresh PostgreSQL database URL (the session's cluster starts only when a PostgreSQL
case runs), to hand to `open_store`. `CHOT_TEST_BACKENDS=sqlite` limits a run to one backend.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

BACKENDS = tuple(b for b in os.environ.get("CHOT_TEST_BACKENDS", "sqlite,postgres").split(",") if b)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The store backend under test: "sqlite" or "postgres"."""
    return str(request.param)


def new_target(backend: str, request: pytest.FixtureRequest, path: Path) -> str:
    """A fresh store target for `backend`: `path` for SQLite, a new database for PostgreSQL
    (dropped when the test ends)."""
    if backend == "sqlite":
        return str(path)
    from tests.support.postgres import database_name

    cluster = request.getfixturevalue("postgres_cluster")
    url = cluster.create_database(template=migrated_template(cluster))
    request.addfinalizer(lambda: cluster.drop_database(database_name(url)))
    return str(url)


@pytest.fixture
def store_target(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty store target (SQLite path or PostgreSQL URL) for this test."""
    yield new_target(backend, request, tmp_path / "chot.db")


def migrated_template(cluster: Any) -> str:
    """A database holding the current schema, made once per cluster: copies of it start ready."""
    name = getattr(cluster, "chot_template", None)
    if name is None:
        from dashboard.store import open_store

        name = "chot_template"
        open_store(cluster.create_database(name)).close()
        cluster.chot_template = name
    return str(name)
