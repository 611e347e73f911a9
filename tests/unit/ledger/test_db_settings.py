"""How the functions find their database: DATABASE_URL locally, the RDS secret with TLS in AWS."""

from __future__ import annotations

import json

import pytest
from psycopg.conninfo import conninfo_to_dict

from meridian.db import DatabaseConfigError, settings_from_env

SECRET = json.dumps({"username": "ledger", "password": "s3cr3t", "port": 5432})


def test_database_url_wins() -> None:
    settings = settings_from_env(
        {"DATABASE_URL": "postgresql://x@h/db", "DB_SECRET_ARN": "arn", "DB_HOST": "h"}
    )
    assert (settings.conninfo, settings.source) == ("postgresql://x@h/db", "url")


def test_the_secret_and_host_give_a_tls_connection() -> None:
    fetched: list[str] = []

    def fetch(arn: str) -> str:
        fetched.append(arn)
        return SECRET

    env = {
        "DB_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:1:secret:rds",
        "DB_HOST": "db.internal",
        "DB_NAME": "ledger",
    }
    settings = settings_from_env(env, fetch)
    params = conninfo_to_dict(settings.conninfo)
    assert fetched == ["arn:aws:secretsmanager:us-east-1:1:secret:rds"]
    assert params["sslmode"] == "require"
    assert (params["host"], params["dbname"], params["user"], params["password"]) == (
        "db.internal",
        "ledger",
        "ledger",
        "s3cr3t",
    )
    assert settings.source == "secret"


def test_nothing_configured_is_an_error() -> None:
    with pytest.raises(DatabaseConfigError, match="DATABASE_URL"):
        settings_from_env({})


def test_a_secret_without_credentials_is_an_error() -> None:
    with pytest.raises(DatabaseConfigError, match="username/password"):
        settings_from_env({"DB_SECRET_ARN": "arn", "DB_HOST": "h"}, lambda _: '{"user": "x"}')
