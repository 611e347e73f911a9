"""Custom::LedgerMigrations on a read replica (the dr region): it verifies the schema the primary's
migrations left, writes nothing, and a migrate request that reaches a read-only ledger fails with the
reason instead of PostgreSQL's refusal. The replica is stood in for by a database whose transactions
are read-only by default (``default_transaction_read_only``), which refuses writes as a hot standby
does ("cannot execute CREATE TABLE in a read-only transaction")."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from migrations.cfn_response import Responder
from migrations.resource import handle

from meridian.ledger import is_read_only, latest_version, migrate
from tests.unit.pipeline.test_migrations_resource import CloudFormationEndpoint


@pytest.fixture
def cloudformation() -> Iterator[CloudFormationEndpoint]:
    endpoint = CloudFormationEndpoint()
    yield endpoint
    endpoint.server.shutdown()


def _read_only(url: str) -> None:
    name = psycopg.conninfo.conninfo_to_dict(url)["dbname"]
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')


def _event(url: str, mode: str, version: int | None = None) -> dict[str, Any]:
    return {
        "RequestType": "Update",
        "ResponseURL": url,
        "StackId": "arn:aws:cloudformation:us-west-2:123456789012:stack/meridian-dr/x",
        "RequestId": "r-1",
        "LogicalResourceId": "LedgerMigrations",
        "PhysicalResourceId": "meridian-ledger-schema",
        "ResourceProperties": {"SchemaVersion": str(version or latest_version()), "Mode": mode},
    }


def _run(event: dict[str, Any], database_url: str) -> None:
    handle(event, 60_000, lambda: psycopg.connect(database_url, autocommit=True), Responder(event))


def test_a_replica_of_a_migrated_primary_verifies_and_writes_nothing(
    cloudformation: CloudFormationEndpoint, fresh_database_url: str
) -> None:
    with psycopg.connect(fresh_database_url, autocommit=True) as conn:
        migrate(conn)
    _read_only(fresh_database_url)
    _run(_event(cloudformation.url, "verify"), fresh_database_url)
    [answer] = cloudformation.responses
    assert answer["Status"] == "SUCCESS", answer
    assert answer["Data"] == {"SchemaVersion": str(latest_version()), "Applied": "none (read replica)"}
    with psycopg.connect(fresh_database_url, autocommit=True) as conn:
        assert is_read_only(conn)


def test_a_migrate_request_on_a_read_only_ledger_fails_with_the_reason(
    cloudformation: CloudFormationEndpoint, fresh_database_url: str
) -> None:
    _read_only(fresh_database_url)
    with pytest.raises(ValueError, match="read-only"):
        _run(_event(cloudformation.url, "migrate"), fresh_database_url)
    [answer] = cloudformation.responses
    assert answer["Status"] == "FAILED"
    assert "PrimaryDbInstanceArn" in answer["Reason"]


def test_a_replica_the_primarys_migrations_have_not_reached_fails(
    cloudformation: CloudFormationEndpoint, fresh_database_url: str
) -> None:
    _read_only(fresh_database_url)
    with pytest.raises(Exception, match="no migration reached it"):
        _run(_event(cloudformation.url, "verify"), fresh_database_url)
    assert [r["Status"] for r in cloudformation.responses] == ["FAILED"]


def test_a_replica_behind_the_template_asks_for_the_primary_first(
    cloudformation: CloudFormationEndpoint, fresh_database_url: str
) -> None:
    with psycopg.connect(fresh_database_url, autocommit=True) as conn:
        migrate(conn)
        conn.execute("DELETE FROM schema_migrations WHERE version = %s", (latest_version(),))
    _read_only(fresh_database_url)
    with pytest.raises(ValueError, match="deploy the primary region first"):
        _run(_event(cloudformation.url, "verify"), fresh_database_url)
    assert cloudformation.responses[0]["Status"] == "FAILED"


def test_an_unknown_mode_is_refused_before_connecting(cloudformation: CloudFormationEndpoint) -> None:
    event = _event(cloudformation.url, "replicate")
    with pytest.raises(ValueError, match="unknown Mode"):
        handle(event, 60_000, lambda: pytest.fail("must not connect"), Responder(event))
    assert cloudformation.responses[0]["Status"] == "FAILED"
