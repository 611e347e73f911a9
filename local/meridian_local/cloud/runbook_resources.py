"""The resources the runbooks (and the DR drill's two regions) need, created in moto from
template.yaml's own declarations: tables (a global table in every replica region), queues, SSM
parameters and EventBridge rules.

moto's EventBridge delivers to SQS, logs and event buses itself; a rule target it cannot reach (a
state machine) gets a bridge queue instead, and :class:`RuleDelivery` forwards what arrives there
to the real target with the target's own settings, as EventBridge would.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from meridian_local.cloud.intrinsics import Resolver
from meridian_local.delivery.pollers import PollingThread, SqsPoller
from meridian_local.delivery.rule_targets import forwarder

Clients = Callable[[str, str | None], Any]  # (service, region or None for the stack's)
MOTO_TARGETS = ("sqs", "events", "logs")


@dataclass
class GlobalTable:
    """A table the template declares global: its name and the regions holding a replica."""

    logical_id: str
    name: str
    regions: tuple[str, ...]


@dataclass
class Bridge:
    rule: str
    queue_url: str
    target: dict[str, Any]


@dataclass
class Created:
    """What the creators made, by logical id (refs, attributes) and what needs delivering."""

    refs: dict[str, Any] = field(default_factory=dict)
    attributes: dict[tuple[str, str], Any] = field(default_factory=dict)
    global_tables: list[GlobalTable] = field(default_factory=list)
    bridges: list[Bridge] = field(default_factory=list)


def _table_args(props: Mapping[str, Any]) -> dict[str, Any]:
    args: dict[str, Any] = {k: props[k] for k in ("TableName", "KeySchema", "AttributeDefinitions")}
    if props.get("GlobalSecondaryIndexes"):
        args["GlobalSecondaryIndexes"] = [
            {k: v for k, v in index.items() if k in ("IndexName", "KeySchema", "Projection")}
            for index in props["GlobalSecondaryIndexes"]
        ]
    if props.get("StreamSpecification"):
        args["StreamSpecification"] = {"StreamEnabled": True, **props["StreamSpecification"]}
    return args


def create_table(
    client: Clients, logical_id: str, props: Mapping[str, Any], kind: str, region: str, created: Created
) -> None:
    """A table; a global table in its own region and in every other region of its replicas."""
    regions = [region]
    if kind == "AWS::DynamoDB::GlobalTable":
        regions += [str(r["Region"]) for r in props.get("Replicas", []) if str(r["Region"]) != region]
        created.global_tables.append(GlobalTable(logical_id, str(props["TableName"]), tuple(regions)))
    for where in regions:
        description = client("dynamodb", where).create_table(
            BillingMode="PAY_PER_REQUEST", **_table_args(props)
        )["TableDescription"]
        if where == region:
            created.refs[logical_id] = props["TableName"]
            created.attributes[(logical_id, "Arn")] = description["TableArn"]


def create_replica(client: Clients, props: Mapping[str, Any], region: str) -> str:
    """The replica a primary's global table has in ``region`` (where no primary stack was built)."""
    client("dynamodb", region).create_table(BillingMode="PAY_PER_REQUEST", **_table_args(props))
    return str(props["TableName"])


def create_queue(client: Clients, logical_id: str, props: Mapping[str, Any], created: Created) -> None:
    sqs = client("sqs", None)
    url = sqs.create_queue(QueueName=props["QueueName"])["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    created.refs[logical_id] = url
    created.attributes[(logical_id, "Arn")] = arn
    created.attributes[(logical_id, "QueueName")] = props["QueueName"]


def create_parameter(client: Clients, logical_id: str, props: Mapping[str, Any], created: Created) -> None:
    args = {k: props[k] for k in ("Name", "Type", "Value", "Description", "AllowedPattern") if k in props}
    client("ssm", None).put_parameter(**args)
    created.refs[logical_id] = props["Name"]


def create_rule(client: Clients, logical_id: str, props: Mapping[str, Any], created: Created) -> None:
    events = client("events", None)
    bus = props.get("EventBusName", "default")
    pattern = props["EventPattern"]
    arn = events.put_rule(
        Name=props["Name"],
        EventBusName=bus,
        EventPattern=pattern if isinstance(pattern, str) else json.dumps(pattern),
        State=props.get("State", "ENABLED"),
    )["RuleArn"]
    targets = []
    for target in props.get("Targets", []):
        service = str(target["Arn"]).split(":")[2]
        if service in MOTO_TARGETS:
            targets.append({k: v for k, v in target.items() if k in ("Id", "Arn", "Input", "InputPath")})
            continue
        sqs = client("sqs", None)
        url = sqs.create_queue(QueueName=f"bridge-{props['Name']}-{target['Id']}"[:80])["QueueUrl"]
        bridge_arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        targets.append({"Id": target["Id"], "Arn": bridge_arn})
        created.bridges.append(Bridge(str(props["Name"]), url, dict(target)))
    events.put_targets(Rule=props["Name"], EventBusName=bus, Targets=targets)
    created.refs[logical_id] = props["Name"]
    created.attributes[(logical_id, "Arn")] = arn


class RuleDelivery:
    """Forwards the bridged rule targets (state machines) in the background, until :meth:`stop`."""

    def __init__(self, client: Clients, bridges: list[Bridge]) -> None:
        sqs = client("sqs", None)
        pollers = [
            SqsPoller(
                sqs,
                bridge.queue_url,
                forwarder(bridge.target, lambda service: client(service, None)),
                retry_visibility_s=1,
                function_name=f"rule:{bridge.rule}",
            )
            for bridge in bridges
        ]
        self._thread = PollingThread(pollers, idle_sleep_s=0.05, max_idle_sleep_s=0.2)
        self._thread.start()

    def stop(self) -> None:
        self._thread.stop()


def resolved(resolver: Resolver, resource: Mapping[str, Any]) -> dict[str, Any] | None:
    """The resource's properties, or None when its condition is false."""
    if "Condition" in resource and not resolver.condition(resource["Condition"]):
        return None
    props: dict[str, Any] = resolver.resolve(resource.get("Properties", {}))
    return props
