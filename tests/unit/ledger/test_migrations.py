"""The migration runner against real PostgreSQL: once only, checksummed, all-or-nothing."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import psycopg
import pytest

from meridian.ledger import MigrationError, latest_version, migrate
from meridian.ledger.migrate import MIGRATIONS_DIR, load_migrations


def _tables(conn: psycopg.Connection[Any]) -> set[str]:
    rows = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()
    return {str(r[0]) for r in rows}


def test_applies_every_migration_once(fresh_database_url: str) -> None:
    with psycopg.connect(fresh_database_url, autocommit=True) as conn:
        first = migrate(conn)
        second = migrate(conn)
        assert first.applied == [m.label for m in load_migrations()]
        assert second.applied == []
        assert second.already_applied == first.applied
        assert second.schema_version == latest_version()
        assert {"trades", "positions", "schema_migrations", "surveillance_findings"} <= _tables(conn)


def test_an_edited_migration_stops_the_run(fresh_database_url: str, tmp_path: Path) -> None:
    copy = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, copy)
    with psycopg.connect(fresh_database_url, autocommit=True) as conn:
        migrate(conn, load_migrations(copy))
        first = sorted(copy.glob("V001__*.sql"))[0]
        first.write_text(first.read_text() + "\n-- edited after release\n")
        with pytest.raises(MigrationError, match="checksum"):
            migrate(conn, load_migrations(copy))


def test_a_failing_migration_leaves_nothing_behind(fresh_database_url: str, tmp_path: Path) -> None:
    copy = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, copy)
    broken = copy / f"V{latest_version() + 1:03d}__broken.sql"
    broken.write_text("CREATE TABLE half_done (id INT);\nSELECT no_such_function();\n")
    with psycopg.connect(fresh_database_url, autocommit=True) as conn:
        with pytest.raises(psycopg.errors.UndefinedFunction):
            migrate(conn, load_migrations(copy))
        assert _tables(conn) == set()  # not even schema_migrations: one transaction
        broken.unlink()
        assert migrate(conn, load_migrations(copy)).schema_version == latest_version()


def test_a_migration_missing_from_the_files_is_refused(fresh_database_url: str, tmp_path: Path) -> None:
    with psycopg.connect(fresh_database_url, autocommit=True) as conn:
        migrate(conn)
        only_first = tmp_path / "m"
        only_first.mkdir()
        shutil.copy(sorted(MIGRATIONS_DIR.glob("V001__*.sql"))[0], only_first)
        with pytest.raises(MigrationError, match="no migration file provides"):
            migrate(conn, load_migrations(only_first))


@pytest.mark.parametrize("name", ["V1__short.sql", "V002_one_underscore.sql", "v003__lower.sql"])
def test_badly_named_files_are_rejected(tmp_path: Path, name: str) -> None:
    (tmp_path / name).write_text("SELECT 1;")
    with pytest.raises(MigrationError):
        load_migrations(tmp_path)


def test_gaps_in_versions_are_rejected(tmp_path: Path) -> None:
    (tmp_path / "V001__a.sql").write_text("SELECT 1;")
    (tmp_path / "V003__c.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match="without gaps"):
        load_migrations(tmp_path)
