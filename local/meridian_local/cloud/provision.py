"""Provision what the SAM templates declare into a local AWS endpoint (moto in server mode).

The template is the only list of resources: it is parsed, its local files inlined, the SAM
transform applied, and every resource of a type that can run here is created through boto3, in
dependency order, nested stacks included. Types that need real AWS (VPCs, NLBs, EC2 fleets, WAF,
...) are reported as skipped; references to them resolve to marked placeholders.
"""

from __future__ import annotations

import io
import json
import secrets
import string
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from meridian_local.cloud.intrinsics import Resolver, references
from meridian_local.cloud.sam_template import (
    LOCAL_ARTIFACT_BUCKET,
    REPO_ROOT,
    ROOT_TEMPLATE,
    load_transformed,
)
from meridian_local.cloud.stack_model import (
    CustomResource,
    EventSourceMapping,
    Firehose,
    LocalFunction,
    RuleBridge,
    Stack,
)
from meridian_local.delivery.lambda_adapter import LOGICAL_ID_TAG
from meridian_local.endpoint.aws import aws_client

ACCOUNT = "123456789012"


# moto's EventBridge delivers to these target services itself.
MOTO_RULE_TARGETS = ("sqs", "logs", "events")


def _dependency_order(resources: dict[str, Any]) -> list[str]:
    deps = {
        lid: (
            {d for d in references(res) if d in resources and d != lid}
            | set(_as_list(res.get("DependsOn"))) & set(resources)
        )
        for lid, res in resources.items()
    }
    order: list[str] = []
    done: set[str] = set()
    while len(order) < len(resources):
        ready = [lid for lid in resources if lid not in done and deps[lid] <= done]
        if not ready:  # a cycle through placeholders: fall back to template order
            ready = [next(lid for lid in resources if lid not in done)]
        for lid in ready:
            order.append(lid)
            done.add(lid)
    return order


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _dummy_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("README.txt", "code runs in-process from the repository on the local platform")
    return buffer.getvalue()


