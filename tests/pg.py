"""PostgreSQL for tests: one embedded server per test session (pgserver), or ``DATABASE_URL``.

``postgres_url`` is the server; ``fresh_database_url`` is a new, empty database on it per test, so
tests never see each other's rows (and pytest-xdist workers never share one).
Register with ``pytest_plugins = ["tests.pg"]`` in the root conftest.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from meridian.ledger import migrate
from meridian_local.drills.databases import create_database, database_url, postgres_server

__all__ = ["create_database", "database_url"]


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A PostgreSQL server URL: ``DATABASE_URL`` when set, else an embedded server for the session."""
    # Not under pytest's basetemp: concurrent pytest runs reset its permissions to 0700, which locks
    # out the unprivileged user PostgreSQL runs as when the tests run as root.
    with postgres_server(Path(tempfile.mkdtemp(prefix="meridian-pg-"))) as url:
        yield url


@pytest.fixture
def fresh_database_url(postgres_url: str) -> str:
    """An empty database of its own for one test."""
    return create_database(postgres_url)


@pytest.fixture
def ledger_database_url(fresh_database_url: str) -> str:
    """A database of its own with every ledger migration applied."""
    with psycopg.connect(fresh_database_url, autocommit=True) as conn:
        migrate(conn)
    return fresh_database_url


@pytest.fixture
def ledger_conn(ledger_database_url: str) -> Iterator[psycopg.Connection[Any]]:
    """An autocommit connection to a migrated database of its own."""
    with psycopg.connect(ledger_database_url, autocommit=True) as conn:
        yield conn
