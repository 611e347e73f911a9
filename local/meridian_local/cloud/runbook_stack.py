"""Stand up the runbooks exactly as template.yaml declares them, in moto server.

The template is the source: each state machine's definition file and DefinitionSubstitutions, each
function's handler, code and environment, each table's keys. Intrinsics are resolved against the
resources created here; every stack gets its own ``Environment`` name, so tests never share a table.
Used by the runbook tests and by ``python -m meridian_local drill``.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import boto3

from meridian_local.cloud import custom_resources
from meridian_local.cloud.intrinsics import Resolver, references
from meridian_local.cloud.runbook_resources import (
    Created,
    GlobalTable,
    RuleDelivery,
    create_parameter,
    create_queue,
    create_replica,
    create_rule,
    create_table,
    resolved,
)
from meridian_local.cloud.sam_template import REPO_ROOT
from meridian_local.cloud.stack_model import CustomResource
from meridian_local.delivery import lambda_adapter
from meridian_local.endpoint.aws import LOCAL_CREDENTIALS
from meridian_local.endpoint.moto_server import MotoServer

REPO = REPO_ROOT
ACCOUNT = "123456789012"
TOPICS = (
    "ComplianceApprovalsTopic",
    "OrderFlowNotificationsTopic",
    "RunbookNotificationsTopic",
    "ComplianceAlertsTopic",
)
ALARMS = ("LedgerReplicaLagAlarm", "FailbackReplicaLagAlarm")
QUEUES = ("FirstOrderAcceptedQueue",)
PARAMETERS = ("AutomaticFailoverSwitch",)
# Rules the state machines name come first; rules that target a state machine come after them.
RULES_NAMED = ("FirstOrderAcceptedRule",)
RULES_TARGETING = ("PrimaryHealthRule", "HealthSignalForwardRule")
TABLE_TYPES = ("AWS::DynamoDB::Table", "AWS::DynamoDB::GlobalTable")
PRIMARY, DR = "primary", "dr"
_stack_numbers = itertools.count(1)


def decided_conditions(role: str) -> dict[str, bool]:
    """The conditions a stack of ``role`` deploys with, whatever its (unique) environment name."""
    dr = role == DR
    return {"IsDr": dr, "IsPrimary": not dr, "OwnsTables": not dr}


def next_environment() -> str:
    """A fresh ``Environment`` name: every resource name of a stack derives from it."""
    return f"t{next(_stack_numbers)}"


@dataclass
class RunbookStack:
    moto: MotoServer
    region: str
    environment: str
    refs: dict[str, Any] = field(default_factory=dict)
    attributes: dict[tuple[str, str], Any] = field(default_factory=dict)
    state_machines: dict[str, str] = field(default_factory=dict)
    parameters: dict[str, Any] = field(default_factory=dict)
    resolver: Resolver | None = None
    role: str = PRIMARY
    global_tables: list[GlobalTable] = field(default_factory=list)
    delivery: RuleDelivery | None = None

    def close(self) -> None:
        """Stop delivering bridged rule targets (a stack with rules to state machines has some)."""
        if self.delivery is not None:
            self.delivery.stop()
            self.delivery = None

    def client(self, service: str, region: str | None = None) -> Any:
        make: Any = boto3.client
        return make(
            service,
            region_name=region or self.region,
            endpoint_url=self.moto.endpoint_url,
            **LOCAL_CREDENTIALS,
        )

    # ---- executions --------------------------------------------------------------------------

    def start(self, logical_id: str, payload: Mapping[str, Any], name: str | None = None) -> str:
        args: dict[str, Any] = {
            "stateMachineArn": self.state_machines[logical_id],
            "input": json.dumps(payload),
        }
        if name:
            args["name"] = name
        return str(self.client("stepfunctions").start_execution(**args)["executionArn"])

    def wait(self, execution_arn: str, timeout: float = 60.0) -> dict[str, Any]:
        sfn = self.client("stepfunctions")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            described: dict[str, Any] = sfn.describe_execution(executionArn=execution_arn)
            if described["status"] != "RUNNING":
                return described
            time.sleep(0.05)
        raise TimeoutError(f"{execution_arn} still running after {timeout} s")

    def run(self, logical_id: str, payload: Mapping[str, Any], timeout: float = 60.0) -> dict[str, Any]:
        return self.wait(self.start(logical_id, payload), timeout)

    def custom_resource(self, logical_id: str) -> dict[str, Any]:
        """Send the template's custom resource a Create, as CloudFormation would; its answer's Data.

        Its properties are resolved with this stack's parameters and conditions (a dr stack's
        LedgerMigrations verifies instead of migrating); its ServiceToken function must be one of
        the functions ``build`` created.
        """
        if self.resolver is None:
            raise RuntimeError("the stack was not built")
        properties = self.resolver.resolve(_template()["Resources"][logical_id]["Properties"])
        resource = CustomResource(logical_id, str(properties["ServiceToken"]), properties)
        stack_id = f"arn:aws:cloudformation:{self.region}:{ACCOUNT}:stack/meridian-{self.environment}/local"
        return custom_resources.create(self.client("lambda"), resource, stack_id)

    def states_entered(self, execution_arn: str) -> list[str]:
        """Every state the execution entered, in order, over every page of its history."""
        pages = self.client("stepfunctions").get_paginator("get_execution_history")
        return [
            event["stateEnteredEventDetails"]["name"]
            for page in pages.paginate(executionArn=execution_arn)
            for event in page["events"]
            if "stateEnteredEventDetails" in event
        ]


def _template() -> dict[str, Any]:
    return lambda_adapter.read_template(REPO / "template.yaml")


def _runbook_resources(template: Mapping[str, Any]) -> dict[str, Any]:
    return {
        logical_id: resource
        for logical_id, resource in template["Resources"].items()
        if resource["Type"] == "AWS::Serverless::StateMachine"
    }


def build(
    moto: MotoServer,
    region: str = "us-east-1",
    parameters: Mapping[str, Any] | None = None,
    environment: Mapping[str, Mapping[str, str]] | None = None,
    outputs: Mapping[str, Any] | None = None,
    name: str | None = None,
    functions: tuple[str, ...] = (),
    role: str = PRIMARY,
    replicas: bool = False,
    deliver_rules: bool = False,
) -> RunbookStack:
    """Create the runbooks' tables, queues, topics, parameters, bus, functions, state machines and
    rules, as a stack of ``role`` (``primary`` or ``dr``) deploys them.

    ``environment`` adds (or overrides) variables per function logical id (a DATABASE_URL,
    MERIDIAN_ROUTES ...); ``outputs`` stands in for the nested stacks' outputs the section reads
    (``"DataStack.DbInstanceIdentifier": ...``); ``functions`` names further functions of the
    template to create (the MigrationsFunction behind a custom resource, the order API).

    A dr stack uses the replicas of its primary's global tables (``PeerEnvironment``): built next to
    a primary stack, that stack created them; alone, ``replicas=True`` creates them here.
    ``deliver_rules`` forwards what rules send to state machines (until :meth:`RunbookStack.close`).
    """
    template = _template()
    stack = RunbookStack(moto, region, name or next_environment(), role=role)
    params = {k: v.get("Default", "") for k, v in template["Parameters"].items()}
    params.update({"Environment": stack.environment, "EventBusName": f"meridian-trading-{stack.environment}"})
    params.update(parameters or {})
    stack.parameters = params
    for key, value in (outputs or {}).items():
        nested, output = key.split(".", 1)
        stack.attributes[(nested, f"Outputs.{output}")] = value
    resolver = Resolver(
        params,
        template.get("Conditions", {}),
        stack.refs,
        stack.attributes,
        region,
        ACCOUNT,
        decided=decided_conditions(role),
    )
    stack.resolver = resolver
    resources = template["Resources"]
    created = Created(stack.refs, stack.attributes)

    def client(service: str, where: str | None) -> Any:
        return stack.client(service, where)

    if role == DR:
        _peer_replicas(stack, template, client, create=replicas)
    for logical_id, resource in resources.items():
        if resource["Type"] in TABLE_TYPES and (props := resolved(resolver, resource)) is not None:
            create_table(client, logical_id, props, resource["Type"], region, created)
    stack.global_tables = created.global_tables
    for logical_id in QUEUES:
        if (props := resolved(resolver, resources[logical_id])) is not None:
            create_queue(client, logical_id, props, created)
    sns = stack.client("sns")
    for logical_id in TOPICS:
        props = resolver.resolve(resources[logical_id]["Properties"])
        arn = sns.create_topic(Name=props["TopicName"])["TopicArn"]
        stack.refs[logical_id] = arn
        stack.attributes[(logical_id, "TopicName")] = props["TopicName"]
    cloudwatch = stack.client("cloudwatch")
    for logical_id in ALARMS:
        if (props := resolved(resolver, resources[logical_id])) is None:
            continue
        cloudwatch.put_metric_alarm(
            **{k: v for k, v in props.items() if k != "Threshold"}, Threshold=float(props["Threshold"])
        )
        stack.refs[logical_id] = props["AlarmName"]
    for logical_id in PARAMETERS:
        if (props := resolved(resolver, resources[logical_id])) is not None:
            create_parameter(client, logical_id, props, created)
    bus = stack.client("events").create_event_bus(Name=params["EventBusName"])
    stack.refs["TradingEventBus"] = params["EventBusName"]
    stack.attributes[("TradingEventBus", "Arn")] = bus["EventBusArn"]
    for logical_id in RULES_NAMED:
        if (props := resolved(resolver, resources[logical_id])) is not None:
            create_rule(client, logical_id, props, created)
    stack.refs["OrdersApi"] = "local-api"
    _create_functions(stack, template, resolver, environment or {}, functions)
    for logical_id, resource in _runbook_resources(template).items():
        if "Condition" in resource and not resolver.condition(resource["Condition"]):
            continue
        props = resource["Properties"]
        definition = (REPO / props["DefinitionUri"]).read_text()
        for key, value in resolver.resolve(props.get("DefinitionSubstitutions", {})).items():
            definition = definition.replace("${" + key + "}", str(value))
        machine = str(resolver.resolve(props["Name"]))
        arn = stack.client("stepfunctions").create_state_machine(
            name=machine, definition=definition, roleArn=f"arn:aws:iam::{ACCOUNT}:role/{machine}"
        )["stateMachineArn"]
        stack.state_machines[logical_id] = arn
        stack.refs[logical_id] = arn
        stack.attributes[(logical_id, "Name")] = machine
    for logical_id in RULES_TARGETING:
        if (props := resolved(resolver, resources[logical_id])) is not None:
            create_rule(client, logical_id, props, created)
    if created.bridges and deliver_rules:
        stack.delivery = RuleDelivery(client, created.bridges)
    return stack


def _peer_replicas(stack: RunbookStack, template: Mapping[str, Any], client: Any, create: bool) -> None:
    """The replicas the primary's global tables (``PeerEnvironment``'s) have in this region: their
    names under the tables' logical ids, and the tables themselves with ``create``."""
    peer = str(stack.parameters["PeerEnvironment"])
    if not peer:
        raise ValueError("a dr stack names its primary's environment (PeerEnvironment)")
    primary = Resolver(
        {**stack.parameters, "Environment": peer},
        template.get("Conditions", {}),
        {},
        {},
        stack.region,
        ACCOUNT,
        decided=decided_conditions(PRIMARY),
    )
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] == "AWS::DynamoDB::GlobalTable":
            props = primary.resolve(resource["Properties"])
            stack.refs[logical_id] = (
                create_replica(client, props, stack.region) if create else props["TableName"]
            )


def _create_functions(
    stack: RunbookStack,
    template: Mapping[str, Any],
    resolver: Resolver,
    environment: Mapping[str, Mapping[str, str]],
    extra: tuple[str, ...] = (),
) -> None:
    sources = lambda_adapter.functions_in(template, REPO)
    wanted = {
        logical_id
        for resource in _runbook_resources(template).values()
        for logical_id in references(resource["Properties"].get("DefinitionSubstitutions", {}))
        if logical_id in sources
    } | set(extra)
    role = lambda_adapter.ensure_lambda_role(stack.client("iam"))
    functions = {}
    for logical_id in sorted(wanted):
        source = sources[logical_id]
        variables = {
            k: str(v)
            for k, v in resolver.resolve(dict(source.environment)).items()
            if not str(v).startswith("local-unprovisioned")
        }
        variables.update(environment.get(logical_id, {}))
        functions[f"{stack.environment}-{logical_id}"] = (source, variables)
    arns = lambda_adapter.create_functions(stack.client("lambda"), role, functions)
    for name, arn in arns.items():
        logical_id = name.split("-", 1)[1]
        stack.refs[logical_id] = name
        stack.attributes[(logical_id, "Arn")] = arn
