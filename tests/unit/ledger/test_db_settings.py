"""How the functions find their database: DATABASE_URL locally; in AWS their own role with IAM
authentication (the migrations: the master secret), always TLS verified against the RDS CAs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from psycopg.conninfo import conninfo_to_dict

from meridian.db import RDS_CA_BUNDLE, DatabaseConfigError, region_of, settings_from_env

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
    assert params["sslmode"] == "verify-full"
    assert params["sslrootcert"] == str(RDS_CA_BUNDLE)
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
    with pytest.raises(DatabaseConfigError, match="DB_USER"):
        settings_from_env({"DB_HOST": "h"})


def test_a_secret_without_credentials_is_an_error() -> None:
    with pytest.raises(DatabaseConfigError, match="username/password"):
        settings_from_env({"DB_SECRET_ARN": "arn", "DB_HOST": "h"}, lambda _: '{"user": "x"}')


HOST = "meridian-prod-ledger.c0ffee.us-east-1.rds.amazonaws.com"


def test_a_function_connects_as_its_own_role_with_an_iam_token_and_verified_tls() -> None:
    signed: list[tuple[str, int, str, str]] = []

    def sign(host: str, port: int, user: str, region: str) -> str:
        signed.append((host, port, user, region))
        return "token-of-15-minutes"

    env = {"DB_HOST": HOST, "DB_USER": "meridian_ledger", "DB_NAME": "meridian", "AWS_REGION": "us-west-2"}
    settings = settings_from_env(env, lambda _: pytest.fail("no secret is read"), sign)
    params = conninfo_to_dict(settings.conninfo)
    # Signed for the endpoint's region (a DR check reaches the other region's ledger).
    assert signed == [(HOST, 5432, "meridian_ledger", "us-east-1")]
    assert (params["user"], params["password"]) == ("meridian_ledger", "token-of-15-minutes")
    assert (params["sslmode"], params["sslrootcert"]) == ("verify-full", str(RDS_CA_BUNDLE))
    assert settings.source == "iam"


def test_the_secret_wins_over_iam_for_the_migrations() -> None:
    env = {"DB_HOST": HOST, "DB_USER": "meridian_migrations", "DB_SECRET_ARN": "arn"}
    settings = settings_from_env(env, lambda _: SECRET, lambda *_: pytest.fail("no token"))
    assert (settings.source, conninfo_to_dict(settings.conninfo)["user"]) == ("secret", "ledger")


@pytest.mark.parametrize("sslmode", ["disable", "allow", "prefer", "require"])
def test_tls_that_does_not_verify_the_server_is_refused(sslmode: str) -> None:
    env = {"DB_HOST": HOST, "DB_USER": "meridian_ledger", "DB_SSLMODE": sslmode}
    with pytest.raises(DatabaseConfigError, match="would not verify"):
        settings_from_env(env, sign_token=lambda *_: "t")


def test_verify_ca_and_another_bundle_may_be_configured(tmp_path: Path) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_text(RDS_CA_BUNDLE.read_text())
    env = {"DB_HOST": HOST, "DB_USER": "u", "DB_SSLMODE": "verify-ca", "DB_SSLROOTCERT": str(bundle)}
    params = conninfo_to_dict(settings_from_env(env, sign_token=lambda *_: "t").conninfo)
    assert (params["sslmode"], params["sslrootcert"]) == ("verify-ca", str(bundle))
    with pytest.raises(DatabaseConfigError, match="no certificate authorities"):
        settings_from_env({**env, "DB_SSLROOTCERT": str(tmp_path / "missing.pem")}, sign_token=lambda *_: "t")


def test_the_token_region_comes_from_the_endpoint_or_the_configuration() -> None:
    assert region_of("db.abc.eu-central-2.rds.amazonaws.com", {}) == "eu-central-2"
    assert region_of("db.abc.cn-north-1.rds.amazonaws.com.cn", {}) == "cn-north-1"
    assert region_of("ledger.internal", {"AWS_REGION": "us-west-2"}) == "us-west-2"
    assert region_of(HOST, {"DB_REGION": "ap-south-1"}) == "ap-south-1"
    with pytest.raises(DatabaseConfigError, match="DB_REGION"):
        region_of("ledger.internal", {})
