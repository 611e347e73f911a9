"""PostgreSQL connections for the Lambdas and the local platform.

Locally ``DATABASE_URL`` names the database (embedded pgserver or any PostgreSQL). In AWS the
function gets ``DB_HOST`` (and optionally ``DB_PORT``, ``DB_NAME``) plus ``DB_SECRET_ARN``, the
RDS-managed secret holding ``username`` and ``password``; TLS is required there.

A Lambda container keeps one connection between invocations (:func:`shared_connection`) and
replaces it when it is closed or broken, so a database failover costs one failed batch, not a
poisoned container.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.conninfo import make_conninfo

DATABASE_URL_ENV = "DATABASE_URL"
SECRET_ARN_ENV = "DB_SECRET_ARN"  # noqa: S105 - the name of a variable, not a secret
HOST_ENV = "DB_HOST"
PORT_ENV = "DB_PORT"
NAME_ENV = "DB_NAME"
CONNECT_TIMEOUT_S = 5

SecretFetcher = Callable[[str], str]


class DatabaseConfigError(RuntimeError):
    """Neither DATABASE_URL nor DB_SECRET_ARN + DB_HOST is set, or the secret is unusable."""


@dataclass(frozen=True, slots=True)
class DatabaseSettings:
    conninfo: str
    source: str  # "url" or "secret": where the settings came from, for logs


def _fetch_secret(secret_arn: str) -> str:
    import boto3  # noqa: PLC0415 - only AWS deployments need Secrets Manager

    client: Any = boto3.client("secretsmanager")
    response = client.get_secret_value(SecretId=secret_arn)
    return str(response["SecretString"])


def settings_from_env(
    environ: Mapping[str, str] | None = None, fetch_secret: SecretFetcher = _fetch_secret
) -> DatabaseSettings:
    """Resolve how to connect: DATABASE_URL wins; otherwise the RDS secret with TLS required."""
    env = os.environ if environ is None else environ
    url = env.get(DATABASE_URL_ENV, "").strip()
    if url:
        return DatabaseSettings(conninfo=url, source="url")
    secret_arn, host = env.get(SECRET_ARN_ENV, "").strip(), env.get(HOST_ENV, "").strip()
    if not secret_arn or not host:
        raise DatabaseConfigError(f"set {DATABASE_URL_ENV}, or {SECRET_ARN_ENV} and {HOST_ENV}")
    try:
        secret = json.loads(fetch_secret(secret_arn))
        user, password = str(secret["username"]), str(secret["password"])
    except (ValueError, KeyError, TypeError) as exc:
        raise DatabaseConfigError(f"secret {secret_arn} has no username/password: {exc!r}") from None
    conninfo = make_conninfo(
        host=host,
        port=env.get(PORT_ENV) or str(secret.get("port", 5432)),
        dbname=env.get(NAME_ENV) or str(secret.get("dbname", "meridian")),
        user=user,
        password=password,
        sslmode="require",
        connect_timeout=str(CONNECT_TIMEOUT_S),
        application_name=env.get("AWS_LAMBDA_FUNCTION_NAME", "meridian"),
    )
    return DatabaseSettings(conninfo=conninfo, source="secret")


def connect(settings: DatabaseSettings | None = None) -> psycopg.Connection[Any]:
    """A new connection; statements run in explicit transactions (``conn.transaction()``)."""
    resolved = settings or settings_from_env()
    return psycopg.connect(resolved.conninfo, autocommit=True)


_shared: psycopg.Connection[Any] | None = None


def shared_connection() -> psycopg.Connection[Any]:
    """The container's connection, reconnecting when the previous one closed or broke."""
    global _shared  # one connection per Lambda container, by design
    if _shared is None or _shared.closed or _shared.broken:
        _shared = connect()
    return _shared


def reset_shared_connection() -> None:
    """Close the container's connection (after an error that may have left it unusable)."""
    global _shared
    if _shared is not None and not _shared.closed:
        _shared.close()
    _shared = None
