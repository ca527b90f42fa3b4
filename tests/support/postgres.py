"""PostgreSQL for tests (a pytest plugin): the launcher is testbed.postgres.

Fixtures: `postgres_cluster` (one per test session, stopped and removed at the end) and
`postgres_url` (a fresh database per test, made from a template, dropped afterwards).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from testbed.postgres import (SERVER_USER, PostgresCluster, PostgresError, database_name,
                                         postgres_bindir)

__all__ = ["SERVER_USER", "PostgresCluster", "PostgresError", "database_name", "postgres_bindir",
           "postgres_cluster", "postgres_url"]


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    """One PostgreSQL server for the whole test session; removed at the end."""
    cluster = PostgresCluster()
    try:
        cluster.start()
    except PostgresError as e:
        cluster.remove()
        pytest.fail(f"cannot start the test PostgreSQL: {e}")
    yield cluster
    cluster.remove()


@pytest.fixture
def postgres_url(postgres_cluster: PostgresCluster) -> Iterator[str]:
    """A fresh, empty database for one test; dropped afterwards."""
    url = postgres_cluster.create_database()
    yield url
    postgres_cluster.drop_database(database_name(url))
