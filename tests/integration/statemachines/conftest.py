"""moto server (state machines executing, real handlers in-process), matching nodes, SQS taps."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from meridian_local.drills.drill_keys import node_keys_file
from meridian_local.endpoint.moto_server import MotoServer

STARTUP_PREFIX = "meridian-hotpath ready"

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def moto() -> Iterator[MotoServer]:
    logging.getLogger("moto").setLevel(logging.CRITICAL)  # failing states log their stack traces
    with MotoServer() as server:
        yield server


class Node:
    """A matching node process (``python -m meridian_hotpath serve``) on a free loopback port."""

    def __init__(self, data_dir: Path, open_port: bool = False) -> None:
        self.data_dir = data_dir
        # The DR world's nodes ask for the drill's session keys (its integrity check logs on); an
        # open port serves the order-flow tests, whose functions are given no key.
        auth = ["--no-auth"] if open_port else ["--auth-keys-file", str(node_keys_file())]
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "meridian_hotpath",
                "serve",
                "--data-dir",
                str(data_dir),
                "--port",
                "0",
                *auth,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line.startswith(STARTUP_PREFIX):
            self.process.kill()
            raise RuntimeError(f"node did not start: {line!r}")
        fields = dict(part.split("=", 1) for part in line.split()[2:])
        self.port = int(fields["port"])
        self.address = f"127.0.0.1:{self.port}"

    def routes(self) -> str:
        return json.dumps({"default": self.address})

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


@pytest.fixture
def start_node() -> Iterator[Any]:
    nodes: list[Node] = []

    def start(data_dir: Path, open_port: bool = False) -> Node:
        node = Node(data_dir, open_port)
        nodes.append(node)
        return node

    yield start
    for node in nodes:
        node.stop()


class Tap:
    """An SQS queue subscribed to a topic or an event bus rule: what the runbook announced."""

    def __init__(self, sqs: Any, url: str) -> None:
        self.sqs, self.url = sqs, url

    def messages(self, wait: float = 10.0, at_least: int = 1) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            batch = self.sqs.receive_message(QueueUrl=self.url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
            found += [json.loads(m["Body"]) for m in batch.get("Messages", [])]
            if len(found) >= at_least:
                break
            time.sleep(0.05)
        return found


def tap_topic(stack: Any, topic_arn: str) -> Tap:
    sqs = stack.client("sqs")
    url = sqs.create_queue(QueueName=f"tap-{topic_arn.rsplit(':', 1)[1]}")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    stack.client("sns").subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=arn)
    return Tap(sqs, url)


def tap_bus(stack: Any, pattern: dict[str, Any]) -> Tap:
    sqs, events = stack.client("sqs"), stack.client("events")
    bus = stack.parameters["EventBusName"]
    name = f"tap-{bus}-{abs(hash(json.dumps(pattern, sort_keys=True))) % 10**8}"
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name=name, EventBusName=bus, EventPattern=json.dumps(pattern))
    events.put_targets(Rule=name, EventBusName=bus, Targets=[{"Id": "tap", "Arn": arn}])
    return Tap(sqs, url)
