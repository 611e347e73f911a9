"""PostgreSQL connections for the Lambdas and the local platform.

Locally ``DATABASE_URL`` names the database (embedded pgserver or any PostgreSQL, TLS as the URL
says). In AWS a function gets ``DB_HOST`` (and optionally ``DB_PORT``, ``DB_NAME``) and connects
either as its own database role with IAM authentication (``DB_USER``: a short-lived token signed
with the function's credentials, nothing stored anywhere) or, for the migrations alone, with the
RDS-managed master secret (``DB_SECRET_ARN``). TLS there is ``verify-full`` against the RDS
certificate authorities shipped in this package (``certs/rds-global-bundle.pem``): the server must
prove it is the ledger's endpoint, not merely speak TLS. ``DB_SSLMODE`` may ask for ``verify-ca``
(nothing weaker) and ``DB_SSLROOTCERT`` for another bundle.

A Lambda container keeps one connection between invocations (:func:`shared_connection`) and
replaces it when it is closed or broken, so a database failover costs one failed batch, not a
poisoned container; a replacement signs a fresh token (tokens last 15 minutes, connections longer).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg.conninfo import make_conninfo

from meridian import aws_clients

DATABASE_URL_ENV = "DATABASE_URL"
SECRET_ARN_ENV = "DB_SECRET_ARN"  # noqa: S105 - the name of a variable, not a secret
HOST_ENV = "DB_HOST"
PORT_ENV = "DB_PORT"
NAME_ENV = "DB_NAME"
USER_ENV = "DB_USER"
REGION_ENV = "DB_REGION"
SSLMODE_ENV = "DB_SSLMODE"
SSLROOTCERT_ENV = "DB_SSLROOTCERT"
CONNECT_TIMEOUT_S = 5
DEFAULT_PORT = "5432"
DEFAULT_DBNAME = "meridian"

RDS_CA_BUNDLE = Path(__file__).resolve().parent / "certs" / "rds-global-bundle.pem"
VERIFYING_SSLMODES = ("verify-full", "verify-ca")
# <id>.<random>.<region>.rds.amazonaws.com(.cn): the region an endpoint's IAM token is signed for.
_RDS_HOST = re.compile(r"\.(?P<region>[a-z]{2}(?:-[a-z]+)+-\d)\.rds\.amazonaws\.com(?:\.cn)?$")

SecretFetcher = Callable[[str], str]
TokenSigner = Callable[[str, int, str, str], str]  # host, port, user, region -> token


class DatabaseConfigError(RuntimeError):
    """The environment does not say how to reach the ledger, or says it unsafely."""


@dataclass(frozen=True, slots=True)
class DatabaseSettings:
    conninfo: str
    source: str  # "url", "iam" or "secret": how the credentials were obtained, for logs


def _fetch_secret(secret_arn: str) -> str:
    response = aws_clients.client("secretsmanager").get_secret_value(SecretId=secret_arn)
    return str(response["SecretString"])


def _sign_token(host: str, port: int, user: str, region: str) -> str:
    client = aws_clients.client("rds", region)  # boto3 loads here: only AWS deployments sign tokens
    return str(client.generate_db_auth_token(DBHostname=host, Port=port, DBUsername=user, Region=region))


def region_of(host: str, env: Mapping[str, str]) -> str:
    """The region to sign for: ``DB_REGION``, else the endpoint's own, else the function's."""
    explicit = env.get(REGION_ENV, "").strip()
    if explicit:
        return explicit
    match = _RDS_HOST.search(host)
    if match:
        return match["region"]
    region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or ""
    if not region:
        raise DatabaseConfigError(f"cannot tell the region of {host}: set {REGION_ENV}")
    return region


def _tls(env: Mapping[str, str]) -> dict[str, str]:
    sslmode = env.get(SSLMODE_ENV, "").strip() or "verify-full"
    if sslmode not in VERIFYING_SSLMODES:
        raise DatabaseConfigError(
            f"{SSLMODE_ENV}={sslmode!r} would not verify the server: use verify-full or verify-ca "
            f"(a database without TLS is reached through {DATABASE_URL_ENV})"
        )
    root = Path(env.get(SSLROOTCERT_ENV, "").strip() or RDS_CA_BUNDLE)
    if not root.is_file():
        raise DatabaseConfigError(f"no certificate authorities at {root} ({SSLROOTCERT_ENV})")
    return {"sslmode": sslmode, "sslrootcert": str(root)}


def settings_from_env(
    environ: Mapping[str, str] | None = None,
    fetch_secret: SecretFetcher = _fetch_secret,
    sign_token: TokenSigner = _sign_token,
) -> DatabaseSettings:
    """Resolve how to connect: DATABASE_URL wins; else the master secret; else IAM as DB_USER."""
    env = os.environ if environ is None else environ
    url = env.get(DATABASE_URL_ENV, "").strip()
    if url:
        return DatabaseSettings(conninfo=url, source="url")
    host = env.get(HOST_ENV, "").strip()
    secret_arn, user = env.get(SECRET_ARN_ENV, "").strip(), env.get(USER_ENV, "").strip()
    if not host or not (secret_arn or user):
        raise DatabaseConfigError(
            f"set {DATABASE_URL_ENV}, or {HOST_ENV} with {USER_ENV} (IAM) or {SECRET_ARN_ENV}"
        )
    tls = _tls(env)
    port, dbname = env.get(PORT_ENV, "").strip(), env.get(NAME_ENV, "").strip()
    if secret_arn:
        try:
            secret = json.loads(fetch_secret(secret_arn))
            user, password = str(secret["username"]), str(secret["password"])
        except (ValueError, KeyError, TypeError) as exc:
            raise DatabaseConfigError(f"secret {secret_arn} has no username/password: {exc!r}") from None
        port = port or str(secret.get("port", DEFAULT_PORT))
        dbname = dbname or str(secret.get("dbname", DEFAULT_DBNAME))
        source = "secret"
    else:
        port = port or DEFAULT_PORT
        dbname = dbname or DEFAULT_DBNAME
        password = sign_token(host, int(port), user, region_of(host, env))
        source = "iam"
    conninfo = make_conninfo(
        host=host,
        port=port,
        dbname=dbname,
        user=user,
        password=password,
        connect_timeout=str(CONNECT_TIMEOUT_S),
        application_name=env.get("AWS_LAMBDA_FUNCTION_NAME", "meridian"),
        **tls,
    )
    return DatabaseSettings(conninfo=conninfo, source=source)


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
