"""The local platform: every moving part of Meridian on one machine, wired as in AWS.

``LocalPlatform.start`` brings up, with one progress line per step: the AWS endpoint (moto server in
a process of its own, running state machines and the Lambda handlers they call), PostgreSQL, the
resources ``template.yaml`` declares, the ledger migrations (through the template's custom
resource), the matching shard (a primary and its hot standby in ``--ack-after replica``, the lease
in the template's lease table: kill -9 the primary and the standby takes over), event delivery (SQS
and Kinesis event source mappings, rule targets and Firehose from Kinesis: a process running the
mapped functions) and the REST API (workers on one socket, each the local API Gateway with the real
``orders_api`` function, one request at a time).

As in AWS, these are separate processes: the endpoint, the API's workers and the delivery share no
interpreter, so no one of them waits on another's GIL. The functions' JSON logs and EMF metrics go
to files under ``<state dir>/logs``, one per component; the terminal gets one line per request and
per notable event.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from meridian_hotpath.process import NodeProcess
from meridian_local import prometheus
from meridian_local.cloud import custom_resources
from meridian_local.cloud.provision import Provisioner
from meridian_local.cloud.sam_env import env_vars
from meridian_local.cloud.stack_model import LocalFunction, Stack
from meridian_local.endpoint import moto_server
from meridian_local.endpoint.aws import aws_client
from meridian_local.preflight import InstanceLock, PreflightError, check_ports, free_port, port_is_free
from meridian_local.processes import ChildProcess
from meridian_local.settings import HOST, Endpoints, PlatformConfig, Say
from meridian_local.shard import NODE_SHARDS, LocalShards

DELIVERY_STOP_TIMEOUT_S = 60.0  # the longest a delivery round may take to finish at shutdown
# Retries of a failing stream batch here (at most the mapping's own): polling is immediate locally.
LOCAL_MAX_RETRIES = 5
STEPS = 8  # the steps start() reports


@dataclass
class LocalPlatform:
    config: PlatformConfig = field(default_factory=PlatformConfig)
    say: Say = print
    endpoints: Endpoints = field(default_factory=Endpoints)
    stack: Stack | None = None
    _lock: InstanceLock | None = None
    _moto: ChildProcess | None = None
    _pg: Any = None
    _shards: LocalShards | None = None
    _delivery: ChildProcess | None = None
    _prometheus: ChildProcess | None = None
    _api: Any = None
    _gateway: Any = None
    _steps: int = 0

    # ---- lifecycle ----------------------------------------------------------------------------

    def start(self) -> float:
        """Start everything; return the seconds it took. On failure, stop what started and raise."""
        started = time.perf_counter()
        self._lock = InstanceLock(self.config.state_dir / "run.lock")
        self._lock.acquire()
        try:
            if self.config.shards not in (1, 2):
                raise PreflightError(f"MERIDIAN_SHARDS must be 1 or 2, got {self.config.shards}")
            check_ports(
                HOST,
                {
                    "REST API": (self.config.api_port, "MERIDIAN_API_PORT"),
                    "AWS endpoint": (self.config.aws_port, "MERIDIAN_AWS_PORT"),
                    "matching node": (self.config.node_port, "MERIDIAN_NODE_PORT"),
                    "node metrics": (self.config.metrics_port, "MERIDIAN_METRICS_PORT"),
                    **(
                        {
                            "standby node": (self.config.standby_port, "MERIDIAN_STANDBY_PORT"),
                            "standby metrics": (
                                self.config.standby_metrics_port,
                                "MERIDIAN_STANDBY_METRICS_PORT",
                            ),
                        }
                        if self.config.standby
                        else {}
                    ),
                    "streaming gateway": (self.config.gateway_port, "MERIDIAN_GATEWAY_PORT"),
                },
            )
            self._fresh_state()
            with self._step("AWS endpoint (moto server)"):
                self._start_moto()
            with self._step("PostgreSQL"):
                self._start_postgres()
            with self._step("resources declared in template.yaml"):
                self._provision()
            with self._step("custom resources (ledger migrations)"):
                self._run_custom_resources()
            with self._step("matching shard"):
                self._start_shard()
            with self._step("event delivery (SQS, Kinesis, Firehose)"):
                self._start_delivery()
            if prometheus.binary() is not None:
                self._start_prometheus()
            with self._step("REST API"):
                self._start_api()
            with self._step("streaming gateway"):
                self._start_gateway()
        except BaseException:
            self.stop()
            raise
        self.endpoints_file.write_text(json.dumps(asdict(self.endpoints), indent=2))
        if self.stack is not None:
            self.env_vars_file.write_text(json.dumps(env_vars(self.stack, self.endpoints.aws), indent=2))
        return time.perf_counter() - started

    @property
    def env_vars_file(self) -> Path:
        """``sam local invoke --env-vars`` against this platform (``sam_env``)."""
        return self.config.state_dir / "env.json"

    @property
    def endpoints_file(self) -> Path:
        """Where a running platform tells other commands (``make demo``) how to reach it."""
        return self.config.state_dir / "endpoints.json"

    @property
    def credentials_file(self) -> Path:
        return self.config.state_dir / "credentials.json"

    def stop(self) -> None:
        stops = (self._stop_gateway, self._stop_api, self._stop_prometheus, self._stop_delivery)
        for action in (*stops, self._stop_nodes, self._stop_moto, self._stop_pg):
            try:
                action()
            except Exception as exc:  # keep stopping the rest
                self.say(f"  (while stopping: {exc!r})")
        self.endpoints_file.unlink(missing_ok=True)
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    @contextmanager
    def _step(self, name: str) -> Iterator[None]:
        self._steps += 1
        began = time.perf_counter()
        self.say(f"[{self._steps}/{STEPS}] {name} ...")
        yield
        took = time.perf_counter() - began
        self.say(f"[{self._steps}/{STEPS}] {name}: ready in {took:.1f} s {self._detail(name)}")

    def _detail(self, name: str) -> str:
        e = self.endpoints
        details = {
            "AWS endpoint (moto server)": e.aws,
            "PostgreSQL": e.database_url.split("?")[0],
            "matching shard": f"primary {e.node} (metrics {e.metrics})"
            + (f", standby {e.standby} (metrics {e.standby_metrics})" if e.standby else ""),
            "REST API": f"{e.api} ({self.config.api_workers} workers; Swagger UI {e.api}/docs, "
            f"dashboard {e.api}/dashboard)",
            "event delivery (SQS, Kinesis, Firehose)": f"(functions' logs: {self.logs_dir / 'delivery.log'})",
            "streaming gateway": e.gateway,
        }
        if name.startswith("resources") and self.stack is not None:
            created = sum(len(s.created) for s in self.stack.all_stacks())
            skipped = sum(len(s.skipped) for s in self.stack.all_stacks())
            return f"({created} created; {skipped} need real AWS and are skipped: VPC, fleet, WAF, ...)"
        return f"({details[name]})" if details.get(name) else ""

    @property
    def logs_dir(self) -> Path:
        return self.config.state_dir / "logs"

    def _fresh_state(self) -> None:
        # moto keeps nothing between runs, so the node's journal and the database start empty too.
        for leftover in ("node", "node.log", "logs", *NODE_SHARDS, *(f"{n}.log" for n in NODE_SHARDS)):
            path = self.config.state_dir / leftover
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()

    # ---- components -----------------------------------------------------------------------------

    def _start_moto(self) -> None:
        # Functions the endpoint runs (state machine tasks, SNS subscriptions, custom resources) are
        # found by the logical id the provisioner tags them with.
        self.endpoints.logs = str(self.logs_dir)
        args = ["--port", str(self.config.aws_port), "--host", HOST, "--template", str(self.config.template)]
        self._moto = ChildProcess.start(
            "aws-endpoint",
            "meridian_local.endpoint.moto_server",
            [*args, "--log-file", str(self.logs_dir / "aws-endpoint-functions.log")],
            moto_server.READY_PREFIX,
            self.say,
            env=self.child_environment(),
        )
        self.endpoints.aws = self._moto.ready_line.split()[-1]
        os.environ["AWS_ENDPOINT_URL"] = self.endpoints.aws
        os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

    def child_environment(self) -> dict[str, str]:
        """What every child process of the platform runs with."""
        runtime = self.config.state_dir / "runtime"
        runtime.mkdir(parents=True, exist_ok=True, mode=0o700)
        return {
            "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local",
            "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
            "XDG_RUNTIME_DIR": str(runtime),
        }

    def _stop_moto(self) -> None:
        if self._moto is not None:
            self._moto.stop()
            self._moto = None

    def _start_postgres(self) -> None:
        if self.config.database_url:
            self.endpoints.database_url = self.config.database_url
            return
        # platformdirs (under pgserver) wants the per-user runtime folder Linux sessions provide.
        os.environ.setdefault("XDG_RUNTIME_DIR", self.child_environment()["XDG_RUNTIME_DIR"])
        from pgserver.postgres_server import get_server  # noqa: PLC0415 - only without DATABASE_URL

        pgdata = self.config.state_dir / "pgdata"
        if pgdata.exists():
            shutil.rmtree(pgdata)
        self._pg = get_server(pgdata, cleanup_mode="stop")
        self.endpoints.database_url = str(self._pg.get_uri())

    def _stop_pg(self) -> None:
        if self._pg is not None:
            self._pg.cleanup()
            self._pg = None

    def client(self, service: str) -> Any:
        return aws_client(service, self.endpoints.aws)

    def function(self, logical_id: str) -> LocalFunction:
        """The provisioned function declared as ``logical_id`` in the template."""
        assert self.stack is not None
        for stack in self.stack.all_stacks():
            for function in stack.functions.values():
                if function.logical_id == logical_id:
                    return function
        raise LookupError(f"template.yaml declares no function {logical_id}")

    def _provision(self) -> None:
        provisioner = Provisioner(self.endpoints.aws)
        self.stack = provisioner.provision(self.config.template, {"Environment": self.config.environment})
        self._override_function_environment(
            {
                "DATABASE_URL": self.endpoints.database_url,
                # The node's address once it listens (_start_node); a port of 0 is only known then.
                "MERIDIAN_ROUTES": json.dumps({"default": f"{HOST}:{self.config.node_port}"}),
                "MERIDIAN_ROUTES_PARAMETER": "",
                "POWERTOOLS_TRACE_DISABLED": "true",
                # JSON logs and EMF metrics as in Lambda; they go to the components' log files.
                "POWERTOOLS_LOG_LEVEL": "INFO",
                "AWS_ENDPOINT_URL": self.endpoints.aws,
            }
        )

    def _override_function_environment(self, overrides: dict[str, str]) -> None:
        """Set ``overrides`` in every provisioned function's environment, here and in moto."""
        assert self.stack is not None
        lambda_client = self.client("lambda")
        for stack in self.stack.all_stacks():
            for function in stack.functions.values():
                function.environment.update(overrides)
                lambda_client.update_function_configuration(
                    FunctionName=function.name, Environment={"Variables": function.environment}
                )

    def _run_custom_resources(self) -> None:
        assert self.stack is not None
        lambda_client = self.client("lambda")
        for stack in self.stack.all_stacks():
            for resource in stack.custom_resources:
                custom_resources.create(lambda_client, resource, f"local/{stack.name}")

    def _stream(self, logical_id: str) -> str | None:
        """The provisioned name of the Kinesis stream ``logical_id`` of the template, if any."""
        assert self.stack is not None
        return self.stack.stream(logical_id)

    @property
    def shards(self) -> LocalShards:
        """The matching shards (``shard``), once the platform started them."""
        if self._shards is None:
            raise RuntimeError("the matching shards have not started")
        return self._shards

    @property
    def nodes(self) -> dict[str, NodeProcess]:
        """The matching nodes by name (``NODE_NAMES``): none before the shards start."""
        return self._shards.nodes if self._shards is not None else {}

    def _start_shard(self) -> None:
        assert self.stack is not None
        self._shards = LocalShards(self.config, self.endpoints, self.stack, self.client)
        self._override_function_environment({"MERIDIAN_ROUTES": json.dumps(self._shards.start())})

    def _stop_nodes(self) -> None:
        if self._shards is not None:
            self._shards.stop()

    def _start_delivery(self) -> None:
        spec_file = self.config.state_dir / "delivery.json"
        spec_file.write_text(json.dumps(self._delivery_spec(), indent=2))
        self._delivery = ChildProcess.start(
            "delivery",
            "meridian_local.delivery.service",
            ["--spec", str(spec_file)],
            "meridian-delivery ready",
            self.say,
            env=self.child_environment(),
        )

    def _delivery_spec(self) -> dict[str, Any]:
        """What the delivery process polls and which functions it runs (see ``delivery``)."""
        assert self.stack is not None
        queue_urls = {
            s.attributes[(lid, "Arn")]: s.refs[lid]
            for s in self.stack.all_stacks()
            for lid, kind in s.created.items()
            if kind == "AWS::SQS::Queue"
        }
        spec: dict[str, Any] = {
            "aws_endpoint": self.endpoints.aws,
            "log_file": str(self.logs_dir / "delivery.log"),
            "stop_timeout_s": DELIVERY_STOP_TIMEOUT_S,
            "functions": {},
            "sqs": [],
            "kinesis": [],
            "bridges": [],
            "firehoses": [],
        }
        for stack in self.stack.all_stacks():
            for function in stack.functions.values():
                spec["functions"][function.name] = {
                    "logical_id": function.logical_id,
                    "handler": function.handler,
                    "code_dir": str(function.code_dir),
                    "environment": function.environment,
                    "timeout": function.timeout,
                }
            for mapping in stack.mappings:
                if mapping.source_arn in queue_urls:
                    spec["sqs"].append(
                        {
                            "queue_url": queue_urls[mapping.source_arn],
                            "function": mapping.function,
                            "batch_size": mapping.batch_size,
                            "report_batch_item_failures": mapping.report_batch_item_failures,
                        }
                    )
                elif ":kinesis:" in mapping.source_arn:
                    spec["kinesis"].append(
                        {
                            "stream": mapping.source_arn.rsplit("/", 1)[-1],
                            "function": mapping.function,
                            "batch_size": mapping.batch_size,
                            "on_failure_queue_url": queue_urls.get(mapping.on_failure_arn or ""),
                            "bisect_on_error": mapping.bisect_on_error,
                            "max_retries": _local_retries(mapping.maximum_retry_attempts),
                        }
                    )
            for bridge in stack.bridges:
                spec["bridges"].append(
                    {"queue_url": bridge.queue_url, "target": bridge.target, "rule": bridge.rule}
                )
            for hose in stack.firehoses:
                if hose.source_stream_arn:
                    stream = hose.source_stream_arn.rsplit("/", 1)[-1]
                    spec["firehoses"].append({"stream": stream, "delivery_stream": hose.name})
        return spec

    def _start_prometheus(self) -> None:
        """Prometheus with the repository's configuration and alert rules, scraping the node."""
        binary = prometheus.binary()
        assert binary is not None
        # Debian's package runs its own Prometheus on 9090: then this one takes a free port.
        port = self.config.prometheus_port
        if not port or not port_is_free(HOST, port):
            port = free_port(HOST)
        folder = self.config.state_dir / "prometheus"
        targets = [f"{node.host}:{node.metrics_port}" for node in self.nodes.values() if node.metrics_port]
        config = prometheus.write(folder, *targets)
        args = [
            f"--config.file={config}",
            f"--storage.tsdb.path={folder / 'data'}",
            f"--web.listen-address={HOST}:{port}",
        ]
        self._prometheus = ChildProcess.start(
            "prometheus", "", args, prometheus.READY, lambda line: None, command=[binary]
        )
        self.endpoints.prometheus = f"http://{HOST}:{port}"
        self.say(f"      Prometheus (alert rules of observability/prometheus) at {self.endpoints.prometheus}")

    def _stop_prometheus(self) -> None:
        if self._prometheus is not None:
            self._prometheus.stop(grace=10)
            self._prometheus = None

    def _stop_delivery(self) -> None:
        # Let the round in progress finish before the endpoint stops (a handler stopped halfway
        # would leave its batch to its retry, which is safe, but noisy).
        if self._delivery is not None:
            self._delivery.stop(grace=DELIVERY_STOP_TIMEOUT_S)
            self._delivery = None

    def _start_api(self) -> None:
        from meridian_local.apigateway.api_server import ApiServer  # noqa: PLC0415 - needs the provisioned stack

        assert self.stack is not None
        self._api = ApiServer(self, HOST, self.config.api_port, self.config.api_workers).start()
        self.endpoints.api = f"http://{HOST}:{self._api.port}"  # the bound port (0 lets the OS choose)

    def _start_gateway(self) -> None:
        from meridian_local.gateway_server import GatewayServer  # noqa: PLC0415 - needs the provisioned stack

        environment = self.function("OrdersApiFunction").environment
        server = GatewayServer(
            self,
            HOST,
            self.config.gateway_port,
            self._stream("MarketDataStream"),
            environment["EVENT_BUS_NAME"],
        )
        self._gateway = server.start(environment["PRINCIPALS_TABLE"])
        self.endpoints.gateway = f"ws://{HOST}:{self._gateway.port}/stream"

    def _stop_gateway(self) -> None:
        if self._gateway is not None:
            self._gateway.stop()
            self._gateway = None

    def _stop_api(self) -> None:
        if self._api is not None:
            self._api.stop()
            self._api = None


def _local_retries(maximum_retry_attempts: int | None) -> int:
    """A stream mapping's retries here: its own, at most LOCAL_MAX_RETRIES (-1/None: until expiry)."""
    if maximum_retry_attempts is None or maximum_retry_attempts < 0:
        return LOCAL_MAX_RETRIES
    return min(maximum_retry_attempts, LOCAL_MAX_RETRIES)
