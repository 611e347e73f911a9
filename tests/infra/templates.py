"""Load Meridian's CloudFormation/SAM templates for tests.

``load(path)`` parses a template with cfn-lint's YAML loader (it understands ``!Ref``, ``!Sub``,
``!GetAtt`` ... and returns the long forms). ``transformed(path)`` also applies the SAM transform, as
CloudFormation would, after replacing local artifact paths (``CodeUri: functions/x/``) with S3
locations the way ``sam validate`` does. Nested stacks are separate templates: load each one itself.

The helpers below walk what most infrastructure tests need: resources by type, policy documents
and their statements (both branches of an ``Fn::If``), and the nested stacks the root wires up.
Results are cached, so treat them as read-only.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from cfnlint.decode.cfn_yaml import load as cfn_yaml_load

# Loading and the SAM transform live with the repository's tools (the cost table uses them too).
from tools.cfn_templates import (
    HOTPATH_TEMPLATE,
    REGION,
    ROOT,
    ROOT_TEMPLATE,
    Template,
    all_template_paths,
    load,
    nested_template_paths,
    transformed,
)

__all__ = [
    "HOTPATH_TEMPLATE",
    "REGION",
    "ROOT",
    "ROOT_TEMPLATE",
    "STREAMING_TEMPLATE",
    "STREAM_ARNS",
    "STREAM_NAMES",
    "Template",
    "all_template_paths",
    "load",
    "load_yaml",
    "nested_output",
    "nested_template_paths",
    "transformed",
]


STREAMING_TEMPLATE = "stacks/streaming.yaml"


def nested_output(stack: str, output: str) -> dict[str, Any]:
    """How the root reads a nested stack's output: ``!GetAtt Stack.Outputs.Name``."""
    return {"Fn::GetAtt": [stack, f"Outputs.{output}"]}


# The Kinesis streams live in the streaming stack; the root reads them through its outputs.
STREAM_ARNS = {
    "MarketDataStream": nested_output("StreamingStack", "MarketDataStreamArn"),
    "ExecutionsStream": nested_output("StreamingStack", "ExecutionsStreamArn"),
}
STREAM_NAMES = {
    "MarketDataStream": nested_output("StreamingStack", "MarketDataStreamName"),
    "ExecutionsStream": nested_output("StreamingStack", "ExecutionsStreamName"),
}


def load_yaml(path: str) -> Any:
    """Any YAML file of the repository (buildspec, Prometheus, Grafana provisioning) as plain data."""
    return json.loads(json.dumps(cfn_yaml_load(str(ROOT / path))))


def resources(template: Template, resource_type: str | None = None) -> dict[str, dict[str, Any]]:
    """Logical id -> resource, optionally only those of ``resource_type``."""
    found = {}
    for name, resource in template.get("Resources", {}).items():
        if not isinstance(resource, dict):
            continue  # Fn::ForEach blocks are lists
        if resource_type is None or resource.get("Type") == resource_type:
            found[name] = resource
    return found


def resource(template: Template, logical_id: str) -> dict[str, Any]:
    found: dict[str, Any] = template["Resources"][logical_id]
    return found


def properties(template: Template, logical_id: str) -> dict[str, Any]:
    found: dict[str, Any] = resource(template, logical_id).get("Properties", {})
    return found


def one(template: Template, resource_type: str) -> tuple[str, dict[str, Any]]:
    """The single resource of a type (fails the test when there are none or several)."""
    found = resources(template, resource_type)
    assert len(found) == 1, f"expected one {resource_type}, found {sorted(found)}"
    return next(iter(found.items()))


def branches(value: Any) -> Iterator[Any]:
    """Every concrete value an ``Fn::If`` may produce (``AWS::NoValue`` dropped), else the value."""
    if isinstance(value, dict) and set(value) == {"Fn::If"}:
        _, when_true, when_false = value["Fn::If"]
        yield from branches(when_true)
        yield from branches(when_false)
    elif isinstance(value, dict) and value == {"Ref": "AWS::NoValue"}:
        return
    else:
        yield value


def as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


