"""Rules every template follows: IAM without unexplained wildcards, encrypted and locked-down buckets,
rotating keys, no security group open to the internet.

A deliberate exception is written down on the resource (see ``templates.exemptions``): a wildcard
statement's ``Sid`` starts with ``Wildcard`` and the resource's ``Metadata.Meridian.Exemptions`` maps
that Sid to the reason; bucket exceptions name the rule (``KmsEncryption``, ``AccessLogging``).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.infra.templates import (
    PolicyDocument,
    Template,
    all_template_paths,
    as_list,
    branches,
    exemptions,
    load,
    policy_documents,
    properties,
    resources,
    transformed,
)

# Action verbs that only read; everything else counts as a write.
READ_PREFIXES = (
    "Get",
    "List",
    "Describe",
    "BatchGet",
    "Query",
    "Scan",
    "Head",
    "Lookup",
    "Search",
    "Select",
    "View",
)
TEMPLATES = all_template_paths()

# Exemptions whose reason is the same wherever they appear, so it is written here once:
# these actions have no resource-level permissions (the service authorizes them only on "*"); SAM
# generates most of them for tracing, vended logs and VPC networking.
NO_RESOURCE_LEVEL_PERMISSIONS = frozenset(
    {
        "cloudwatch:PutMetricData",
        "xray:PutTraceSegments",
        "xray:PutTelemetryRecords",
        "xray:GetSamplingRules",
        "xray:GetSamplingTargets",
        "xray:GetSamplingStatisticSummaries",
        "logs:CreateLogDelivery",
        "logs:GetLogDelivery",
        "logs:UpdateLogDelivery",
        "logs:DeleteLogDelivery",
        "logs:ListLogDeliveries",
        "logs:PutResourcePolicy",
        "logs:DescribeResourcePolicies",
        "logs:DescribeLogGroups",
        "ec2:CreateNetworkInterface",
        "ec2:DeleteNetworkInterface",
        "ec2:AssignPrivateIpAddresses",
        "ec2:UnassignPrivateIpAddresses",
        # A task token names its execution; only its holder can answer it.
        "states:SendTaskSuccess",
        "states:SendTaskFailure",
        "states:SendTaskHeartbeat",
    }
)


def _template(path: str) -> Template:
    return transformed(path)


def _is_wildcard_action(action: str) -> bool:
    return action == "*" or action.endswith(":*")


def _is_write(action: str) -> bool:
    verb = action.split(":", 1)[-1]
    return _is_wildcard_action(action) or "*" in verb or not verb.startswith(READ_PREFIXES)


def _is_default_key_policy_root_statement(document: PolicyDocument, statement: dict[str, Any]) -> bool:
    """AWS's default key-policy statement: the account root gets kms:* so IAM policies decide access."""
    principal = statement.get("Principal", {})
    root = principal.get("AWS") if isinstance(principal, dict) else None
    root_text = str(root.get("Fn::Sub", root)) if isinstance(root, dict) else str(root)
    return (
        document.resource_type == "AWS::KMS::Key"
        and as_list(statement.get("Action")) == ["kms:*"]
        and root_text.endswith(":root")
        and ":iam::" in root_text
    )


def _reason(document: PolicyDocument, statement: dict[str, Any]) -> str | None:
    if _is_default_key_policy_root_statement(document, statement):
        return "AWS default key policy: the account's IAM policies decide who uses the key."
    sid = str(statement.get("Sid", ""))
    if not sid.startswith("Wildcard"):
        return None
    return exemptions(document.metadata).get(sid)


def _allow_statements(template: Template) -> list[tuple[PolicyDocument, dict[str, Any]]]:
    return [
        (document, statement)
        for document in policy_documents(template)
        for statement in document.statements()
        if statement.get("Effect") == "Allow"
    ]


@pytest.mark.parametrize("path", TEMPLATES)
def test_no_wildcard_action_without_a_written_reason(path: str) -> None:
    unexplained = []
    for document, statement in _allow_statements(_template(path)):
        wildcards = [
            a for a in as_list(statement.get("Action")) if isinstance(a, str) and _is_wildcard_action(a)
        ]
        if wildcards and not _reason(document, statement):
            unexplained.append(f"{document.logical_id} {document.where} {statement.get('Sid')}: {wildcards}")
    assert not unexplained, "wildcard actions need a Wildcard* Sid and a Metadata reason:\n" + "\n".join(
        unexplained
    )


