"""What the provisioner stood up: physical ids, attributes, functions and the wiring for delivery."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class LocalFunction:
    logical_id: str
    name: str
    arn: str
    handler: str
    code_dir: Path
    environment: dict[str, str]
    timeout: int


@dataclass
class EventSourceMapping:
    function: str
    source_arn: str
    batch_size: int
    report_batch_item_failures: bool
    batching_window_s: int = 0
    on_failure_arn: str | None = None
    bisect_on_error: bool = False
    maximum_retry_attempts: int | None = None  # None: the mapping's default (retry until expiry)


@dataclass
class CustomResource:
    logical_id: str
    service_token: str
    properties: dict[str, Any]


@dataclass
class Firehose:
    name: str
    source_stream_arn: str | None
    bucket_arn: str
    prefix: str


@dataclass
class RuleBridge:
    """A rule target moto cannot deliver to (Step Functions, Lambda, SNS): the rule sends to
    ``queue_url`` instead and the local platform forwards each event to ``target``."""

    rule: str
    queue_url: str
    target: dict[str, Any]


@dataclass
class Stack:
    """What was provisioned: physical ids, attributes, functions and wiring the pollers need."""

    name: str
    refs: dict[str, Any] = field(default_factory=dict)
    attributes: dict[tuple[str, str], Any] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    created: dict[str, str] = field(default_factory=dict)  # logical id -> type
    skipped: dict[str, str] = field(default_factory=dict)
    functions: dict[str, LocalFunction] = field(default_factory=dict)  # by physical name
    mappings: list[EventSourceMapping] = field(default_factory=list)
    custom_resources: list[CustomResource] = field(default_factory=list)
    firehoses: list[Firehose] = field(default_factory=list)
    bridges: list[RuleBridge] = field(default_factory=list)
    nested: dict[str, Stack] = field(default_factory=dict)

    def all_stacks(self) -> list[Stack]:
        return [self, *(s for child in self.nested.values() for s in child.all_stacks())]

    def ref(self, logical_id: str) -> str | None:
        """What ``Ref`` of the template's ``logical_id`` resolved to, in whichever stack declares it."""
        for stack in self.all_stacks():
            if logical_id in stack.created:
                return str(stack.refs[logical_id])
        return None

    def stream(self, logical_id: str) -> str | None:
        """The provisioned name of the Kinesis stream ``logical_id`` of the template, if any."""
        for stack in self.all_stacks():
            if stack.created.get(logical_id) == "AWS::Kinesis::Stream":
                return str(stack.refs[logical_id])
        return None
