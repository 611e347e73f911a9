"""The local platform: every moving part of Meridian on one machine, wired as in AWS.

``LocalPlatform.start`` brings up, with one progress line per step: moto server (the AWS endpoint,
running state machines and the real Lambda handlers in-process), PostgreSQL, the resources
``template.yaml`` declares, the ledger migrations (through the template's custom resource), the
matching node, event delivery (SQS and Kinesis event source mappings, Firehose from Kinesis) and
the REST API serving the real ``orders_api`` handler.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from meridian_hotpath.process import NodeProcess
from meridian_local import custom_resources
from meridian_local.aws import aws_client
from meridian_local.lambda_adapter import FunctionSource, HandlerRegistry
from meridian_local.moto_server import MotoServer
from meridian_local.pollers import KinesisPoller, Poller, PollingThread, SqsPoller, sqs_destination
from meridian_local.preflight import InstanceLock, check_ports
from meridian_local.provision import Provisioner
from meridian_local.rule_targets import forwarder
from meridian_local.sam_template import REPO_ROOT, ROOT_TEMPLATE
from meridian_local.stack_model import LocalFunction, Stack

HOST = "127.0.0.1"
DELIVERY_STOP_TIMEOUT_S = 60.0  # the longest a delivery round may take to finish at shutdown
NODE_NUMBER = 1  # the template's HotpathNodeNumber default
# Retries of a failing stream batch here (at most the mapping's own): polling is immediate locally.
LOCAL_MAX_RETRIES = 5
STEPS = 8  # the steps start() reports
Say = Callable[[str], None]


@dataclass
class PlatformConfig:
    state_dir: Path = Path(os.environ.get("MERIDIAN_STATE_DIR", str(REPO_ROOT / ".local-platform")))
    api_port: int = int(os.environ.get("MERIDIAN_API_PORT", "3000"))
    aws_port: int = int(os.environ.get("MERIDIAN_AWS_PORT", "4566"))
    node_port: int = int(os.environ.get("MERIDIAN_NODE_PORT", "9001"))
    metrics_port: int = int(os.environ.get("MERIDIAN_METRICS_PORT", "9101"))
    gateway_port: int = int(os.environ.get("MERIDIAN_GATEWAY_PORT", "8765"))
    database_url: str = os.environ.get("DATABASE_URL", "")
    template: Path = ROOT_TEMPLATE
    environment: str = "dev"


@dataclass
class Endpoints:
    aws: str = ""
    api: str = ""
    database_url: str = ""
    node: str = ""
    metrics: str = ""
    gateway: str = ""


@dataclass
class LocalPlatform:
    config: PlatformConfig = field(default_factory=PlatformConfig)
    say: Say = print
    endpoints: Endpoints = field(default_factory=Endpoints)
    stack: Stack | None = None
    _lock: InstanceLock | None = None
    _moto: MotoServer | None = None
    _registry: HandlerRegistry = field(default_factory=HandlerRegistry)
    _pg: Any = None
    _node: NodeProcess | None = None
    _pollers: PollingThread | None = None
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
            check_ports(
                HOST,
                {
                    "REST API": (self.config.api_port, "MERIDIAN_API_PORT"),
                    "AWS endpoint": (self.config.aws_port, "MERIDIAN_AWS_PORT"),
                    "matching node": (self.config.node_port, "MERIDIAN_NODE_PORT"),
                    "node metrics": (self.config.metrics_port, "MERIDIAN_METRICS_PORT"),
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
            with self._step("matching node"):
                self._start_node()
            with self._step("event delivery (SQS, Kinesis, Firehose)"):
                self._start_delivery()
            with self._step("REST API"):
                self._start_api()
            with self._step("streaming gateway"):
                self._start_gateway()
        except BaseException:
            self.stop()
            raise
        self.endpoints_file.write_text(json.dumps(asdict(self.endpoints), indent=2))
        return time.perf_counter() - started

    @property
    def endpoints_file(self) -> Path:
        """Where a running platform tells other commands (``make demo``) how to reach it."""
        return self.config.state_dir / "endpoints.json"

    @property
    def credentials_file(self) -> Path:
        return self.config.state_dir / "credentials.json"

    def stop(self) -> None:
        for action in (
            self._stop_gateway,
            self._stop_api,
            self._stop_delivery,
            self._stop_node,
            self._stop_moto,
            self._stop_pg,
        ):
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
            "matching node": f"{e.node} (metrics {e.metrics})",
            "REST API": f"{e.api} (Swagger UI {e.api}/docs)",
            "streaming gateway": e.gateway,
        }
        if name.startswith("resources") and self.stack is not None:
            created = sum(len(s.created) for s in self.stack.all_stacks())
            skipped = sum(len(s.skipped) for s in self.stack.all_stacks())
            return f"({created} created; {skipped} need real AWS and are skipped: VPC, fleet, WAF, ...)"
        return f"({details[name]})" if details.get(name) else ""

    def _fresh_state(self) -> None:
        # moto keeps nothing between runs, so the node's journal and the database start empty too.
        for leftover in ("node", "node.log"):
            path = self.config.state_dir / leftover
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()

    # ---- components -----------------------------------------------------------------------------

    def _start_moto(self) -> None:
        # Functions are bound to their handlers as they are provisioned (see _provision).
        self._registry = HandlerRegistry()
        self._moto = MotoServer(
            port=self.config.aws_port, host=HOST, template=self.config.template, registry=self._registry
        ).start()
        self.endpoints.aws = self._moto.endpoint_url
        os.environ["AWS_ENDPOINT_URL"] = self._moto.endpoint_url
        os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

    def _stop_moto(self) -> None:
        if self._moto is not None:
            self._moto.stop()
            self._moto = None

    def _start_postgres(self) -> None:
        if self.config.database_url:
            self.endpoints.database_url = self.config.database_url
            return
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
        for stack in self.stack.all_stacks():
            for function in stack.functions.values():
                self._registry.bind(
                    function.name,
                    FunctionSource(
                        function.logical_id, function.handler, function.code_dir, timeout=function.timeout
                    ),
                )
        self._override_function_environment(
            {
                "DATABASE_URL": self.endpoints.database_url,
                # The node's address once it listens (_start_node); a port of 0 is only known then.
                "MERIDIAN_ROUTES": json.dumps({"default": f"{HOST}:{self.config.node_port}"}),
                "MERIDIAN_ROUTES_PARAMETER": "",
                "POWERTOOLS_TRACE_DISABLED": "true",
                # No CloudWatch here: keep EMF documents and INFO logs off the console the demo prints to.
                "POWERTOOLS_METRICS_DISABLED": "true",
                "POWERTOOLS_LOG_LEVEL": "WARNING",
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
        for stack in self.stack.all_stacks():
            if stack.created.get(logical_id) == "AWS::Kinesis::Stream":
                return str(stack.refs[logical_id])
        return None

    def _start_node(self) -> None:
        data_dir = self.config.state_dir / "node"
        args = [
            "--port",
            str(self.config.node_port),
            "--metrics-port",
            str(self.config.metrics_port),
            "--host",
            HOST,
        ]
        market_data = self._stream("MarketDataStream")
        if market_data:
            args += ["--kinesis-stream", market_data]
        # The drop copy: the one source of trade.executed.v1, so of the ledger (ExecutionsFunction).
        executions = self._stream("ExecutionsStream")
        if executions:
            args += ["--executions-stream", executions, "--node-number", str(NODE_NUMBER)]
        env = {
            "AWS_ENDPOINT_URL": self.endpoints.aws,
            "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
        self._node = NodeProcess.start(data_dir, *args, log_path=self.config.state_dir / "node.log", env=env)
        self.endpoints.node = f"{self._node.host}:{self._node.port}"
        if self._node.port != self.config.node_port:  # port 0: the OS chose it as the node bound
            routes = json.dumps({"default": self.endpoints.node})
            self._override_function_environment({"MERIDIAN_ROUTES": routes})
        self.endpoints.metrics = f"http://{self._node.host}:{self._node.metrics_port}/metrics"

    def _stop_node(self) -> None:
        if self._node is not None:
            self._node.terminate()
            self._node = None

    def invoker(self, function_name: str) -> Callable[[dict[str, Any], Any], Any]:
        """Call a function through the Lambda endpoint, as an event source mapping does."""
        lambda_client = self.client("lambda")

        def invoke(event: dict[str, Any], context: Any = None) -> Any:
            result = lambda_client.invoke(FunctionName=function_name, Payload=json.dumps(event).encode())
            payload = json.loads(result["Payload"].read() or b"null")
            if result.get("FunctionError"):
                raise RuntimeError(f"{function_name} failed: {payload}")
            return payload

        return invoke

    def _start_delivery(self) -> None:
        assert self.stack is not None
        sqs, kinesis, firehose = self.client("sqs"), self.client("kinesis"), self.client("firehose")
        pollers: list[Poller] = []
        queue_urls = {
            s.attributes[(lid, "Arn")]: s.refs[lid]
            for s in self.stack.all_stacks()
            for lid, kind in s.created.items()
            if kind == "AWS::SQS::Queue"
        }
        for stack in self.stack.all_stacks():
            for mapping in stack.mappings:
                invoke = self.invoker(mapping.function)
                if mapping.source_arn in queue_urls:
                    pollers.append(
                        SqsPoller(
                            sqs,
                            queue_urls[mapping.source_arn],
                            invoke,
                            batch_size=min(mapping.batch_size, 10),
                            report_batch_item_failures=mapping.report_batch_item_failures,
                            retry_visibility_s=1,
                            function_name=mapping.function,
                        )
                    )
                elif ":kinesis:" in mapping.source_arn:
                    on_failure = queue_urls.get(mapping.on_failure_arn or "")
                    pollers.append(
                        KinesisPoller(
                            kinesis,
                            mapping.source_arn.rsplit("/", 1)[-1],
                            invoke,
                            batch_size=mapping.batch_size,
                            function_name=mapping.function,
                            on_failure=sqs_destination(sqs, on_failure) if on_failure else None,
                            bisect_on_error=mapping.bisect_on_error,
                            max_retries=_local_retries(mapping.maximum_retry_attempts),
                        )
                    )
            for bridge in stack.bridges:
                pollers.append(
                    SqsPoller(
                        sqs,
                        bridge.queue_url,
                        forwarder(bridge.target, self.client),
                        retry_visibility_s=1,
                        function_name=f"rule:{bridge.rule}",
                    )
                )
            for hose in stack.firehoses:
                if hose.source_stream_arn:
                    pollers.append(
                        KinesisPoller(
                            kinesis,
                            hose.source_stream_arn.rsplit("/", 1)[-1],
                            _firehose_forwarder(firehose, hose.name),
                            batch_size=500,
                            function_name=f"firehose:{hose.name}",
                        )
                    )
        self._pollers = PollingThread(pollers, idle_sleep_s=0.05, max_idle_sleep_s=1.0)
        self._pollers.start()

    def _stop_delivery(self) -> None:
        # Let the round in progress finish before moto stops: its handlers run inside moto's request
        # threads and call moto again, so stopping moto under them would leave those calls waiting
        # out botocore's read timeout, and moto's shutdown joining the threads that make them.
        if self._pollers is not None:
            self._pollers.stop(timeout=DELIVERY_STOP_TIMEOUT_S)
            if self._pollers.is_alive():
                self.say(
                    f"  (event delivery still busy after {DELIVERY_STOP_TIMEOUT_S:.0f} s; stopping anyway)"
                )
            self._pollers = None

    def _start_api(self) -> None:
        from meridian_local.api_server import ApiServer  # noqa: PLC0415 - needs the provisioned stack

        assert self.stack is not None
        self._api = ApiServer(self, HOST, self.config.api_port).start()
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


def _firehose_forwarder(firehose: Any, delivery_stream: str) -> Callable[[dict[str, Any], Any], Any]:
    """What a Kinesis-sourced delivery stream does: read the stream, de-aggregate KPL records (as
    Firehose does), deliver the user records."""
    import base64  # noqa: PLC0415

    from meridian.kpl import user_records  # noqa: PLC0415

    def forward(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
        records = [
            {"Data": data}
            for r in event["Records"]
            for data in user_records(base64.b64decode(r["kinesis"]["data"]))
        ]
        for start in range(0, len(records), 500):
            response = firehose.put_record_batch(
                DeliveryStreamName=delivery_stream, Records=records[start : start + 500]
            )
            if response.get("FailedPutCount"):
                raise RuntimeError(f"firehose {delivery_stream}: {response['FailedPutCount']} records failed")
        return {"batchItemFailures": []}

    return forward


def _local_retries(maximum_retry_attempts: int | None) -> int:
    """A stream mapping's retries here: its own, at most LOCAL_MAX_RETRIES (-1/None: until expiry)."""
    if maximum_retry_attempts is None or maximum_retry_attempts < 0:
        return LOCAL_MAX_RETRIES
    return min(maximum_retry_attempts, LOCAL_MAX_RETRIES)