@pytest.mark.parametrize("path", TEMPLATES)
def test_no_wildcard_resource_on_write_actions_without_a_written_reason(path: str) -> None:
    unexplained = []
    for document, statement in _allow_statements(_template(path)):
        if not document.identity:
            continue  # in a resource policy (a key policy) "*" means the resource itself
        if "*" not in as_list(statement.get("Resource")):
            continue
        writes = [
            a
            for a in as_list(statement.get("Action"))
            if isinstance(a, str) and _is_write(a) and a not in NO_RESOURCE_LEVEL_PERMISSIONS
        ]
        if writes and not _reason(document, statement):
            unexplained.append(f"{document.logical_id} {document.where} {statement.get('Sid')}: {writes}")
    assert not unexplained, "write actions on Resource '*' need a Wildcard* Sid and a reason:\n" + "\n".join(
        unexplained
    )


def test_every_wildcard_reason_is_a_sentence() -> None:
    for path in TEMPLATES:
        for document, statement in _allow_statements(_template(path)):
            reason = _reason(document, statement)
            if reason is not None:
                assert len(reason.split()) >= 6, f"{path} {document.logical_id}: reason too short: {reason!r}"


def _bucket_policies(template: Template) -> dict[str, list[dict[str, Any]]]:
    """Bucket logical id -> statements of the bucket policies attached to it."""
    found: dict[str, list[dict[str, Any]]] = {}
    for _, policy in resources(template, "AWS::S3::BucketPolicy").items():
        bucket = policy["Properties"]["Bucket"]
        if isinstance(bucket, dict) and "Ref" in bucket:
            found.setdefault(bucket["Ref"], []).extend(
                concrete
                for statement in as_list(policy["Properties"]["PolicyDocument"]["Statement"])
                for concrete in branches(statement)
            )
    return found


def _buckets() -> list[tuple[str, str]]:
    return [(path, name) for path in TEMPLATES for name in resources(_template(path), "AWS::S3::Bucket")]


@pytest.mark.parametrize(("path", "bucket"), _buckets())
def test_every_bucket_is_versioned_encrypted_private_tls_only_and_logged(path: str, bucket: str) -> None:
    template = _template(path)
    props = properties(template, bucket)
    exempt = exemptions(template["Resources"][bucket].get("Metadata", {}))
    assert props.get("VersioningConfiguration", {}).get("Status") == "Enabled", f"{bucket} needs versioning"
    rules = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    default = rules[0]["ServerSideEncryptionByDefault"]
    if "KmsEncryption" in exempt:
        assert default["SSEAlgorithm"] == "AES256"
    else:
        assert default["SSEAlgorithm"] == "aws:kms"
        assert default.get("KMSMasterKeyID"), "a customer-managed key, not the AWS-managed one"
    assert props["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    if "AccessLogging" not in exempt:
        logging = props.get("LoggingConfiguration", {})
        assert logging.get("DestinationBucketName"), f"{bucket} needs S3 server access logging"
    assert props.get("LifecycleConfiguration", {}).get("Rules"), f"{bucket} needs lifecycle rules"
    tls_denials = [
        s
        for s in _bucket_policies(template).get(bucket, [])
        if s["Effect"] == "Deny"
        and s.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport") is False
    ]
    assert tls_denials, f"{bucket} needs a policy denying requests without TLS"


@pytest.mark.parametrize("path", TEMPLATES)
def test_every_kms_key_rotates(path: str) -> None:
    for name, key in resources(_template(path), "AWS::KMS::Key").items():
        assert key["Properties"]["EnableKeyRotation"] is True, name


@pytest.mark.parametrize("path", TEMPLATES)
def test_no_security_group_accepts_the_internet(path: str) -> None:
    template = _template(path)
    rules = [
        rule
        for group in resources(template, "AWS::EC2::SecurityGroup").values()
        for rule in as_list(group["Properties"].get("SecurityGroupIngress"))
    ]
    rules += [r["Properties"] for r in resources(template, "AWS::EC2::SecurityGroupIngress").values()]
    for rule in rules:
        for concrete in branches(rule.get("CidrIp")):
            assert concrete != "0.0.0.0/0", rule
        assert rule.get("CidrIpv6") != "::/0", rule


@pytest.mark.parametrize("path", TEMPLATES)
def test_every_security_group_rule_says_why(path: str) -> None:
    template = _template(path)
    for name, group in resources(template, "AWS::EC2::SecurityGroup").items():
        props = group["Properties"]
        for rule in as_list(props.get("SecurityGroupIngress")) + as_list(props.get("SecurityGroupEgress")):
            assert rule.get("Description"), f"{name}: {rule}"


def test_checkov_suppressions_carry_a_reason() -> None:
    for path in TEMPLATES:
        for name, res in load(path).get("Resources", {}).items():
            if not isinstance(res, dict):
                continue
            for skip in res.get("Metadata", {}).get("checkov", {}).get("skip", []):
                assert skip.get("id"), f"{path} {name}: {skip}"
                assert len(str(skip.get("comment", "")).split()) >= 3, f"{path} {name}: {skip}"
