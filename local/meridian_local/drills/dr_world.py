"""The primary/DR world the switchover runbooks (failover and failback) run against, in moto server.

The "primary" is a live matching node whose journal and snapshots are shipped to the runbook
region's bucket, two PostgreSQL ledgers (primary and replica) holding its trades, an RDS replica in
one region of an instance in the other, the replica-lag alarm the template declares, and Route 53
failover records. The runbook region's activated node is stood in for by a node started from a
restore of the same archive (SSM Run Command does not run anything under moto).

Shared by the runbook tests (``tests/integration/statemachines``) and ``python -m meridian_local
drill``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from meridian.client import HotpathClient
from meridian.domain import Side
from meridian.events import TradeExecuted
from meridian.ledger import migrate, record_trade
from meridian.protocol import Fill
from meridian_hotpath.archive import restore, ship
from meridian_local.cloud.runbook_stack import ACCOUNT, DR, PRIMARY, RunbookStack, build, next_environment
from meridian_local.drills.containers import cold_start
from meridian_local.drills.databases import create_database
from meridian_local.drills.dr_orders import RunningNode, order_api_environment, routes
from meridian_local.drills.drill_keys import integrity_environment, orders_key
from meridian_local.endpoint.moto_server import MotoServer

PREFIX = "shards/default"
PRIMARY_REGION, DR_REGION = "us-east-1", "us-west-2"
DR_ENDPOINT, PRIMARY_ENDPOINT = "api.us-west-2.example.com", "api.us-east-1.example.com"
DRILL = {"operator": "dr-drill", "reason": "quarterly DR drill", "drill": True}
FAILBACK = {"operator": "dr-drill", "reason": "fail back after the drill"}


StartNode = Callable[[Path], RunningNode]


@dataclass
class World:
    stack: RunbookStack
    replica: str
    record_name: str
    zone_id: str
    bucket: str
    primary: RunningNode
    primary_database_url: str = ""  # the old primary's ledger
    database_url: str = ""  # the runbook region's ledger (the replica being promoted)
    activated: RunningNode | None = None
    trades: list[TradeExecuted] = field(default_factory=list)
    replica_schema: dict[str, Any] = field(default_factory=dict)  # LedgerMigrations' answer (verify)


def trade_from_fill(fill: Fill) -> TradeExecuted:
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


def trade_on(node: RunningNode, orders: int = 12) -> list[TradeExecuted]:
    """Alternate sells and buys of AAPL at one price: every second order trades."""
    client = HotpathClient("127.0.0.1", node.port, credential=orders_key())
    trades = []
    for n in range(orders):
        side = Side.BUY if n % 2 else Side.SELL
        answer = client.submit(f"c{n}", f"acct{n % 3}", "AAPL", side, 10, 19000)
        trades += [trade_from_fill(m) for m in answer.messages if isinstance(m, Fill)]
    return trades


def ledger(postgres_url: str, trades: list[TradeExecuted]) -> str:
    """A new migrated database on the server holding ``trades``; its URL."""
    url = create_database(postgres_url)
    with psycopg.connect(url, autocommit=True) as conn:
        migrate(conn)
        for trade in trades:
            record_trade(conn, trade)
    return url


def set_read_only(database_url: str, read_only: bool) -> None:
    """Make the database refuse writes as a read replica does (``True``), or accept them again as
    the replica does once promoted (``False``)."""
    name = psycopg.conninfo.conninfo_to_dict(database_url)["dbname"]
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("SET default_transaction_read_only = off")
        setting = "on" if read_only else "off"
        conn.execute(f'ALTER DATABASE "{name}" SET default_transaction_read_only = {setting}')


def failover_dns(stack: RunbookStack, environment: str, failed_over: bool = False) -> tuple[str, str, str]:
    """The dr stacks' PRIMARY/SECONDARY records; after a failover the PRIMARY points at the DR region.

    Returns (hosted zone id, record name, health check id).
    """
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


def primary_record(world: World) -> str:
    """Where the PRIMARY failover record points."""
    records = world.stack.client("route53").list_resource_record_sets(HostedZoneId=world.zone_id)
    for record in records["ResourceRecordSets"]:
        if record.get("Failover") == "PRIMARY":
            return str(record["ResourceRecords"][0]["Value"])
    raise AssertionError("no PRIMARY record")


def moto_client(moto: MotoServer, service: str, region: str) -> Any:
    return RunbookStack(moto, region, "-").client(service)


def build_world(
    moto: MotoServer,
    postgres_url: str,
    workdir: Path,
    start_node: StartNode,
    lag: str = "OK",
    active_node: bool = False,
    failback: bool = False,
    lost_trades: int = 0,
    orders: int = 12,
    environment: str | None = None,
    replica_read_only: bool = False,
    first_order_wait: int = 5,
    order_api: bool = False,
    parameters: dict[str, str] | None = None,
    deliver_rules: bool = False,
) -> World:
    """A failover (runbook in the DR region) or failback (runbook in the primary region) world.

    ``start_node(data_dir)`` starts a matching node; the old primary trades ``orders`` orders on it.
    ``lost_trades`` leaves that many trades out of the runbook region's ledger.

    ``parameters`` adds template parameters (UnhealthyForSeconds ...); ``deliver_rules`` delivers
    what the dr stack's rules send to state machines (the automatic trigger; close the world's stack).
    ``first_order_wait`` is how long the runbook waits for the first order after the resume;
    ``order_api`` also creates this region's order API function (``submit``), serving the activated
    node.

    ``replica_read_only`` (failover only) deploys the DR region as a dr deploy does: its stack names
    the primary's database (PrimaryDbInstanceArn), its ledger refuses writes like the read replica
    it stands for, and the template's LedgerMigrations runs through the real MigrationsFunction,
    which then only verifies the schema the primary's migrations left (``World.replica_schema``).
    Promote it with ``set_read_only(world.database_url, False)`` once the runbook has.
    """
    if replica_read_only and failback:
        raise ValueError("the read-only replica path is the dr deploy's (failover)")
    environment = environment or next_environment()
    cold_start()  # this world's functions are new: nothing an earlier world's kept applies
    here, there = (PRIMARY_REGION, DR_REGION) if failback else (DR_REGION, PRIMARY_REGION)
    old_primary = start_node(workdir / "old-primary")
    trades = trade_on(old_primary, orders)
    old_db, new_db = ledger(postgres_url, trades), ledger(postgres_url, trades[: len(trades) - lost_trades])
    s3 = moto_client(moto, "s3", here)
    bucket = f"meridian-engine-state-{environment}"
    location = {} if here == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": here}}
    s3.create_bucket(Bucket=bucket, **location)
    ship(workdir / "old-primary", s3, bucket, PREFIX, include_active=True)  # what replication delivered
    replica = f"ledger-{'failback' if failback else 'replica'}-{environment}"
    source = ledger_with_replica(
        moto_client(moto, "rds", there), moto_client(moto, "rds", here), f"ledger-{environment}", replica
    )
    integrity = {
        **integrity_environment(),
        "DATABASE_URL": new_db,
        "PRIMARY_DATABASE_URL": old_db,
        "PRIMARY_MERIDIAN_ROUTES": routes(old_primary),
    }
    activated = None
    if active_node:
        restore(s3, bucket, PREFIX, workdir / "activated")
        activated = start_node(workdir / "activated")
        integrity.update({"MERIDIAN_ROUTES_PARAMETER": "", "MERIDIAN_ROUTES": routes(activated)})
    zone_id, record_name, check = failover_dns(RunbookStack(moto, here, environment), environment, failback)
    template_parameters = {
        "HostedZoneId": zone_id,
        "FailoverRecordName": record_name,
        "FailoverTargetDnsName": PRIMARY_ENDPOINT if failback else DR_ENDPOINT,
        "FailbackReplicaDbInstanceIdentifier": replica,
        "FirstOrderWaitSeconds": str(first_order_wait),
        **(parameters or {}),
    }
    if replica_read_only:  # what samconfig's [dr] section gives a dr deploy once prod exists
        template_parameters.update(
            {
                "PrimaryDbInstanceArn": source["DBInstanceArn"],
                "LedgerDbSecretArn": f"arn:aws:secretsmanager:{here}:{ACCOUNT}:secret:meridian/ledger",
            }
        )
    if not failback:  # the dr stack trades on the replicas of its primary's tables
        template_parameters["PeerEnvironment"] = f"{environment}p"
    stack = build(
        moto,
        here,
        name=environment,
        parameters=template_parameters,
        environment={
            "ValidateIntegrityFunction": integrity,
            "RestoreEngineFunction": {
                "PRIMARY_MERIDIAN_ROUTES": routes(old_primary),
                **integrity_environment(),
            },
            "MigrationsFunction": {"DATABASE_URL": new_db},
            "OrdersApiFunction": order_api_environment(new_db, activated),
        },
        outputs={
            "DataStack.DbInstanceIdentifier": replica,
            "DataStack.EngineStateBucketName": bucket,
            "DrStack.HealthCheckId": check,
        },
        functions=(("MigrationsFunction",) if replica_read_only else ())
        + (("OrdersApiFunction",) if order_api else ()),
        role=PRIMARY if failback else DR,
        replicas=not failback,
        deliver_rules=deliver_rules,
    )
    alarm = stack.refs["FailbackReplicaLagAlarm" if failback else "LedgerReplicaLagAlarm"]
    stack.client("cloudwatch").set_alarm_state(AlarmName=alarm, StateValue=lag, StateReason="test")
    world = World(
        stack, replica, record_name, zone_id, bucket, old_primary, old_db, new_db, activated, trades
    )
    if replica_read_only:
        set_read_only(new_db, True)
        world.replica_schema = stack.custom_resource("LedgerMigrations")
    return world


def halted(world: World) -> bool:
    """Is trading halted (the GLOBAL trading control) in the runbook region?"""
    item = (
        world.stack.client("dynamodb")
        .get_item(TableName=world.stack.refs["TradingControlsTable"], Key={"scope": {"S": "GLOBAL"}})
        .get("Item", {})
    )
    return bool(item.get("halted", {}).get("BOOL", False))


def replicating(world: World) -> bool:
    """Is the runbook region's ledger instance still a read replica?"""
    instance = world.stack.client("rds").describe_db_instances(DBInstanceIdentifier=world.replica)[
        "DBInstances"
    ][0]
    return "ReadReplicaSourceDBInstanceIdentifier" in instance


