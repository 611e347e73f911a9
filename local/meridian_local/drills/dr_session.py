"""The DR drill's world: both regions running, trading, and everything between them.

:class:`DrillSession` stands the primary (us-east-1) and the recovery region (us-west-2) up on one
moto server and one PostgreSQL (``meridian_local.drills.dr_regions``), wires the stand-ins for what
AWS does between them (``meridian_local.drills.dr_standins``,
``meridian_local.endpoint.global_tables``), and can cut the primary (its API and matching node stop,
and with them everything its region sent on) and bring it back for the failback. Every process
and thread it starts, :meth:`stop` stops.
"""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from meridian_hotpath.archive import restore
from meridian_hotpath.process import NodeProcess
from meridian_local.cloud.runbook_stack import ACCOUNT, DR, PRIMARY, RunbookStack, build
from meridian_local.delivery.pollers import KinesisPoller, PollingThread
from meridian_local.drills.dr_orders import order_api_environment, routes
from meridian_local.drills.dr_regions import (
    DR_REGION,
    PRIMARY_REGION,
    RegionApi,
    engine_state_bucket,
    invoker,
    principal,
    register_traders,
    serve_order_api,
)
from meridian_local.drills.dr_standins import DropCopyLedger, HealthProbe, JournalShipper, install_ssm_agent
from meridian_local.drills.dr_world import (
    DR_ENDPOINT,
    PREFIX,
    PRIMARY_ENDPOINT,
    failover_dns,
    ledger,
    ledger_with_replica,
    set_read_only,
)
from meridian_local.drills.drill_keys import integrity_environment, node_keys_file
from meridian_local.endpoint.global_tables import TableReplicator
from meridian_local.endpoint.moto_server import HOST, MotoServer
from meridian_local.preflight import free_port

PRIMARY_ENV, DR_ENV = "drill", "drilldr"
SNAPSHOT_EVERY = 10  # node seqs between snapshots: a short session still archives some
UNHEALTHY_FOR_S = 3
HOTPATH_ALARM = f"meridian-{PRIMARY_ENV}-hotpath-no-healthy-node"
LEDGER_SECRET = f"arn:aws:secretsmanager:{DR_REGION}:{ACCOUNT}:secret:meridian/dr/ledger"
Say = Callable[[str], None]


@dataclass
class Ledgers:
    primary: str
    replica: str


