"""Event delivery of the local platform, in a process of its own: what Lambda's event source
mappings, EventBridge's rule targets and Firehose's Kinesis source do.

    python -m meridian_local.delivery.service --spec <state>/delivery.json

The spec (written by ``LocalPlatform`` from the provisioned stacks) lists the SQS and Kinesis event
source mappings with their functions, the rule targets moto cannot deliver (bridge queues) and the
Kinesis-sourced Firehose streams. The mapped functions run here, in-process, one invocation at a
time (as one Lambda container each): imported and run with their own environment, their JSON logs
and EMF metrics going to the log file the spec names. The terminal gets one line per notable event
(a failed batch, a batch given to its on-failure destination). Prints ``meridian-delivery ready``
once polling.
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

from meridian_local.delivery.function_logs import FunctionLogs
from meridian_local.delivery.lambda_adapter import (
    FunctionSource,
    Handler,
    LambdaContext,
    import_handler,
    invocation_environment,
    run_handler,
    thread_local_environ,
)
from meridian_local.delivery.pollers import KinesisPoller, Poller, PollingThread, SqsPoller, sqs_destination
from meridian_local.delivery.rule_targets import forwarder
from meridian_local.endpoint.aws import aws_client

READY_PREFIX = "meridian-delivery ready"
ACCOUNT = "123456789012"
REGION = "us-east-1"
Say = Callable[[str], None]


class Container:
    """One function's handler, imported and invoked with the function's own environment."""

    def __init__(self, name: str, spec: dict[str, Any], endpoint: str, say: Say) -> None:
        self.name, self.say = name, say
        self.source = FunctionSource(
            spec["logical_id"], spec["handler"], Path(spec["code_dir"]), timeout=int(spec.get("timeout", 3))
        )
        self.environment = invocation_environment(
            spec["environment"], name, REGION, endpoint, spec["handler"]
        )
        self._handler: Handler | None = None

    def handler(self) -> Handler:
        if self._handler is None:  # imported under its environment, as Lambda imports it
            with thread_local_environ().overlaid(self.environment):
                self._handler = import_handler(self.name, self.source)
        return self._handler

    def __call__(self, event: dict[str, Any], context: Any = None) -> Any:
        lambda_context = LambdaContext(
            function_name=self.name,
            memory_limit_in_mb=128,
            invoked_function_arn=f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{self.name}",
            timeout_s=self.source.timeout,
            log_group_name=f"/aws/lambda/{self.name}",
        )
        payload, errored, _ = run_handler(self.handler(), event, self.environment, lambda_context)
        result = json.loads(payload or "null")
        if errored:
            self.say(
                f"{self.name}: invocation failed: {result.get('errorType')}: {result.get('errorMessage')}"
            )
            raise RuntimeError(f"{self.name} failed: {result.get('errorMessage')}")
        failures = result.get("batchItemFailures") if isinstance(result, dict) else None
        if failures:
            self.say(
                f"{self.name}: {len(failures)} record(s) of the batch failed; they come back for a retry"
            )
        return result


def firehose_forwarder(firehose: Any, delivery_stream: str) -> Callable[[dict[str, Any], Any], Any]:
    """What a Kinesis-sourced delivery stream does: read the stream, de-aggregate KPL records (as
    Firehose does), deliver the user records."""
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


def _on_failure(sqs: Any, queue_url: str | None, name: str, say: Say) -> Callable[[dict[str, Any]], None]:
    send = sqs_destination(sqs, queue_url) if queue_url else None

    def sent(description: dict[str, Any]) -> None:
        say(f"{name}: retries exhausted; a batch went to its on-failure destination")
        if send is not None:
            send(description)

    return sent


def build_pollers(spec: dict[str, Any], say: Say) -> list[Poller]:
    endpoint = spec["aws_endpoint"]
    sqs, kinesis = aws_client("sqs", endpoint), aws_client("kinesis", endpoint)
    containers = {name: Container(name, f, endpoint, say) for name, f in spec["functions"].items()}
    pollers: list[Poller] = []
    for mapping in spec["sqs"]:
        pollers.append(
            SqsPoller(
                sqs,
                mapping["queue_url"],
                containers[mapping["function"]],
                batch_size=min(int(mapping["batch_size"]), 10),
                report_batch_item_failures=bool(mapping["report_batch_item_failures"]),
                retry_visibility_s=1,
                function_name=mapping["function"],
            )
        )
    for mapping in spec["kinesis"]:
        pollers.append(
            KinesisPoller(
                kinesis,
                mapping["stream"],
                containers[mapping["function"]],
                batch_size=int(mapping["batch_size"]),
                function_name=mapping["function"],
                on_failure=_on_failure(sqs, mapping.get("on_failure_queue_url"), mapping["function"], say),
                bisect_on_error=bool(mapping["bisect_on_error"]),
                max_retries=int(mapping["max_retries"]),
            )
        )
    clients: dict[str, Any] = {}

    def client(service: str) -> Any:
        if service not in clients:
            clients[service] = aws_client(service, endpoint)
        return clients[service]

    for bridge in spec["bridges"]:
        pollers.append(
            SqsPoller(
                sqs,
                bridge["queue_url"],
                forwarder(bridge["target"], client),
                retry_visibility_s=1,
                function_name=f"rule:{bridge['rule']}",
            )
        )
    for hose in spec["firehoses"]:
        pollers.append(
            KinesisPoller(
                kinesis,
                hose["stream"],
                firehose_forwarder(client("firehose"), hose["delivery_stream"]),
                batch_size=500,
                function_name=f"firehose:{hose['delivery_stream']}",
            )
        )
    return pollers


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m meridian_local.delivery.service", description=__doc__)
    parser.add_argument("--spec", type=Path, required=True)
    args = parser.parse_args(argv)
    spec = json.loads(args.spec.read_text())
    logs = FunctionLogs(Path(spec["log_file"])).install()
    logging.basicConfig(level=logging.WARNING, stream=logs.terminal, format="[delivery] %(message)s")
    thread_local_environ()  # before any boto3 session: each invocation reads its own variables

    def say(line: str) -> None:
        logs.say(f"[delivery] {line}")

    polling = PollingThread(build_pollers(spec, say), idle_sleep_s=0.05, max_idle_sleep_s=1.0)
    stopped = threading.Event()

    def stop(signum: int, frame: FrameType | None) -> None:
        stopped.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    polling.start()
    logs.say(READY_PREFIX)
    stopped.wait()
    polling.stop(timeout=float(spec.get("stop_timeout_s", 30)))
    logs.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
