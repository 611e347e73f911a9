"""The DR switchover runbooks (failover and failback) end to end on moto server.

The "primary" is a live matching node whose journal is shipped to the secondary region's bucket,
two PostgreSQL ledgers (primary and replica) holding its trades, an RDS replica in us-west-2 of an
instance in us-east-1, the replica-lag alarm the template declares, and Route 53 failover records.
The secondary region's activated node is stood in for by a node started from a restore of the same
archive (SSM Run Command does not run anything under moto).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

from meridian.client import HotpathClient
from meridian.domain import Side
from meridian.events import TradeExecuted
from meridian.ledger import migrate, record_trade
from meridian.protocol import Fill
from meridian_hotpath.archive import archived_segments, restore, ship
from tests.integration.statemachines.conftest import Node, tap_bus
from tests.integration.statemachines.runbook_stack import RunbookStack, build, next_environment
from tests.pg import create_database

pytestmark = pytest.mark.integration
PREFIX = "shards/default"
PRIMARY_REGION, DR_REGION = "us-east-1", "us-west-2"
DR_ENDPOINT, PRIMARY_ENDPOINT = "api.us-west-2.example.com", "api.us-east-1.example.com"


@dataclass
class World:
    stack: RunbookStack
    replica: str
    record_name: str
    zone_id: str
    bucket: str
    primary: Node


def _trade(fill: Fill) -> TradeExecuted:
    return TradeExecuted(
        event_id=f"n-{fill.trade_id}",
        occurred_at=datetime.now(UTC),
        execution_id=f"n-{fill.trade_id}",
        symbol=fill.symbol,
        price=fill.price / 100,
        quantity=fill.quantity,
        aggressor_side=Side(fill.aggressor_side).name,
        buy_order_id=str(fill.buy_order_id),
        sell_order_id=str(fill.sell_order_id),
        buy_account=fill.buy_account,
        sell_account=fill.sell_account,
        buy_client_order_id=fill.buy_client_order_id,
        sell_client_order_id=fill.sell_client_order_id,
        node_seq=fill.seq,
    )


def _trade_on(node: Node, orders: int = 12) -> list[TradeExecuted]:
    client = HotpathClient("127.0.0.1", node.port)
    trades = []
    for n in range(orders):
        side = Side.BUY if n % 2 else Side.SELL
        answer = client.submit(f"c{n}", f"acct{n % 3}", "AAPL", side, 10, 19000)
        trades += [_trade(m) for m in answer.messages if isinstance(m, Fill)]
    return trades


def _ledger(postgres_url: str, trades: list[TradeExecuted]) -> str:
    url = create_database(postgres_url)
    with psycopg.connect(url, autocommit=True) as conn:
        migrate(conn)
        for trade in trades:
            record_trade(conn, trade)
    return url


def _dns(stack: RunbookStack, environment: str, failed_over: bool = False) -> tuple[str, str, str]:
    """The dr stacks' PRIMARY/SECONDARY records; after a failover the PRIMARY points at the DR region."""
    route53 = stack.client("route53")
    zone = route53.create_hosted_zone(Name=f"{environment}.example.com.", CallerReference=environment)
    zone_id = zone["HostedZone"]["Id"].rsplit("/", 1)[-1]
    check = route53.create_health_check(
        CallerReference=f"{environment}-hc",
        HealthCheckConfig={
            "Type": "HTTPS",
            "FullyQualifiedDomainName": DR_ENDPOINT,
            "ResourcePath": "/health",
        },
    )["HealthCheck"]["Id"]
    name = f"api.{environment}.example.com."
    changes = [
        {
            "Action": "CREATE",
            "ResourceRecordSet": {
                "Name": name,
                "Type": "CNAME",
                "SetIdentifier": f"meridian-{region}",
                "Failover": role,
                "TTL": 10,
                "ResourceRecords": [{"Value": target}],
                "HealthCheckId": check,
            },
        }
        for region, role, target in (
            (PRIMARY_REGION, "PRIMARY", DR_ENDPOINT if failed_over else PRIMARY_ENDPOINT),
            (DR_REGION, "SECONDARY", DR_ENDPOINT),
        )
    ]
    route53.change_resource_record_sets(HostedZoneId=zone_id, ChangeBatch={"Changes": changes})
    return zone_id, name, check


def _primary_record(world: World) -> str:
    records = world.stack.client("route53").list_resource_record_sets(HostedZoneId=world.zone_id)
    for record in records["ResourceRecordSets"]:
        if record.get("Failover") == "PRIMARY":
            return str(record["ResourceRecords"][0]["Value"])
    raise AssertionError("no PRIMARY record")