def build_failback(
    moto: MotoServer, world: World, workdir: Path, start_node: StartNode, environment: str | None = None
) -> World:
    """After ``world``'s failover succeeded: the failback runbook's world in the primary region.

    The promoted DR ledger gets a read replica in the primary region, the DR region's activated
    node ships its journal and snapshots to a primary-region bucket, and a node restored from that
    archive stands in for the primary region's activated node. The Route 53 records are the ones
    the failover switched.
    """
    if world.activated is None:
        raise ValueError("a failback needs the failover's activated node")
    environment = environment or next_environment()
    promoted = moto_client(moto, "rds", DR_REGION).describe_db_instances(DBInstanceIdentifier=world.replica)
    replica = f"ledger-failback-{environment}"
    moto_client(moto, "rds", PRIMARY_REGION).create_db_instance_read_replica(
        DBInstanceIdentifier=replica, SourceDBInstanceIdentifier=promoted["DBInstances"][0]["DBInstanceArn"]
    )
    s3 = moto_client(moto, "s3", PRIMARY_REGION)
    bucket = f"meridian-engine-state-{environment}"
    s3.create_bucket(Bucket=bucket)
    ship(workdir / "activated", s3, bucket, PREFIX, include_active=True)
    restore(s3, bucket, PREFIX, workdir / "failback-activated")
    activated = start_node(workdir / "failback-activated")
    records = moto_client(moto, "route53", PRIMARY_REGION).list_resource_record_sets(
        HostedZoneId=world.zone_id
    )
    check = next(r["HealthCheckId"] for r in records["ResourceRecordSets"] if r.get("Failover") == "PRIMARY")
    stack = build(
        moto,
        PRIMARY_REGION,
        name=environment,
        parameters={
            "HostedZoneId": world.zone_id,
            "FailoverRecordName": world.record_name,
            "FailoverTargetDnsName": PRIMARY_ENDPOINT,
            "FailbackReplicaDbInstanceIdentifier": replica,
        },
        environment={
            "RestoreEngineFunction": {
                "PRIMARY_MERIDIAN_ROUTES": routes(world.activated),
                **integrity_environment(),
            },
            "ValidateIntegrityFunction": {
                **integrity_environment(),
                "DATABASE_URL": world.primary_database_url,
                "PRIMARY_DATABASE_URL": world.database_url,
                "PRIMARY_MERIDIAN_ROUTES": routes(world.activated),
                "MERIDIAN_ROUTES_PARAMETER": "",
                "MERIDIAN_ROUTES": routes(activated),
            },
        },
        outputs={
            "DataStack.DbInstanceIdentifier": replica,
            "DataStack.EngineStateBucketName": bucket,
            "DrStack.HealthCheckId": check,
        },
    )
    alarm = stack.refs["FailbackReplicaLagAlarm"]
    stack.client("cloudwatch").set_alarm_state(AlarmName=alarm, StateValue="OK", StateReason="drill")
    return World(
        stack,
        replica,
        world.record_name,
        world.zone_id,
        bucket,
        world.activated,
        world.database_url,
        world.primary_database_url,
        activated,
        world.trades,
    )


def ledger_with_replica(source_rds: Any, replica_rds: Any, source_id: str, replica_id: str) -> dict[str, Any]:
    """A moto RDS ledger (PostgreSQL, as the data stack declares it) and its read replica in the
    other region (``replica_rds``'s); the source's description."""
    source: dict[str, Any] = source_rds.create_db_instance(
        DBInstanceIdentifier=source_id,
        Engine="postgres",
        DBInstanceClass="db.r6g.large",
        MasterUsername="meridian",
        MasterUserPassword="not-a-secret-1",
        AllocatedStorage=100,
    )["DBInstance"]
    replica_rds.create_db_instance_read_replica(
        DBInstanceIdentifier=replica_id, SourceDBInstanceIdentifier=source["DBInstanceArn"]
    )
    return source
