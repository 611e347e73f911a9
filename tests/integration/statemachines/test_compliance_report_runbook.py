"""The compliance-report state machine end to end: PostgreSQL ledger -> S3 archive -> verification."""

from __future__ import annotations

import gzip
import hashlib
import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import psycopg
import pytest

from meridian.events import TradeExecuted
from meridian.ledger import record_trade
from meridian_local.cloud.runbook_stack import RunbookStack, build, next_environment
from tests.integration.statemachines.conftest import tap_bus, tap_topic

pytestmark = pytest.mark.integration
REPORT = "ComplianceReportStateMachine"
DAY = "2026-11-24"


def _trade(n: int, at: datetime) -> TradeExecuted:
    return TradeExecuted(
        event_id=f"e{n}",
        occurred_at=at,
        execution_id=f"node-a-{n}",
        symbol="MSFT",
        price=Decimal("420.15"),
        quantity=n,
        aggressor_side="BUY",
        buy_order_id=f"b{n}",
        sell_order_id=f"s{n}",
        buy_account="fund1",
        sell_account="mm1",
        buy_client_order_id=f"cb{n}",
        sell_client_order_id=f"cs{n}",
        node_seq=n,
    )


@pytest.fixture
def report_stack(moto: Any, ledger_database_url: str) -> RunbookStack:
    with psycopg.connect(ledger_database_url, autocommit=True) as conn:
        for n in range(1, 8):  # seven trades on the day, one each side of it
            record_trade(conn, _trade(n, datetime(2026, 11, 24, 9 + n, tzinfo=UTC)))
        record_trade(conn, _trade(100, datetime(2026, 11, 23, 23, 59, 59, tzinfo=UTC)))
        record_trade(conn, _trade(101, datetime(2026, 11, 25, 0, 0, 0, tzinfo=UTC)))
    environment = next_environment()
    bucket = f"meridian-compliance-archive-{environment}"
    RunbookStack(moto, "us-east-1", environment).client("s3").create_bucket(Bucket=bucket)
    ledger = {"DATABASE_URL": ledger_database_url}
    return build(
        moto,
        name=environment,
        environment={"ComplianceExportFunction": ledger, "ComplianceVerifyFunction": ledger},
        outputs={"DataStack.ComplianceArchiveBucketName": bucket},
    )


def _bucket(stack: RunbookStack) -> str:
    return str(stack.attributes[("DataStack", "Outputs.ComplianceArchiveBucketName")])


def test_the_scheduled_report_exports_the_previous_day_with_a_verified_manifest(
    report_stack: RunbookStack,
) -> None:
    stack = report_stack
    verified = tap_bus(stack, {"detail-type": ["compliance.report.verified.v1"]})
    scheduled = {"source": "aws.events", "detail-type": "Scheduled Event", "time": "2026-11-25T00:30:00Z"}

    result = stack.run(REPORT, scheduled)

    assert result["status"] == "SUCCEEDED", result.get("cause")
    output = json.loads(result["output"])
    assert (output["report_date"], output["rows"], output["files"], output["verified"]) == (DAY, 7, 1, True)
    s3 = stack.client("s3")
    manifest = json.loads(s3.get_object(Bucket=_bucket(stack), Key=output["manifest_key"])["Body"].read())
    part = manifest["files"][0]
    body = s3.get_object(Bucket=_bucket(stack), Key=part["key"])["Body"].read()
    assert hashlib.sha256(body).hexdigest() == part["sha256"]
    rows = [json.loads(line) for line in gzip.decompress(body).splitlines()]
    assert [r["quantity"] for r in rows] == list(range(1, 8))
    assert all(r["occurred_at"].startswith(DAY) for r in rows)
    assert verified.messages()[0]["detail"]["rows"] == 7


def test_a_tampered_archive_fails_verification_and_alerts_compliance(report_stack: RunbookStack) -> None:
    stack = report_stack
    alerts = tap_topic(stack, stack.refs["ComplianceAlertsTopic"])
    exported = json.loads(stack.run(REPORT, {"report_date": DAY})["output"])
    s3 = stack.client("s3")
    manifest = json.loads(s3.get_object(Bucket=_bucket(stack), Key=exported["manifest_key"])["Body"].read())
    part = manifest["files"][0]["key"]
    stored = s3.get_object(Bucket=_bucket(stack), Key=part)
    rows = gzip.decompress(stored["Body"].read()).splitlines()
    forged = gzip.compress(b"\n".join(rows[:-1]) + b"\n", mtime=0)  # one trade quietly removed
    s3.put_object(Bucket=_bucket(stack), Key=part, Body=forged, Metadata=stored["Metadata"])

    result = stack.run(REPORT, {"verify_only": {"manifest_key": exported["manifest_key"]}})

    assert (result["status"], result["error"]) == ("FAILED", "ComplianceReportMismatch")
    assert part in result["cause"]
    alert = alerts.messages()[0]
    assert alert["Subject"] == "Compliance report ComplianceReportMismatch"
    assert exported["manifest_key"] in alert["Message"]