def _world(
    moto: Any,
    postgres_url: str,
    tmp_path: Path,
    start_node: Any,
    lag: str = "OK",
    active_node: bool = False,
    failback: bool = False,
    lost_trades: int = 0,
) -> World:
    """A failover (runbook in the DR region) or failback (runbook in the primary region) world."""
    environment = next_environment()
    here, there = (PRIMARY_REGION, DR_REGION) if failback else (DR_REGION, PRIMARY_REGION)
    old_primary = start_node(tmp_path / "old-primary")
    trades = _trade_on(old_primary)
    old_db, new_db = _ledger(postgres_url, trades), _ledger(postgres_url, trades[: len(trades) - lost_trades])
    s3 = moto_client(moto, "s3", here)
    bucket = f"meridian-engine-state-{environment}"
    location = {} if here == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": here}}
    s3.create_bucket(Bucket=bucket, **location)
    ship(tmp_path / "old-primary", s3, bucket, PREFIX, include_active=True)  # what replication delivered
    source = moto_client(moto, "rds", there).create_db_instance(
        DBInstanceIdentifier=f"ledger-{environment}",
        Engine="postgres",
        DBInstanceClass="db.r6g.large",
        MasterUsername="meridian",
        MasterUserPassword="not-a-secret-1",
        AllocatedStorage=100,
    )["DBInstance"]
    replica = f"ledger-{'failback' if failback else 'replica'}-{environment}"
    moto_client(moto, "rds", here).create_db_instance_read_replica(
        DBInstanceIdentifier=replica, SourceDBInstanceIdentifier=source["DBInstanceArn"]
    )
    integrity = {
        "DATABASE_URL": new_db,
        "PRIMARY_DATABASE_URL": old_db,
        "PRIMARY_MERIDIAN_ROUTES": old_primary.routes(),
    }
    if active_node:
        restore(s3, bucket, PREFIX, tmp_path / "activated")
        activated = start_node(tmp_path / "activated")
        integrity.update({"MERIDIAN_ROUTES_PARAMETER": "", "MERIDIAN_ROUTES": activated.routes()})
    zone_id, record_name, check = _dns(RunbookStack(moto, here, environment), environment, failback)
    stack = build(
        moto,
        here,
        name=environment,
        parameters={
            "HostedZoneId": zone_id,
            "FailoverRecordName": record_name,
            "FailoverTargetDnsName": PRIMARY_ENDPOINT if failback else DR_ENDPOINT,
            "FailbackReplicaDbInstanceIdentifier": replica,
        },
        environment={"ValidateIntegrityFunction": integrity},
        outputs={
            "DataStack.DbInstanceIdentifier": replica,
            "DataStack.EngineStateBucketName": bucket,
            "DrStack.HealthCheckId": check,
        },
    )
    alarm = stack.refs["FailbackReplicaLagAlarm" if failback else "LedgerReplicaLagAlarm"]
    stack.client("cloudwatch").set_alarm_state(AlarmName=alarm, StateValue=lag, StateReason="test")
    return World(stack, replica, record_name, zone_id, bucket, old_primary)


def moto_client(moto: Any, service: str, region: str) -> Any:
    return RunbookStack(moto, region, "-").client(service)


def _halted(world: World) -> bool:
    item = world.stack.client("dynamodb").get_item(
        TableName=world.stack.refs["TradingControlsTable"], Key={"scope": {"S": "GLOBAL"}}
    )["Item"]
    return bool(item["halted"]["BOOL"])


def _replicating(world: World) -> bool:
    instance = world.stack.client("rds").describe_db_instances(DBInstanceIdentifier=world.replica)[
        "DBInstances"
    ][0]
    return "ReadReplicaSourceDBInstanceIdentifier" in instance


DRILL = {"operator": "dr-drill", "reason": "quarterly DR drill", "drill": True}


