"""Meridian's stacks as one environment would deploy them: parameters in, concrete resources out.

An environment is a section of samconfig.toml (``default`` is dev): its region, stack name and
parameter overrides, over the template defaults. ``StackModel`` evaluates a template (after the SAM
transform) with those parameters the way CloudFormation would: conditions decide which resources
exist, intrinsics are resolved, nested stacks are evaluated with the parameters their parent passes
and their outputs flow back. What only exists at deploy time stands for itself: a resource's ``Ref``
is its physical name when the template names it (else a generated one), its ARN is built from the
resource type's ARN format, a security group is ``sg-<stack>-<logical id>``.

Used by the cost table (tools/cost_table.py) and the template tests (names, quotas, reachability,
the IAM lint).
"""

from __future__ import annotations

import ipaddress
import re
import shlex
import tomllib
from dataclasses import dataclass
from functools import cache, cached_property
from typing import Any

from tools.cfn_templates import ROOT, ROOT_TEMPLATE, Template, transformed

ACCOUNT = "123456789012"
NO_VALUE = object()
_SUB_VAR = re.compile(r"\$\{([^}!][^}]*)\}")
_ARTIFACT_PREFIX = re.compile(r"^https://s3\.[a-z0-9-]+\.amazonaws\.com/meridian-artifacts/")

# Values an environment can only be given after another deploy exists (docs/deploy.md, "First
# deploy"): the dr environment replicates the prod database (its functions need no secret: they
# authenticate with IAM) and requests the Transit Gateway peering with prod's hub; both route through
# it once accepted; prod replicates its tables into dr's region with dr's keys.
# Examples of their shape, so the pair can be evaluated as it runs once paired.
AFTER_FIRST_DEPLOY: dict[str, dict[str, str]] = {
    "prod": {
        "PeerTransitGatewayAttachmentId": "tgw-attach-0peer0000000000",
        "TablesReplicaTradingDataKeyArn": f"arn:aws:kms:us-west-2:{ACCOUNT}:key/0dr-trading-data",
        "TablesReplicaMarketDataKeyArn": f"arn:aws:kms:us-west-2:{ACCOUNT}:key/0dr-market-data",
    },
    "dr": {
        "PeerTransitGatewayId": "tgw-0prod0000000000000",
        "PeerRegion": "us-east-1",
        "PeerTransitGatewayAttachmentId": "tgw-attach-0peer0000000000",
        "PrimaryDbInstanceArn": f"arn:aws:rds:us-east-1:{ACCOUNT}:db:meridian-prod-ledger",
    },
}


@dataclass(frozen=True)
class Environment:
    """One samconfig.toml section."""

    section: str
    name: str
    region: str
    stack_name: str
    overrides: tuple[tuple[str, str], ...]

    @property
    def parameters(self) -> dict[str, str]:
        return dict(self.overrides)


@cache
def environments(include_after_first_deploy: bool = True) -> dict[str, Environment]:
    """samconfig.toml's environments by section name (``default``, ``staging``, ``prod``, ``dr``)."""
    config = tomllib.loads((ROOT / "samconfig.toml").read_text())
    found = {}
    for section, body in config.items():
        if not isinstance(body, dict) or "deploy" not in body:
            continue
        deploy = body["deploy"]["parameters"]
        overrides = dict(item.split("=", 1) for item in shlex.split(deploy.get("parameter_overrides", "")))
        name = overrides.get("Environment", "dev")
        if include_after_first_deploy:
            overrides = {**AFTER_FIRST_DEPLOY.get(name, {}), **overrides}
        stack_name = deploy.get("stack_name") or body.get("global", {}).get("parameters", {}).get(
            "stack_name"
        )
        found[section] = Environment(
            section, name, deploy["region"], str(stack_name), tuple(overrides.items())
        )
    return found