@dataclass
class DrillSession:
    moto: MotoServer
    postgres_url: str
    directory: Path
    say: Say
    primary: RunbookStack | None = None
    dr: RunbookStack | None = None
    apis: dict[str, RegionApi] = field(default_factory=dict)
    nodes: dict[str, NodeProcess] = field(default_factory=dict)
    ledgers: Ledgers | None = None
    zone: tuple[str, str, str] = ("", "", "")  # hosted zone id, record name, health check id
    replica_schema: dict[str, Any] = field(default_factory=dict)
    dr_node_port: int = 0
    primary_node_port: int = 0
    replicator: TableReplicator | None = None  # the global tables; paused while the primary is down
    drop_copy: DropCopyLedger | None = None  # the primary's trades into both ledgers
    _running: list[Any] = field(default_factory=list)  # threads with stop()
    _uninstall_agent: Callable[[], None] | None = None

    # ---- the two regions --------------------------------------------------------------------

    def start(self) -> None:
        self.ledgers = Ledgers(ledger(self.postgres_url, []), ledger(self.postgres_url, []))
        rds_source, rds_replica = self._rds()
        probe_stack = RunbookStack(self.moto, DR_REGION, DR_ENV)
        self.zone = failover_dns(probe_stack, DR_ENV)
        bucket = engine_state_bucket(probe_stack, f"meridian-engine-state-{DR_ENV}")
        self._start_primary(rds_source)
        assert self.primary is not None
        self.dr_node_port = free_port(HOST)  # the standby's address, known before it serves
        self._start_recovery(rds_source, rds_replica, bucket)
        self._uninstall_agent = install_ssm_agent(self._activate)
        self._running.append(
            JournalShipper(self._node_dir(PRIMARY_REGION), probe_stack.client("s3"), bucket, PREFIX).start()
        )

    def _rds(self) -> tuple[dict[str, Any], str]:
        replica = f"meridian-ledger-{DR_ENV}"
        source = ledger_with_replica(
            RunbookStack(self.moto, PRIMARY_REGION, PRIMARY_ENV).client("rds"),
            RunbookStack(self.moto, DR_REGION, DR_ENV).client("rds"),
            f"meridian-ledger-{PRIMARY_ENV}",
            replica,
        )
        return source, replica

    def _node_dir(self, region: str) -> Path:
        return self.directory / f"node-{region}"

    def _start_node(self, region: str, port: int, streams: dict[str, str] | None = None) -> NodeProcess:
        args = ["--port", str(port), "--snapshot-every", str(SNAPSHOT_EVERY)]
        args += ["--auth-keys-file", str(node_keys_file())]  # sessions log on, as on AWS
        if streams:
            args += ["--kinesis-stream", streams["MarketDataStream"], "--executions-stream"]
            args += [streams["ExecutionsStream"], "--node-number", "1"]
        env = {
            "AWS_ENDPOINT_URL": self.moto.endpoint_url,
            "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local",
            "AWS_DEFAULT_REGION": region,
        }
        node = NodeProcess.start(
            self._node_dir(region), *args, log_path=self.directory / f"node-{region}.log", env=env
        )
        self.nodes[region] = node
        return node

    def _start_primary(self, rds_source: dict[str, Any]) -> None:
        assert self.ledgers is not None
        streams_stack = RunbookStack(self.moto, PRIMARY_REGION, PRIMARY_ENV)
        streams = {
            "MarketDataStream": f"meridian-market-data-{PRIMARY_ENV}",
            "ExecutionsStream": f"meridian-executions-{PRIMARY_ENV}",
        }
        kinesis = streams_stack.client("kinesis")
        for name in streams.values():
            kinesis.create_stream(StreamName=name, ShardCount=1)
            kinesis.get_waiter("stream_exists").wait(StreamName=name)
        node = self._start_node(PRIMARY_REGION, 0, streams)
        self.primary_node_port = node.port
        self.primary = build(
            self.moto,
            PRIMARY_REGION,
            name=PRIMARY_ENV,
            role=PRIMARY,
            parameters={
                "PeerEnvironment": DR_ENV,
                "SecondaryRegion": DR_REGION,
                "TablesReplicaTradingDataKeyArn": f"arn:aws:kms:{DR_REGION}:{ACCOUNT}:key/dr-trading-data",
                "TablesReplicaMarketDataKeyArn": f"arn:aws:kms:{DR_REGION}:{ACCOUNT}:key/dr-market-data",
                "HostedZoneId": self.zone[0],
                "FailoverRecordName": self.zone[1],
                "FailoverTargetDnsName": PRIMARY_ENDPOINT,
            },
            functions=("OrdersApiFunction", "MarketDataFunction"),
            environment={"OrdersApiFunction": order_api_environment(self.ledgers.primary, node)},
            outputs={
                "DataStack.DbInstanceIdentifier": rds_source["DBInstanceIdentifier"],
                "DataStack.EngineStateBucketName": engine_state_bucket(
                    streams_stack, f"meridian-engine-state-{PRIMARY_ENV}"
                ),
                "DrStack.HealthCheckId": self.zone[2],
                "ObservabilityStack.HotpathHealthAlarmName": HOTPATH_ALARM,
            },
        )
        cloudwatch = self.primary.client("cloudwatch")
        for alarm in ("hotpath-no-healthy-node", "region-health", "orders-api-server-errors"):
            cloudwatch.put_metric_alarm(
                AlarmName=f"meridian-{PRIMARY_ENV}-{alarm}",
                Namespace="AWS/Route53" if alarm == "region-health" else "AWS/NetworkELB",
                MetricName="HealthCheckStatus",
                Statistic="Minimum",
                Period=60,
                EvaluationPeriods=1,
                Threshold=1.0,
                ComparisonOperator="LessThanThreshold",
            )
        primary = self.primary
        tables = [(t.name, t.regions) for t in primary.global_tables]
        self.replicator = TableReplicator(lambda s, r: primary.client(s, r), tables)
        self.replicator.start()
        register_traders(primary, (PRIMARY_ENV, DR_ENV))
        self.apis[PRIMARY_REGION] = serve_order_api(self.primary)
        market_data = KinesisPoller(
            kinesis,
            streams["MarketDataStream"],
            invoker(self.primary, "MarketDataFunction"),
            function_name="market-data",
        )
        delivery = PollingThread([market_data], idle_sleep_s=0.05, max_idle_sleep_s=0.2)
        delivery.start()
        self._running.append(delivery)
        self.drop_copy = DropCopyLedger(
            kinesis, streams["ExecutionsStream"], [self.ledgers.primary, self.ledgers.replica]
        ).start()
        self._running.append(self.drop_copy)

    def _start_recovery(self, rds_source: dict[str, Any], replica_id: str, bucket: str) -> None:
        assert self.ledgers is not None
        assert self.primary is not None
        primary_node = self.nodes[PRIMARY_REGION]
        dr_routes = {"MERIDIAN_ROUTES_PARAMETER": "", "MERIDIAN_ROUTES": routes(_Port(self.dr_node_port))}
        self.dr = build(
            self.moto,
            DR_REGION,
            name=DR_ENV,
            role=DR,
            parameters={
                "PeerEnvironment": PRIMARY_ENV,
                "SecondaryRegion": PRIMARY_REGION,
                "AutomaticFailover": "enabled",
                "UnhealthyForSeconds": str(UNHEALTHY_FOR_S),
                "AutomaticFailoverAcceptsDataLoss": "true",
                "FirstOrderWaitSeconds": "60",
                "HostedZoneId": self.zone[0],
                "FailoverRecordName": self.zone[1],
                "FailoverTargetDnsName": DR_ENDPOINT,
                "PrimaryDbInstanceArn": rds_source["DBInstanceArn"],
                "LedgerDbSecretArn": LEDGER_SECRET,
            },
            functions=("OrdersApiFunction", "MigrationsFunction"),
            environment={
                "RestoreEngineFunction": {
                    "PRIMARY_MERIDIAN_ROUTES": routes(primary_node),
                    **integrity_environment(),
                },
                "ValidateIntegrityFunction": {
                    **integrity_environment(),
                    "DATABASE_URL": self.ledgers.replica,
                    "PRIMARY_DATABASE_URL": self.ledgers.primary,
                    "PRIMARY_MERIDIAN_ROUTES": routes(primary_node),
                    **dr_routes,
                },
                "OrdersApiFunction": order_api_environment(self.ledgers.replica, _Port(self.dr_node_port)),
                "MigrationsFunction": {"DATABASE_URL": self.ledgers.replica},
            },
            outputs={
                "DataStack.DbInstanceIdentifier": replica_id,
                "DataStack.EngineStateBucketName": bucket,
                "DrStack.HealthCheckId": self.zone[2],
            },
            deliver_rules=True,
        )
        set_read_only(self.ledgers.replica, True)
        self.replica_schema = self.dr.custom_resource("LedgerMigrations")
        self.dr.client("cloudwatch").set_alarm_state(
            AlarmName=self.dr.refs["LedgerReplicaLagAlarm"], StateValue="OK", StateReason="replica caught up"
        )
        self.apis[DR_REGION] = serve_order_api(self.dr)

    def _activate(self, region: str, targets: list[dict[str, Any]], commands: list[str]) -> None:
        """meridian-activate on a region's standby node: restore the archive there, serve it."""
        if not any("meridian-activate" in c for c in commands) or region in self.nodes:
            return
        stack = self.dr if region == DR_REGION else self.primary
        assert stack is not None
        bucket = stack.attributes[("DataStack", "Outputs.EngineStateBucketName")]
        data_dir = self._node_dir(region)
        if data_dir.exists():  # the region's old node: it starts over from the archive
            shutil.rmtree(data_dir)
        restore(stack.client("s3"), bucket, PREFIX, data_dir)
        self._start_node(region, self.dr_node_port if region == DR_REGION else self.primary_node_port)

    # ---- health, the cut ----------------------------------------------------------------------

    def watch_primary_health(self) -> HealthProbe:
        assert self.primary is not None
        checks = {
            f"meridian-{PRIMARY_ENV}-region-health": HealthProbe.api(f"{self.apis[PRIMARY_REGION].url}/ping"),
            f"meridian-{PRIMARY_ENV}-hotpath-no-healthy-node": HealthProbe.node(
                "127.0.0.1", self.primary_node_port
            ),
        }
        probe = HealthProbe(
            self.primary.client("cloudwatch"),
            self.primary.client("events"),
            checks,
            interval=0.5,
            say=self.say,
        )
        self._running.append(probe.start())
        return probe

    def cut_primary(self) -> None:
        """The primary region goes down: its API and node stop, and what it sent on stops with them."""
        self.apis.pop(PRIMARY_REGION).stop()
        node = self.nodes.pop(PRIMARY_REGION)
        node.kill()
        for running in [r for r in self._running if not isinstance(r, HealthProbe)]:
            running.stop()
            self._running.remove(running)
        if self.replicator is not None:
            self.replicator.pause()

    def wait_trades_recorded(self, timeout: float = 30.0) -> int:
        """Until the drop copy has recorded a trade in the ledgers (the traders cross every second
        order); how many it recorded so far (0: none within ``timeout``)."""
        assert self.drop_copy is not None
        deadline = time.monotonic() + timeout
        while self.drop_copy.recorded == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.drop_copy.recorded

    def wait_replicated(self, timeout: float = 30.0) -> int:
        """Until the recovery region's replicas hold the traders (written in the primary); how many
        writes the replication copied so far."""
        assert self.dr is not None
        key = {"principal": {"S": principal(DR_ENV, "alice")}}
        deadline = time.monotonic() + timeout
        while "Item" not in self.dr.client("dynamodb").get_item(
            TableName=self.dr.refs["PrincipalsTable"], Key=key
        ):
            if time.monotonic() > deadline:
                raise TimeoutError("the traders did not reach the recovery region's tables")
            time.sleep(0.05)
        assert self.replicator is not None
        return self.replicator.replicated

    def clients(self, region: str) -> Any:
        """The signed clients of ``region``'s order API, by trader (its current API, after a restart)."""
        return _LiveClients(self, region)

    def bring_primary_back(self) -> None:
        """The primary region is healthy again: its API serves, its ledger replicates the promoted
        one, the recovery region's engine state is shipped to it, and its tables catch up."""
        assert self.primary is not None
        assert self.dr is not None
        assert self.ledgers is not None
        primary = self.primary
        dr_rds = self.dr.client("rds").describe_db_instances(
            DBInstanceIdentifier=self.dr.attributes[("DataStack", "Outputs.DbInstanceIdentifier")]
        )["DBInstances"][0]
        primary.client("rds").create_db_instance_read_replica(
            DBInstanceIdentifier=f"meridian-ledger-failback-{PRIMARY_ENV}",
            SourceDBInstanceIdentifier=dr_rds["DBInstanceArn"],
        )
        primary.client("cloudwatch").set_alarm_state(
            AlarmName=primary.refs["FailbackReplicaLagAlarm"], StateValue="OK", StateReason="caught up"
        )
        bucket = primary.attributes[("DataStack", "Outputs.EngineStateBucketName")]
        self._running.append(
            JournalShipper(self._node_dir(DR_REGION), primary.client("s3"), bucket, PREFIX).start()
        )
        assert self.replicator is not None
        # What each region wrote while they were apart is copied before anything else is written.
        self.replicator.catch_up()
        self.replicator.start()
        self.primary_node_port = free_port(HOST)  # the restored primary's, before the failback starts it
        back = _Port(self.primary_node_port)
        self._configure(primary, "OrdersApiFunction", {"MERIDIAN_ROUTES": routes(back)})
        self._configure(
            primary,
            "RestoreEngineFunction",
            {"PRIMARY_MERIDIAN_ROUTES": routes(_Port(self.dr_node_port)), **integrity_environment()},
        )
        self._configure(
            primary,
            "ValidateIntegrityFunction",
            {
                **integrity_environment(),
                "DATABASE_URL": self.ledgers.primary,
                "PRIMARY_DATABASE_URL": self.ledgers.replica,
                "PRIMARY_MERIDIAN_ROUTES": routes(_Port(self.dr_node_port)),
                "MERIDIAN_ROUTES_PARAMETER": "",
                "MERIDIAN_ROUTES": routes(back),
            },
        )
        self.apis[PRIMARY_REGION] = serve_order_api(primary)

    @staticmethod
    def _configure(stack: RunbookStack, logical_id: str, variables: dict[str, str]) -> None:
        lambda_client = stack.client("lambda")
        name = stack.refs[logical_id]
        current = lambda_client.get_function_configuration(FunctionName=name)["Environment"]["Variables"]
        lambda_client.update_function_configuration(
            FunctionName=name, Environment={"Variables": {**current, **variables}}
        )

    def record_target(self) -> str:
        """Where the failover record's PRIMARY answer points (what clients resolve)."""
        assert self.dr is not None
        records = self.dr.client("route53").list_resource_record_sets(HostedZoneId=self.zone[0])
        for record in records["ResourceRecordSets"]:
            if record.get("Failover") == "PRIMARY":
                return str(record["ResourceRecords"][0]["Value"])
        raise LookupError("no PRIMARY record")

    def stop(self) -> None:
        if self.replicator is not None:
            self.replicator.stop()
        for running in reversed(self._running):
            with contextlib.suppress(Exception):
                running.stop()
        self._running.clear()
        for api in self.apis.values():
            with contextlib.suppress(Exception):
                api.stop()
        for node in self.nodes.values():
            with node, contextlib.suppress(Exception):  # leaving ``node`` kills what SIGTERM did not stop
                node.terminate(timeout=10)
        if self._uninstall_agent is not None:
            self._uninstall_agent()
        for stack in (self.primary, self.dr):
            if stack is not None:
                stack.close()


@dataclass(frozen=True)
class _Port:
    """A node that does not run yet, by the port it will serve on."""

    port: int


class _LiveClients:
    """A region's trader clients, looked up on each use (the region's API may restart)."""

    def __init__(self, session: DrillSession, region: str) -> None:
        self.session, self.region = session, region

    def __getitem__(self, user: str) -> Any:
        api = self.session.apis.get(self.region)
        return _Down() if api is None else api.clients[user]


class _Down:
    """The client of a region whose API is down: every call is a refused connection."""

    def submit_order(self, *args: Any, **kwargs: Any) -> Any:
        raise requests.ConnectionError("the region's API is down")