@dataclass(frozen=True)
class PolicyDocument:
    """A policy document found in a template: where it is, and whether it is an identity policy."""

    logical_id: str
    resource_type: str
    where: str
    document: dict[str, Any]
    identity: bool
    metadata: dict[str, Any]

    def statements(self) -> Iterator[dict[str, Any]]:
        for statement in as_list(self.document.get("Statement")):
            for concrete in branches(statement):
                if isinstance(concrete, dict):
                    yield concrete


# Resource policies (principal-based) by resource type and the property holding them.
_RESOURCE_POLICIES = {
    "AWS::KMS::Key": "KeyPolicy",
    "AWS::S3::BucketPolicy": "PolicyDocument",
    "AWS::SNS::TopicPolicy": "PolicyDocument",
    "AWS::SQS::QueuePolicy": "PolicyDocument",
    "AWS::EFS::FileSystem": "FileSystemPolicy",
    "AWS::Backup::BackupVault": "AccessPolicy",
    "AWS::Logs::ResourcePolicy": "PolicyDocument",
    "AWS::Events::EventBusPolicy": "Statement",
}


def policy_documents(template: Template) -> Iterator[PolicyDocument]:
    """Every identity and resource policy document in ``template`` (apply the SAM transform first)."""
    for name, res in resources(template).items():
        rtype = res.get("Type", "")
        props = res.get("Properties", {})
        metadata = res.get("Metadata", {})
        if rtype == "AWS::IAM::Role":
            for policy in as_list(props.get("Policies")):
                for concrete in branches(policy):
                    yield PolicyDocument(
                        name,
                        rtype,
                        f"Policies/{concrete.get('PolicyName')}",
                        concrete["PolicyDocument"],
                        True,
                        metadata,
                    )
        elif rtype in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            yield PolicyDocument(name, rtype, "PolicyDocument", props["PolicyDocument"], True, metadata)
        elif rtype in _RESOURCE_POLICIES:
            document = props.get(_RESOURCE_POLICIES[rtype])
            if isinstance(document, dict):
                document = document if "Statement" in document else {"Statement": [document]}
                yield PolicyDocument(name, rtype, _RESOURCE_POLICIES[rtype], document, False, metadata)


def exemptions(metadata: dict[str, Any]) -> dict[str, str]:
    """Written reasons for deliberate exceptions: resource ``Metadata: {Meridian: {Exemptions: ...}}``.

    Keys are a rule name (``KmsEncryption``, ``AccessLogging``) or a policy statement's ``Sid``
    (wildcard statements have Sids starting with ``Wildcard``); values are the reasons.
    """
    found: dict[str, str] = metadata.get("Meridian", {}).get("Exemptions", {})
    return found


def nested_stacks(template: Template) -> dict[str, tuple[str, dict[str, Any]]]:
    """Logical id -> (template path, parameters) of every nested stack with a local template."""
    found = {}
    for name, res in resources(template).items():
        props = res.get("Properties", {})
        if res.get("Type") == "AWS::Serverless::Application" and isinstance(props.get("Location"), str):
            found[name] = (props["Location"], props.get("Parameters", {}))
        elif res.get("Type") == "AWS::CloudFormation::Stack" and not str(
            props.get("TemplateURL", "")
        ).startswith("http"):
            found[name] = (props["TemplateURL"], props.get("Parameters", {}))
    return found


def references(value: Any) -> Iterator[tuple[str, str]]:
    """Every ("Ref", name) and ("GetAtt", "Resource.Attribute") inside ``value``, Subs included."""
    if isinstance(value, dict):
        for key, inner in value.items():
            if key == "Ref" and isinstance(inner, str):
                yield "Ref", inner
            elif key == "Fn::GetAtt":
                yield "GetAtt", inner if isinstance(inner, str) else ".".join(inner)
            elif key == "Fn::Sub":
                text, variables = (inner, {}) if isinstance(inner, str) else (inner[0], inner[1])
                for name in _sub_variables(text):
                    if name not in variables:
                        yield ("GetAtt", name) if "." in name else ("Ref", name)
                yield from references(variables)
            else:
                yield from references(inner)
    elif isinstance(value, list):
        for item in value:
            yield from references(item)


def _sub_variables(text: str) -> Iterator[str]:
    start = text.find("${")
    while start != -1:
        end = text.find("}", start)
        name = text[start + 2 : end]
        if not name.startswith("!"):
            yield name
        start = text.find("${", end)
