"""Versioned SQL migrations: ``V<version>__<name>.sql`` files applied in order, exactly once.

A run takes a transaction-scoped advisory lock (concurrent deploys serialise), verifies the
SHA-256 of every migration already applied against the file of the same version (an edited or
vanished migration stops the run), then applies the pending ones. Everything happens in one
transaction: a failing migration leaves the database exactly as it was.
"""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
_FILE_NAME = re.compile(r"^V(?P<version>\d{3,})__(?P<name>[a-z0-9_]+)\.sql$")
# Arbitrary constant key for pg_advisory_xact_lock: "meridian ledger migrations".
_LOCK_KEY = 0x4D45_5249_4C44_47


class MigrationError(RuntimeError):
    """The migration set or the database's migration history is inconsistent."""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str
    checksum: str

    @property
    def label(self) -> str:
        return f"V{self.version:03d}__{self.name}"


@dataclass(slots=True)
class MigrationReport:
    applied: list[str] = field(default_factory=list)
    already_applied: list[str] = field(default_factory=list)

    @property
    def schema_version(self) -> int:
        labels = self.applied + self.already_applied
        return max((int(label[1:].split("__")[0]) for label in labels), default=0)


def load_migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """Every migration file in ``directory``, ordered by version; rejects gaps and duplicates."""
    migrations: list[Migration] = []
    for path in sorted(directory.glob("*.sql")):
        match = _FILE_NAME.match(path.name)
        if match is None:
            raise MigrationError(f"{path.name}: expected V<NNN>__<lower_snake_name>.sql")
        raw = path.read_bytes()
        migrations.append(
            Migration(
                version=int(match["version"]),
                name=match["name"],
                sql=raw.decode("utf-8"),
                checksum=hashlib.sha256(raw).hexdigest(),
            )
        )
    migrations.sort(key=lambda m: m.version)
    expected = list(range(1, len(migrations) + 1))
    if [m.version for m in migrations] != expected:
        raise MigrationError(f"migration versions must be 1..n without gaps: {[m.label for m in migrations]}")
    return migrations


def latest_version(directory: Path = MIGRATIONS_DIR) -> int:
    return max((m.version for m in load_migrations(directory)), default=0)


_CREATE_HISTORY = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version      INTEGER PRIMARY KEY,
    name         TEXT NOT NULL,
    checksum     TEXT NOT NULL,
    applied_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    execution_ms INTEGER NOT NULL
)
"""


def migrate(conn: psycopg.Connection[Any], migrations: list[Migration] | None = None) -> MigrationReport:
    """Apply every pending migration in one transaction; verify the checksums of applied ones."""
    wanted = load_migrations() if migrations is None else migrations
    by_version = {m.version: m for m in wanted}
    report = MigrationReport()
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
        conn.execute(_CREATE_HISTORY)
        history = conn.execute(
            "SELECT version, name, checksum FROM schema_migrations ORDER BY version"
        ).fetchall()
        for version, name, checksum in history:
            known = by_version.get(version)
            if known is None:
                raise MigrationError(f"database has V{version:03d}__{name}, which no migration file provides")
            if known.checksum != checksum:
                raise MigrationError(f"{known.label} was edited after it was applied (checksum mismatch)")
            report.already_applied.append(known.label)
        done = {row[0] for row in history}
        for migration in wanted:
            if migration.version in done:
                continue
            started = time.perf_counter()
            conn.execute(migration.sql.encode())
            elapsed_ms = int((time.perf_counter() - started) * 1000)
            conn.execute(
                "INSERT INTO schema_migrations (version, name, checksum, execution_ms)"
                " VALUES (%s, %s, %s, %s)",
                (migration.version, migration.name, migration.checksum, elapsed_ms),
            )
            report.applied.append(migration.label)
    return report


def is_read_only(conn: psycopg.Connection[Any]) -> bool:
    """Does this connection land on a ledger that refuses writes (a hot standby, a read replica)?"""
    row = conn.execute("SHOW transaction_read_only").fetchone()
    return row is not None and str(row[0]).lower() == "on"


def verify(conn: psycopg.Connection[Any], migrations: list[Migration] | None = None) -> MigrationReport:
    """Read-only: the migrations this ledger holds, checked against the files (for a read replica).

    Every applied migration must be a known file with the same checksum; nothing is written, so it
    runs on a replica, where ``migrate`` would be refused.
    """
    wanted = load_migrations() if migrations is None else migrations
    by_version = {m.version: m for m in wanted}
    report = MigrationReport()
    with conn.transaction():
        row = conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()
        if row is None or not row[0]:
            raise MigrationError("the ledger has no schema_migrations table: no migration reached it yet")
        history = conn.execute(
            "SELECT version, name, checksum FROM schema_migrations ORDER BY version"
        ).fetchall()
        for version, name, checksum in history:
            known = by_version.get(version)
            if known is None:
                raise MigrationError(f"database has V{version:03d}__{name}, which no migration file provides")
            if known.checksum != checksum:
                raise MigrationError(f"{known.label} was edited after it was applied (checksum mismatch)")
            report.already_applied.append(known.label)
    return report