class Provisioner:
    def __init__(
        self, endpoint_url: str, region: str = "us-east-1", stack_name: str = "meridian-local"
    ) -> None:
        self.endpoint_url = endpoint_url
        self.region = region
        self.stack_name = stack_name
        self._clients: dict[str, Any] = {}
        self._creators: dict[str, Callable[[Stack, str, dict[str, Any]], None]] = {
            "AWS::DynamoDB::Table": self._table,
            # This region's replica; the platform runs one region (the DR drill stands up two).
            "AWS::DynamoDB::GlobalTable": self._table,
            "AWS::SQS::Queue": self._queue,
            "AWS::SNS::Topic": self._topic,
            "AWS::SNS::Subscription": self._subscription,
            "AWS::Kinesis::Stream": self._stream,
            "AWS::Events::EventBus": self._bus,
            "AWS::Events::Rule": self._rule,
            "AWS::S3::Bucket": self._bucket,
            "AWS::StepFunctions::StateMachine": self._state_machine,
            "AWS::Lambda::Function": self._function,
            "AWS::Lambda::EventSourceMapping": self._event_source_mapping,
            "AWS::KinesisFirehose::DeliveryStream": self._firehose,
            "AWS::SSM::Parameter": self._ssm_parameter,
            "AWS::KMS::Key": self._kms_key,
            "AWS::Logs::LogGroup": self._log_group,
            "AWS::IAM::Role": self._role,
            "AWS::SecretsManager::Secret": self._secret,
        }

    def client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = aws_client(service, self.endpoint_url, self.region)
        return self._clients[service]

    # ---- stacks -----------------------------------------------------------------------------

    def provision(
        self,
        template_path: Path = ROOT_TEMPLATE,
        parameters: dict[str, str] | None = None,
        name: str | None = None,
    ) -> Stack:
        template = load_transformed(template_path, parameters)
        stack = Stack(name or self.stack_name)
        params = {k: v.get("Default", "") for k, v in template.get("Parameters", {}).items()}
        params.update(parameters or {})
        self._resolver = resolver = Resolver(
            params,
            template.get("Conditions", {}),
            stack.refs,
            stack.attributes,
            self.region,
            ACCOUNT,
            stack.name,
        )
        resources: dict[str, Any] = template.get("Resources", {})
        for logical_id in _dependency_order(resources):
            resource = resources[logical_id]
            if "Condition" in resource and not resolver.condition(resource["Condition"]):
                continue
            kind = resource["Type"]
            self._resolver = resolver
            props = resolver.resolve(resource.get("Properties", {}))
            if kind in ("AWS::CloudFormation::Stack", "AWS::Serverless::Application"):
                self._nested(stack, logical_id, props)
            elif kind.startswith("Custom::") or kind == "AWS::CloudFormation::CustomResource":
                stack.custom_resources.append(
                    CustomResource(logical_id, str(props.get("ServiceToken")), props)
                )
                stack.created[logical_id] = kind
            elif kind in self._creators:
                self._creators[kind](stack, logical_id, props)
                stack.created[logical_id] = kind
            else:
                stack.skipped[logical_id] = kind
        stack.outputs = {
            key: resolver.resolve(out["Value"])
            for key, out in template.get("Outputs", {}).items()
            if "Condition" not in out or resolver.condition(out["Condition"])
        }
        return stack

    def _nested(self, stack: Stack, logical_id: str, props: dict[str, Any]) -> None:
        url = str(props.get("TemplateURL") or props.get("Location") or "")
        marker = f"s3://{LOCAL_ARTIFACT_BUCKET}/"
        if not url.startswith(marker):
            stack.skipped[logical_id] = "nested stack outside the repository"
            return
        params = {
            k: ",".join(map(str, v)) if isinstance(v, list) else str(v)
            for k, v in props.get("Parameters", {}).items()
        }
        child = Provisioner(self.endpoint_url, self.region, f"{stack.name}-{logical_id}")
        child._clients = self._clients
        nested = child.provision(REPO_ROOT / url[len(marker) :], params, f"{stack.name}-{logical_id}")
        stack.nested[logical_id] = nested
        stack.created[logical_id] = "AWS::CloudFormation::Stack"
        stack.refs[logical_id] = f"arn:aws:cloudformation:{self.region}:{ACCOUNT}:stack/{nested.name}/local"
        for key, value in nested.outputs.items():
            stack.attributes[(logical_id, f"Outputs.{key}")] = value

    def _name(self, stack: Stack, logical_id: str, given: Any, max_len: int = 64, lower: bool = False) -> str:
        name = str(given) if given else f"{stack.name}-{logical_id}"[:max_len]
        return name.lower() if lower else name

    def _arn(self, service: str, resource: str) -> str:
        return f"arn:aws:{service}:{self.region}:{ACCOUNT}:{resource}"

    # ---- one creator per resource type --------------------------------------------------------

    def _table(self, stack: Stack, lid: str, p: dict[str, Any]) -> None:
        name = self._name(stack, lid, p.get("TableName"))
        args: dict[str, Any] = {
            "TableName": name,
            "KeySchema": p["KeySchema"],
            "AttributeDefinitions": p["AttributeDefinitions"],
            "BillingMode": p.get("BillingMode", "PAY_PER_REQUEST"),
        }
        if args["BillingMode"] == "PROVISIONED":
            args["ProvisionedThroughput"] = p.get(
                "ProvisionedThroughput", {"ReadCapacityUnits": 5, "WriteCapacityUnits": 5}
            )
        keep = ("IndexName", "KeySchema", "Projection", "ProvisionedThroughput")
        for key in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
            if p.get(key):
                args[key] = [{k: v for k, v in index.items() if k in keep} for index in p[key]]
        if p.get("StreamSpecification"):
            args["StreamSpecification"] = {"StreamEnabled": True, **p["StreamSpecification"]}
        description = self.client("dynamodb").create_table(**args)["TableDescription"]
        ttl = p.get("TimeToLiveSpecification")
        if ttl and ttl.get("Enabled"):
            self.client("dynamodb").update_time_to_live(
                TableName=name,
                TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl["AttributeName"]},
            )
        stack.refs[lid] = name
        stack.attributes[(lid, "Arn")] = description["TableArn"]
        stack.attributes[(lid, "StreamArn")] = description.get(
            "LatestStreamArn", f"{description['TableArn']}/stream/local"
        )

    def _queue(self, stack: Stack, lid: str, p: dict[str, Any]) -> None:
        name = self._name(stack, lid, p.get("QueueName"), 80)
        attributes = {
            key: json.dumps(value)
            if isinstance(value, dict)
            else str(value).lower()
            if isinstance(value, bool)
            else str(value)
            for key, value in p.items()
            if key
            in (
                "DelaySeconds",
                "MessageRetentionPeriod",
                "VisibilityTimeout",
                "MaximumMessageSize",
                "ReceiveMessageWaitTimeSeconds",
                "RedrivePolicy",
                "FifoQueue",
                "ContentBasedDeduplication",
                "KmsMasterKeyId",
                "SqsManagedSseEnabled",
            )
        }
        url = self.client("sqs").create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        stack.refs[lid] = url
        stack.attributes[(lid, "Arn")] = self._arn("sqs", name)
        stack.attributes[(lid, "QueueName")] = name
        stack.attributes[(lid, "QueueUrl")] = url

    def _topic(self, stack: Stack, lid: str, p: dict[str, Any]) -> None:
        name = self._name(stack, lid, p.get("TopicName"), 256)
        arn = self.client("sns").create_topic(Name=name)["TopicArn"]
        for sub in p.get("Subscription", []):
            self.client("sns").subscribe(TopicArn=arn, Protocol=sub["Protocol"], Endpoint=sub["Endpoint"])
        stack.refs[lid] = arn
        stack.attributes[(lid, "TopicArn")] = arn
        stack.attributes[(lid, "TopicName")] = name

    def _subscription(self, stack: Stack, lid: str, p: dict[str, Any]) -> None:
        result = self.client("sns").subscribe(
            TopicArn=p["TopicArn"],
            Protocol=p["Protocol"],
            Endpoint=p["Endpoint"],
            Attributes={"RawMessageDelivery": str(p.get("RawMessageDelivery", False)).lower()},
        )
        stack.refs[lid] = result["SubscriptionArn"]

    def _stream(self, stack: Stack, lid: str, p: dict[str, Any]) -> None:
        name = self._name(stack, lid, p.get("Name"), 128)
        self.client("kinesis").create_stream(StreamName=name, ShardCount=int(p.get("ShardCount", 1)))
        stack.refs[lid] = name
        stack.attributes[(lid, "Arn")] = self._arn("kinesis", f"stream/{name}")

    def _bus(self, stack: Stack, lid: str, p: dict[str, Any]) -> None:
        name = self._name(stack, lid, p.get("Name"))
        arn = self.client("events").create_event_bus(Name=name)["EventBusArn"]
        stack.refs[lid] = name
        stack.attributes[(lid, "Arn")] = arn
        stack.attributes[(lid, "Name")] = name

    def _rule(self, stack: Stack, lid: str, p: dict[str, Any]) -> None:
        name = self._name(stack, lid, p.get("Name"))
        bus = p.get("EventBusName", "default")
        bus = bus.rsplit("/", 1)[-1] if str(bus).startswith("arn:") else bus
        args: dict[str, Any] = {"Name": name, "EventBusName": bus, "State": p.get("State", "ENABLED")}
        if "EventPattern" in p:
            pattern = p["EventPattern"]
            args["EventPattern"] = pattern if isinstance(pattern, str) else json.dumps(pattern)
        if "ScheduleExpression" in p:
            args["ScheduleExpression"] = p["ScheduleExpression"]
        arn = self.client("events").put_rule(**args)["RuleArn"]
        keep = ("Id", "Arn", "Input", "InputPath", "InputTransformer", "SqsParameters", "RoleArn")
        targets = []
        for target in p.get("Targets", []):
            if str(target["Arn"]).split(":")[2] in MOTO_RULE_TARGETS:
                targets.append({k: v for k, v in target.items() if k in keep})
                continue
            bridge = self.client("sqs").create_queue(QueueName=f"{name}-{target['Id']}-bridge"[:80])[
                "QueueUrl"
            ]
            stack.bridges.append(RuleBridge(name, bridge, target))
            targets.append({"Id": target["Id"], "Arn": self._arn("sqs", bridge.rsplit("/", 1)[-1])})
        if targets:
            self.client("events").put_targets(Rule=name, EventBusName=bus, Targets=targets)
        stack.refs[lid] = name
        stack.attributes[(lid, "Arn")] = arn

    def _bucket(self, stack: Stack, lid: str, p: dict[str, Any]) -> None:
        name = self._name(stack, lid, p.get("BucketName"), 63, lower=True)
        s3 = self.client("s3")
        s3.create_bucket(Bucket=name, ObjectLockEnabledForBucket=bool(p.get("ObjectLockEnabled", False)))
        if p.get("VersioningConfiguration", {}).get("Status") == "Enabled":
            s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
        stack.refs[lid] = name
        stack.attributes[(lid, "Arn")] = f"arn:aws:s3:::{name}"
        stack.attributes[(lid, "DomainName")] = f"{name}.s3.amazonaws.com"
        stack.attributes[(lid, "RegionalDomainName")] = f"{name}.s3.{self.region}.amazonaws.com"

    def _state_machine(self, stack: Stack, lid: str, p: dict[str, Any]) -> None:
        name = self._name(stack, lid, p.get("StateMachineName"), 80)
        definition = p.get("DefinitionString") or json.dumps(p.get("Definition", {}))
        for key, value in p.get("DefinitionSubstitutions", {}).items():
            definition = definition.replace("${" + key + "}", str(value))
        arn = self.client("stepfunctions").create_state_machine(
            name=name,
            definition=definition,
            roleArn=p.get("RoleArn") or self._arn("iam", f"role/{name}"),
            type=p.get("StateMachineType", "STANDARD"),
        )["stateMachineArn"]
        stack.refs[lid] = arn
        stack.attributes[(lid, "Arn")] = arn
        stack.attributes[(lid, "Name")] = name

    def _function(self, stack: Stack, lid: str, p: dict[str, Any]) -> None:
        name = self._name(stack, lid, p.get("FunctionName"))
        code_key = str(p.get("Code", {}).get("S3Key", ""))
        environment = {k: str(v) for k, v in p.get("Environment", {}).get("Variables", {}).items()}
        role = (
            p.get("Role")
            if str(p.get("Role", "")).startswith("arn:")
            else self._arn("iam", f"role/{lid}Role")
        )
        result = self.client("lambda").create_function(
            FunctionName=name,
            Runtime=p.get("Runtime", "python3.11"),
            Role=role,
            Handler=p["Handler"],
            Code={"ZipFile": _dummy_zip()},
            Timeout=int(p.get("Timeout", 3)),
            Environment={"Variables": environment},
            Tags={LOGICAL_ID_TAG: lid},  # how the AWS endpoint's process finds the function's code
        )
        stack.functions[name] = LocalFunction(
            lid,
            name,
            result["FunctionArn"],
            p["Handler"],
            REPO_ROOT / code_key,
            environment,
            int(p.get("Timeout", 3)),
        )
        stack.refs[lid] = name
        stack.attributes[(lid, "Arn")] = result["FunctionArn"]

    def _event_source_mapping(self, stack: Stack, lid: str, p: dict[str, Any]) -> None:
        destination = p.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination")
        stack.mappings.append(
            EventSourceMapping(
                function=str(p["FunctionName"]),
                source_arn=str(p["EventSourceArn"]),
                batch_size=int(p.get("BatchSize", 10)),
                report_batch_item_failures="ReportBatchItemFailures" in p.get("FunctionResponseTypes", []),
                batching_window_s=int(p.get("MaximumBatchingWindowInSeconds", 0)),
                on_failure_arn=destination,
                bisect_on_error=bool(p.get("BisectBatchOnFunctionError", False)),
                maximum_retry_attempts=(
                    None if p.get("MaximumRetryAttempts") is None else int(p["MaximumRetryAttempts"])
                ),
            )
        )
        stack.refs[lid] = f"local-esm-{lid}"

    def _firehose(self, stack: Stack, lid: str, p: dict[str, Any]) -> None:
        name = self._name(stack, lid, p.get("DeliveryStreamName"))
        dest = p.get("ExtendedS3DestinationConfiguration") or p.get("S3DestinationConfiguration") or {}
        config = {
            k: v
            for k, v in dest.items()
            if k
            in ("RoleARN", "BucketARN", "Prefix", "ErrorOutputPrefix", "BufferingHints", "CompressionFormat")
        }
        # Stand-in for a Kinesis-sourced stream: moto accepts direct puts; a local forwarder feeds it.
        self.client("firehose").create_delivery_stream(
            DeliveryStreamName=name, DeliveryStreamType="DirectPut", ExtendedS3DestinationConfiguration=config
        )
        source = p.get("KinesisStreamSourceConfiguration", {}).get("KinesisStreamARN")
        stack.firehoses.append(
            Firehose(name, source, str(config.get("BucketARN", "")), str(config.get("Prefix", "")))
        )
        stack.refs[lid] = name
        stack.attributes[(lid, "Arn")] = self._arn("firehose", f"deliverystream/{name}")

    def _ssm_parameter(self, stack: Stack, lid: str, p: dict[str, Any]) -> None:
        name = self._name(stack, lid, p.get("Name"))
        self.client("ssm").put_parameter(
            Name=name, Value=str(p["Value"]), Type=p.get("Type", "String"), Overwrite=True
        )
        stack.refs[lid] = name

    def _kms_key(self, stack: Stack, lid: str, p: dict[str, Any]) -> None:
        meta = self.client("kms").create_key(Description=str(p.get("Description", lid)))["KeyMetadata"]
        stack.refs[lid] = meta["KeyId"]
        stack.attributes[(lid, "Arn")] = meta["Arn"]
        stack.attributes[(lid, "KeyId")] = meta["KeyId"]

    def _secret(self, stack: Stack, lid: str, p: dict[str, Any]) -> None:
        """A secret with its value generated as GenerateSecretString says (template + random key)."""
        name = self._name(stack, lid, p.get("Name"), 512)
        value = p.get("SecretString")
        generate = p.get("GenerateSecretString")
        if value is None and generate:
            alphabet = string.ascii_letters + string.digits
            length = int(generate.get("PasswordLength", 32))
            generated = "".join(secrets.choice(alphabet) for _ in range(length))
            key = generate.get("GenerateStringKey")
            if key:
                document = json.loads(generate.get("SecretStringTemplate", "{}"))
                document[key] = generated
                value = json.dumps(document)
            else:
                value = generated
        arn = self.client("secretsmanager").create_secret(Name=name, SecretString=str(value or ""))["ARN"]
        stack.refs[lid] = arn
        stack.attributes[(lid, "Id")] = arn

    def _log_group(self, stack: Stack, lid: str, p: dict[str, Any]) -> None:
        name = self._name(stack, lid, p.get("LogGroupName"), 512)
        self.client("logs").create_log_group(logGroupName=name)
        stack.refs[lid] = name
        stack.attributes[(lid, "Arn")] = self._arn("logs", f"log-group:{name}:*")

    def _role(self, stack: Stack, lid: str, p: dict[str, Any]) -> None:
        # moto enforces no policy, but Lambda needs the role to exist. (The local API gateway
        # enforces its callers' execute-api:Invoke policies itself: see route_access.)
        name = self._name(stack, lid, p.get("RoleName"))
        trust = p.get("AssumeRolePolicyDocument", {})
        role = self.client("iam").create_role(
            RoleName=name, AssumeRolePolicyDocument=trust if isinstance(trust, str) else json.dumps(trust)
        )["Role"]
        stack.refs[lid] = name
        stack.attributes[(lid, "Arn")] = role["Arn"]
        stack.attributes[(lid, "RoleId")] = role["RoleId"]