def test_failover_drill_promotes_restores_switches_validates_resumes_and_reports_its_rto(
    moto: Any, postgres_url: str, tmp_path: Path, start_node: Any
) -> None:
    world = _world(moto, postgres_url, tmp_path, start_node, active_node=True)
    announcements = tap_bus(world.stack, {"source": ["meridian.trading", "meridian.runbooks"]})

    result = world.stack.run("DrFailoverStateMachine", DRILL)

    assert result["status"] == "SUCCEEDED", result.get("cause")
    report = json.loads(result["output"])
    print(f"\nDR failover RTO (halt to resume): {report['rto']['seconds']:.3f} s")
    assert report["rto"]["within_target"]
    assert report["rto"]["seconds"] < 10
    assert report["trading_resumed"]
    assert not _halted(world)
    assert not _replicating(world)
    assert _primary_record(world) == DR_ENDPOINT
    checks = {c["name"]: c for c in report["integrity"]["checks"]}
    assert all(c["ok"] and not c["skipped"] for c in checks.values()), checks
    assert {"ledger_trade_count", "ledger_within_engine", "old_primary_book:AAPL", "active_book:AAPL"} <= set(
        checks
    )
    assert report["restored_seq"] == 12
    metrics = world.stack.client("cloudwatch").list_metrics(Namespace="Meridian/Runbooks")["Metrics"]
    assert any(m["MetricName"] == "RecoveryTimeSeconds" for m in metrics)
    point = report["nodes"][0]["restore_point"]
    assert world.stack.client("s3").head_object(Bucket=world.bucket, Key=point)["ContentLength"] > 0
    kinds = [(m["detail-type"], m["detail"].get("halted")) for m in announcements.messages(at_least=3)]
    assert ("trading.halted.v1", True) in kinds
    assert ("trading.halted.v1", False) in kinds
    assert ("runbook.completed.v1", None) in kinds


def test_a_lagging_replica_stops_the_failover_with_trading_halted(
    moto: Any, postgres_url: str, tmp_path: Path, start_node: Any
) -> None:
    world = _world(moto, postgres_url, tmp_path, start_node, lag="ALARM")

    result = world.stack.run("DrFailoverStateMachine", DRILL)

    assert (result["status"], result["error"]) == ("FAILED", "ReplicaNotReady")
    assert "ALARM" in result["cause"]
    assert _halted(world)
    assert _replicating(world)
    assert _primary_record(world) == PRIMARY_ENDPOINT


def test_a_tampered_archive_stops_the_failover_before_the_promotion(
    moto: Any, postgres_url: str, tmp_path: Path, start_node: Any
) -> None:
    world = _world(moto, postgres_url, tmp_path, start_node)
    s3 = world.stack.client("s3")
    victim = archived_segments(s3, world.bucket, PREFIX)[-1].key
    original = s3.get_object(Bucket=world.bucket, Key=victim)
    body = bytearray(original["Body"].read())
    body[40] ^= 0x01
    s3.put_object(Bucket=world.bucket, Key=victim, Body=bytes(body), Metadata=original["Metadata"])

    result = world.stack.run("DrFailoverStateMachine", DRILL)

    assert (result["status"], result["error"]) == ("FAILED", "ChecksumMismatch")
    assert "SHA-256" in result["cause"]
    assert _halted(world)
    assert _replicating(world)


def test_an_archive_that_cannot_be_restored_stops_the_failover(
    moto: Any, postgres_url: str, tmp_path: Path, start_node: Any
) -> None:
    world = _world(moto, postgres_url, tmp_path, start_node)
    s3 = world.stack.client("s3")
    s3.delete_object(Bucket=world.bucket, Key=archived_segments(s3, world.bucket, PREFIX)[0].key)

    result = world.stack.run("DrFailoverStateMachine", DRILL)

    assert (result["status"], result["error"]) == ("FAILED", "EngineRestoreFailed")
    assert _halted(world)
    assert _replicating(world)
    assert "SwitchTraffic" not in world.stack.states_entered(
        world.stack.client("stepfunctions").list_executions(
            stateMachineArn=world.stack.state_machines["DrFailoverStateMachine"]
        )["executions"][0]["executionArn"]
    )


def test_an_integrity_mismatch_stops_the_failover_with_trading_halted(
    moto: Any, postgres_url: str, tmp_path: Path, start_node: Any
) -> None:
    world = _world(moto, postgres_url, tmp_path, start_node, lost_trades=1)

    result = world.stack.run("DrFailoverStateMachine", DRILL)

    assert (result["status"], result["error"]) == ("FAILED", "IntegrityCheckFailed")
    assert "trades are missing" in result["cause"]
    assert _halted(world)


def test_failback_makes_the_primary_region_active_again(
    moto: Any, postgres_url: str, tmp_path: Path, start_node: Any
) -> None:
    world = _world(moto, postgres_url, tmp_path, start_node, failback=True)
    assert _primary_record(world) == DR_ENDPOINT

    result = world.stack.run(
        "DrFailbackStateMachine", {"operator": "dr-drill", "reason": "fail back after the drill"}
    )

    assert result["status"] == "SUCCEEDED", result.get("cause")
    report = json.loads(result["output"])
    print(f"\nDR failback RTO (halt to resume): {report['rto']['seconds']:.3f} s")
    assert report["runbook"] == "dr-failback"
    assert report["rto"]["within_target"]
    assert _primary_record(world) == PRIMARY_ENDPOINT
    assert not _replicating(world)
    assert not _halted(world)