# How each resource type answers Ref and GetAtt: (name property, Ref format, {attribute: format}).
# Formats see {name}, {region}, {account}, {id} (the logical id) and {stack}.
_ARN = "arn:aws:{service}:{region}:{account}:"
_TYPES: dict[str, tuple[str | None, str, dict[str, str]]] = {
    "AWS::DynamoDB::Table": (
        "TableName",
        "{name}",
        {"Arn": _ARN + "table/{name}", "StreamArn": _ARN + "table/{name}/stream/x"},
    ),
    "AWS::DynamoDB::GlobalTable": (
        "TableName",
        "{name}",
        {"Arn": _ARN + "table/{name}", "StreamArn": _ARN + "table/{name}/stream/x"},
    ),
    "AWS::SQS::Queue": (
        "QueueName",
        "https://sqs.{region}.amazonaws.com/{account}/{name}",
        {"Arn": _ARN + "{name}", "QueueName": "{name}"},
    ),
    "AWS::SNS::Topic": ("TopicName", _ARN + "{name}", {"TopicName": "{name}", "TopicArn": _ARN + "{name}"}),
    "AWS::Kinesis::Stream": ("Name", "{name}", {"Arn": _ARN + "stream/{name}"}),
    "AWS::Lambda::Function": ("FunctionName", "{name}", {"Arn": _ARN + "function:{name}"}),
    "AWS::Lambda::Alias": (None, _ARN.replace("{service}", "lambda") + "function:{name}:live", {}),
    "AWS::Lambda::LayerVersion": ("LayerName", _ARN + "layer:{name}:1", {}),
    "AWS::StepFunctions::StateMachine": (
        "StateMachineName",
        _ARN + "stateMachine:{name}",
        {"Arn": _ARN + "stateMachine:{name}", "Name": "{name}"},
    ),
    "AWS::Logs::LogGroup": ("LogGroupName", "{name}", {"Arn": _ARN + "log-group:{name}:*"}),
    "AWS::Events::EventBus": ("Name", "{name}", {"Arn": _ARN + "event-bus/{name}", "Name": "{name}"}),
    "AWS::Events::Rule": ("Name", "{name}", {"Arn": _ARN + "rule/{name}"}),
    "AWS::S3::Bucket": (
        "BucketName",
        "{name}",
        {"Arn": "arn:aws:s3:::{name}", "DomainName": "{name}.s3.amazonaws.com"},
    ),
    "AWS::KMS::Key": (
        None,
        "key-{stack}-{id}",
        {"Arn": _ARN + "key/key-{stack}-{id}", "KeyId": "key-{stack}-{id}"},
    ),
    "AWS::IAM::Role": (
        "RoleName",
        "{name}",
        {"Arn": "arn:aws:iam::{account}:role/{name}", "RoleId": "AROA{id}"},
    ),
    "AWS::IAM::ManagedPolicy": ("ManagedPolicyName", "arn:aws:iam::{account}:policy/{name}", {}),
    "AWS::IAM::InstanceProfile": (
        "InstanceProfileName",
        "{name}",
        {"Arn": "arn:aws:iam::{account}:instance-profile/{name}"},
    ),
    "AWS::CloudWatch::Alarm": ("AlarmName", "{name}", {"Arn": _ARN + "alarm:{name}"}),
    "AWS::SSM::Parameter": ("Name", "{name}", {}),
    "AWS::SecretsManager::Secret": ("Name", _ARN + "secret:{name}-AbCdEf", {}),
    "AWS::EFS::FileSystem": (None, "fs-{id}", {"Arn": _ARN + "file-system/fs-{id}"}),
    "AWS::RDS::DBInstance": (
        "DBInstanceIdentifier",
        "{name}",
        {
            "DBInstanceArn": _ARN + "db:{name}",
            "Endpoint.Address": "{name}.rds.amazonaws.com",
            "Endpoint.Port": "5432",
            "DbiResourceId": "db-{id}",
            "MasterUserSecret.SecretArn": _ARN.replace("{service}", "secretsmanager")
            + "secret:rds!{name}-AbCdEf",
        },
    ),
    "AWS::CodeBuild::Project": ("Name", "{name}", {"Arn": _ARN + "project/{name}"}),
    "AWS::CodeCommit::Repository": (
        "RepositoryName",
        "{name}",
        {
            "Arn": _ARN + "{name}",
            "Name": "{name}",
            "CloneUrlHttp": "https://git-codecommit.{region}.amazonaws.com/v1/repos/{name}",
        },
    ),
    "AWS::CodePipeline::Pipeline": ("Name", "{name}", {}),
    "AWS::Backup::BackupVault": (
        "BackupVaultName",
        "{name}",
        {"BackupVaultArn": _ARN + "backup-vault:{name}"},
    ),
    "AWS::ECS::Cluster": ("ClusterName", "{name}", {"Arn": _ARN + "cluster/{name}"}),
    "AWS::ECS::Service": ("ServiceName", _ARN + "service/{name}", {"Name": "{name}"}),
    "AWS::EC2::SecurityGroup": (None, "sg-{stack}-{id}", {"GroupId": "sg-{stack}-{id}"}),
    "AWS::EC2::VPC": (None, "vpc-{stack}", {}),
    "AWS::EC2::TransitGateway": (None, "tgw-{stack}", {}),
    "AWS::EC2::TransitGatewayRouteTable": (None, "tgw-rtb-{stack}-{id}", {}),
    "AWS::ElasticLoadBalancingV2::LoadBalancer": (
        "Name",
        _ARN + "loadbalancer/{name}",
        {"LoadBalancerFullName": "net/{name}/x", "DNSName": "{name}.elb.amazonaws.com"},
    ),
    "AWS::ElasticLoadBalancingV2::TargetGroup": (
        "Name",
        _ARN + "targetgroup/{name}/x",
        {"TargetGroupFullName": "targetgroup/{name}/x"},
    ),
    "AWS::WAFv2::WebACL": ("Name", "{name}", {"Arn": _ARN + "regional/webacl/{name}/x"}),
    "AWS::ApiGateway::RestApi": ("Name", "api{id}", {"RootResourceId": "root"}),
}
# ARN service names where the type's namespace differs.
_SERVICES = {
    "StepFunctions": "states",
    "CloudWatch": "cloudwatch",
    "EFS": "elasticfilesystem",
    "ElasticLoadBalancingV2": "elasticloadbalancing",
    "WAFv2": "wafv2",
    "Lambda": "lambda",
}


