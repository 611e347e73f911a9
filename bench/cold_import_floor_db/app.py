"""The cold-import floor of a Meridian function that uses the ledger: the shared stack of
``bench/cold_import_floor`` plus psycopg, the PostgreSQL driver each of its invocations needs.
``bench/api_bench.py`` holds a function to this floor when its import loads psycopg."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import psycopg  # noqa: F401 - the ledger's driver

_spec = importlib.util.spec_from_file_location(
    "cold_import_floor_app", Path(__file__).resolve().parent.parent / "cold_import_floor" / "app.py"
)
assert _spec is not None
assert _spec.loader is not None
_spec.loader.exec_module(importlib.util.module_from_spec(_spec))
