"""Databases of their own on one PostgreSQL server (the tests' and the DR drill's ledgers)."""

from __future__ import annotations

import contextlib
import os
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo


@contextlib.contextmanager
def postgres_server(directory: Path) -> Iterator[str]:
    """A PostgreSQL server's URL: ``DATABASE_URL`` when set, else an embedded server (pgserver) with its
    data in ``directory``, stopped and deleted on exit."""
    external = os.environ.get("DATABASE_URL", "").strip()
    if external:
        yield external
        return
    with warnings.catch_warnings():  # platformdirs warns that XDG_RUNTIME_DIR is unset; harmless here
        warnings.simplefilter("ignore")
        from pgserver.postgres_server import get_server  # noqa: PLC0415 - only without DATABASE_URL

        server = get_server(directory, cleanup_mode="delete")
    try:
        yield str(server.get_uri())
    finally:
        server.cleanup()  # stop the server and delete its data now, not whenever the process ends


def database_url(server_url: str, dbname: str) -> str:
    """``server_url`` pointing at database ``dbname`` instead."""
    params: dict[str, Any] = conninfo_to_dict(server_url)
    params["dbname"] = dbname
    return make_conninfo(**params)


def create_database(server_url: str, prefix: str = "t") -> str:
    """Create a uniquely named database on the server and return its URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"'.encode())
    return database_url(server_url, name)