def _service(resource_type: str) -> str:
    namespace = resource_type.split("::")[1]
    return _SERVICES.get(namespace, namespace.lower())


class Unresolved(str):
    """A value only known at deploy time that this model does not compute (kept as text)."""

    __slots__ = ()


class StackModel:
    """One template evaluated with given parameter values (nested stacks included)."""

    def __init__(
        self,
        path: str,
        parameters: dict[str, Any],
        region: str,
        stack_name: str,
        environment: str,
        nested_overrides: dict[str, dict[str, str]] | None = None,
    ) -> None:
        self.path = path
        # Parameters given to nested stacks over what this template passes them (logical id ->
        # name -> value): a variant of an environment, e.g. the hot path with more shards.
        self.nested_overrides = nested_overrides or {}
        self.region = region
        self.stack_name = stack_name
        self.environment = environment
        given = tuple(sorted((k, v if isinstance(v, str) else str(v)) for k, v in parameters.items()))
        self.template: Template = transformed(path, given)
        declared = self.template.get("Parameters", {})
        unknown = set(parameters) - set(declared)
        if unknown:
            raise ValueError(f"{path}: no such parameters {sorted(unknown)}")
        self.parameters: dict[str, Any] = {}
        for name, spec in declared.items():
            value = parameters.get(name, spec.get("Default"))
            if value is None:
                raise ValueError(f"{path}: parameter {name} has no value and no default")
            kind = str(spec.get("Type", "String"))
            if (kind.startswith("List<") or kind == "CommaDelimitedList") and isinstance(value, str):
                value = value.split(",") if value else []
            self.parameters[name] = value
        self._conditions: dict[str, bool] = {}
        self._nested: dict[str, StackModel] = {}

    # ---- conditions and resources --------------------------------------------------------------

    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            self._conditions[name] = bool(self.value(self.template["Conditions"][name]))
        return self._conditions[name]

    @cached_property
    def resources(self) -> dict[str, dict[str, Any]]:
        """Logical id -> raw resource, only those whose condition holds."""
        return {
            lid: res
            for lid, res in self.template.get("Resources", {}).items()
            if isinstance(res, dict) and ("Condition" not in res or self.condition(res["Condition"]))
        }

    def of_type(self, resource_type: str) -> dict[str, dict[str, Any]]:
        return {lid: res for lid, res in self.resources.items() if res.get("Type") == resource_type}

    def properties(self, logical_id: str) -> dict[str, Any]:
        """The resource's properties with every intrinsic evaluated."""
        value = self.value(self.resources[logical_id].get("Properties", {}))
        return value if isinstance(value, dict) else {}

    def nested(self, logical_id: str) -> StackModel:
        """The nested stack ``logical_id`` evaluated with the parameters this stack passes it."""
        if logical_id not in self._nested:
            props = self.resources[logical_id]["Properties"]
            path = _ARTIFACT_PREFIX.sub("", str(props.get("TemplateURL") or props.get("Location")))
            parameters = {
                key: ",".join(map(str, v)) if isinstance(v, list) else v
                for key, v in self.value(props.get("Parameters", {})).items()
            }
            parameters |= self.nested_overrides.get(logical_id, {})
            self._nested[logical_id] = StackModel(
                path, parameters, self.region, f"{self.stack_name}-{logical_id}", self.environment
            )
        return self._nested[logical_id]

    def nested_stacks(self) -> dict[str, StackModel]:
        return {lid: self.nested(lid) for lid in self.of_type("AWS::CloudFormation::Stack")}

    def all_stacks(self) -> list[StackModel]:
        """This stack and every nested stack below it."""
        found = [self]
        for child in self.nested_stacks().values():
            found += child.all_stacks()
        return found

    def output(self, name: str) -> Any:
        return self.value(self.template["Outputs"][name]["Value"])

    def physical_name(self, logical_id: str) -> str:
        """The name the resource gets: its name property when the template sets one."""
        resource_type = self.resources[logical_id]["Type"]
        name_property = _TYPES.get(resource_type, (None, "", {}))[0]
        props = self.resources[logical_id].get("Properties", {})
        if name_property and name_property in props:
            return str(self.value(props[name_property]))
        return f"{self.stack_name}-{logical_id}"[:60]

    def _format(self, logical_id: str, fmt: str) -> str:
        resource_type = self.resources[logical_id]["Type"]
        return fmt.format(
            name=self.physical_name(logical_id),
            region=self.region,
            account=ACCOUNT,
            id=logical_id,
            stack=self.stack_name,
            service=_service(resource_type),
        )

    # ---- intrinsics ---------------------------------------------------------------------------

    def ref(self, name: str) -> Any:
        pseudo = {
            "AWS::Region": self.region,
            "AWS::AccountId": ACCOUNT,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackName": self.stack_name,
            "AWS::StackId": f"arn:aws:cloudformation:{self.region}:{ACCOUNT}:stack/{self.stack_name}/x",
            "AWS::NoValue": NO_VALUE,
        }
        if name in pseudo:
            return pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        resource = self.template["Resources"].get(name)
        if resource is None:
            raise KeyError(f"{self.path}: Ref to unknown {name}")
        if name not in self.resources:
            return Unresolved(f"<{name} (condition false)>")
        spec = _TYPES.get(resource["Type"])
        return self._format(name, spec[1]) if spec else Unresolved(f"{self.stack_name}-{name}")

    def get_att(self, logical_id: str, attribute: str) -> Any:
        resource = self.template["Resources"].get(logical_id)
        if resource is None:
            raise KeyError(f"{self.path}: GetAtt of unknown {logical_id}")
        if logical_id not in self.resources:
            return Unresolved(f"<{logical_id}.{attribute} (condition false)>")
        if resource["Type"] == "AWS::CloudFormation::Stack" and attribute.startswith("Outputs."):
            return self.nested(logical_id).output(attribute.split(".", 1)[1])
        if resource["Type"] == "AWS::EC2::VPC" and attribute == "CidrBlock":
            return self.value(resource["Properties"]["CidrBlock"])
        if resource["Type"] == "AWS::EC2::Subnet" and attribute == "AvailabilityZone":
            return self.value(resource["Properties"]["AvailabilityZone"])
        spec = _TYPES.get(resource["Type"])
        if spec and attribute in spec[2]:
            return self._format(logical_id, spec[2][attribute])
        return Unresolved(f"{self.stack_name}-{logical_id}.{attribute}")

    def value(self, node: Any) -> Any:
        if isinstance(node, list):
            return [v for v in (self.value(item) for item in node) if v is not NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            ((key, arg),) = node.items()
            if key == "Ref":
                return self.ref(arg)
            if key == "Fn::GetAtt":
                parts = arg.split(".", 1) if isinstance(arg, str) else [arg[0], ".".join(arg[1:])]
                return self.get_att(parts[0], parts[1])
            if key == "Fn::Sub":
                return self._sub(arg)
            if key == "Fn::Join":
                separator, items = arg
                return str(separator).join(str(v) for v in self.value(items))
            if key == "Fn::If":
                name, when_true, when_false = arg
                return self.value(when_true if self.condition(name) else when_false)
            if key == "Fn::Equals":
                left, right = self.value(arg)
                return str(left) == str(right)
            if key == "Fn::Not":
                return not self.value(arg[0])
            if key == "Fn::And":
                return all(self.value(arg))
            if key == "Fn::Or":
                return any(self.value(arg))
            if key == "Condition":
                return self.condition(arg)
            if key == "Fn::Select":
                index, items = self.value(arg)
                if isinstance(items, list) and int(index) < len(items):
                    return items[int(index)]
                return Unresolved(f"{items}[{index}]")
            if key == "Fn::Split":
                separator, text = self.value(arg)
                return text if isinstance(text, Unresolved) else str(text).split(separator)
            if key == "Fn::FindInMap":
                mapping, top, second = self.value(arg)
                return self.template["Mappings"][mapping][top][second]
            if key == "Fn::GetAZs":
                return [f"{self.region}a", f"{self.region}b", f"{self.region}c"]
            if key == "Fn::Cidr":
                block, count, bits = self.value(arg)
                network = ipaddress.ip_network(str(block))
                subnets = network.subnets(new_prefix=network.max_prefixlen - int(bits))
                return [str(next(subnets)) for _ in range(int(count))]
            if key in ("Fn::Base64", "Fn::ToJsonString", "Fn::Transform", "Fn::ImportValue"):
                return Unresolved(key)
        evaluated = {k: self.value(v) for k, v in node.items()}
        return {k: v for k, v in evaluated.items() if v is not NO_VALUE}

    def _sub(self, arg: Any) -> str:
        text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], self.value(arg[1]))

        def replace(match: re.Match[str]) -> str:
            name = match.group(1).strip()
            if name in variables:
                found = variables[name]
            elif "." in name and name.split(".", 1)[0] in self.template.get("Resources", {}):
                found = self.get_att(*name.split(".", 1))
            else:
                found = self.ref(name)
            return ",".join(map(str, found)) if isinstance(found, list) else str(found)

        return _SUB_VAR.sub(replace, str(text)).replace("${!", "${")


def environment_model(
    section: str,
    include_after_first_deploy: bool = True,
    nested_overrides: dict[str, dict[str, str]] | None = None,
) -> StackModel:
    """The root stack of samconfig.toml's ``section`` (nested stacks reachable through it), with
    ``nested_overrides`` given to its nested stacks over what the root passes them."""
    environment = environments(include_after_first_deploy)[section]
    return StackModel(
        ROOT_TEMPLATE,
        environment.parameters,
        environment.region,
        environment.stack_name,
        environment.name,
        nested_overrides,
    )
