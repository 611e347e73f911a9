"""VPC endpoint policies (stacks/network.yaml): a data perimeter around the platform's VPC.

Through the S3 and DynamoDB gateway endpoints and every interface endpoint, only this account's
principals reach only this account's resources; the AWS-owned buckets and SSM documents the
platform needs are named one by one. Checked by evaluating requests against each endpoint's
rendered policy (as prod deploys it: every interface endpoint exists there).
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

import pytest

from tests.infra.templates import as_list, exemptions
from tools.cfn_model import ACCOUNT, StackModel, environment_model

OTHER_ACCOUNT = "999988887777"
REGION = "us-east-1"


@dataclass(frozen=True)
class Request:
    principal_account: str
    action: str
    resource: str
    resource_account: str


def _condition_holds(condition: dict[str, Any], request: Request) -> bool:
    context = {
        "aws:PrincipalAccount": request.principal_account,
        "aws:ResourceAccount": request.resource_account,
    }
    for operator, keys in condition.items():
        assert operator == "StringEquals", f"this evaluator knows StringEquals only, not {operator}"
        for key, wanted in keys.items():
            if context.get(key) not in [str(v) for v in as_list(wanted)]:
                return False
    return True


def allows(policy: dict[str, Any], request: Request) -> bool:
    """Does an Allow statement admit the request (endpoint policies here have no Deny)?"""
    for statement in policy["Statement"]:
        assert statement["Effect"] == "Allow"
        actions = [a.lower() for a in as_list(statement["Action"])]
        if not any(fnmatchcase(request.action.lower(), a) for a in actions):
            continue
        if not any(fnmatchcase(request.resource, r) for r in as_list(statement["Resource"])):
            continue
        if _condition_holds(statement.get("Condition", {}), request):
            return True
    return False


@pytest.fixture(scope="module")
def network() -> StackModel:
    return environment_model("prod").nested("NetworkStack")


def _policy(network: StackModel, logical_id: str) -> dict[str, Any]:
    policy: dict[str, Any] = network.properties(logical_id)["PolicyDocument"]
    return policy


def test_every_endpoint_has_a_policy(network: StackModel) -> None:
    endpoints = network.of_type("AWS::EC2::VPCEndpoint")
    assert len(endpoints) == 14  # two gateways and twelve interface endpoints in prod
    for lid in endpoints:
        assert "PolicyDocument" in network.properties(lid), lid
        for statement in _policy(network, lid)["Statement"]:
            if str(statement.get("Sid", "")).startswith("Wildcard"):
                assert exemptions(network.resources[lid]["Metadata"]).get(statement["Sid"]), lid


def test_s3_admits_this_accounts_callers_on_this_accounts_buckets_only(network: StackModel) -> None:
    policy = _policy(network, "S3GatewayEndpoint")
    engine_state = "arn:aws:s3:::meridian-prod-engine-state/shards/default/journal/j.log"
    assert allows(policy, Request(ACCOUNT, "s3:PutObject", engine_state, ACCOUNT))
    # Our credentials cannot carry data out to a bucket of another account, ...
    assert not allows(policy, Request(ACCOUNT, "s3:PutObject", "arn:aws:s3:::exfil/x", OTHER_ACCOUNT))
    # ... nor can another account's credentials be used from inside the VPC.
    assert not allows(policy, Request(OTHER_ACCOUNT, "s3:GetObject", "arn:aws:s3:::theirs/x", OTHER_ACCOUNT))
    assert not allows(policy, Request(OTHER_ACCOUNT, "s3:GetObject", engine_state, ACCOUNT))


@pytest.mark.parametrize(
    ("action", "resource"),
    [
        (
            "s3:GetObject",
            f"arn:aws:s3:::al2023-repos-{REGION}-de612dc2/core/mirrors/latest/x86_64/repodata.xml",
        ),
        ("s3:GetObject", f"arn:aws:s3:::prod-{REGION}-starport-layer-bucket/layer"),
        ("s3:PutObject", "arn:aws:s3:::cloudformation-custom-resource-response-useast1/arn%3Aaws/x"),
    ],
)
def test_s3_admits_the_aws_owned_buckets_the_platform_needs(
    network: StackModel, action: str, resource: str
) -> None:
    """dnf on the nodes, ECR image layers, and the migrations custom resource's answer to CloudFormation."""
    assert allows(_policy(network, "S3GatewayEndpoint"), Request(ACCOUNT, action, resource, "aws-owned"))


def test_aws_owned_buckets_are_read_only_and_named(network: StackModel) -> None:
    policy = _policy(network, "S3GatewayEndpoint")
    repo = f"arn:aws:s3:::al2023-repos-{REGION}-de612dc2/x"
    assert not allows(policy, Request(ACCOUNT, "s3:PutObject", repo, "aws-owned"))
    assert not allows(
        policy, Request(ACCOUNT, "s3:GetObject", f"arn:aws:s3:::al2023-repos-{REGION}-evil/x", "x")
    )


def test_dynamodb_admits_this_accounts_tables_only(network: StackModel) -> None:
    policy = _policy(network, "DynamoDbGatewayEndpoint")
    table = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/meridian-orders-prod"
    assert allows(policy, Request(ACCOUNT, "dynamodb:PutItem", table, ACCOUNT))
    theirs = f"arn:aws:dynamodb:{REGION}:{OTHER_ACCOUNT}:table/t"
    assert not allows(policy, Request(ACCOUNT, "dynamodb:PutItem", theirs, OTHER_ACCOUNT))


@pytest.mark.parametrize(
    ("endpoint", "action"),
    [
        ("KinesisStreamsEndpoint", "kinesis:PutRecords"),
        ("EventsEndpoint", "events:PutEvents"),
        ("SqsEndpoint", "sqs:SendMessage"),
        ("SnsEndpoint", "sns:Publish"),
        ("KmsEndpoint", "kms:Decrypt"),
        ("StatesEndpoint", "states:SendTaskSuccess"),
        ("SecretsManagerEndpoint", "secretsmanager:GetSecretValue"),
        ("MonitoringEndpoint", "cloudwatch:PutMetricData"),
        ("LogsEndpoint", "logs:PutLogEvents"),
        ("XrayEndpoint", "xray:PutTraceSegments"),
        ("SsmEndpoint", "ssm:GetParameter"),
        ("ExecuteApiEndpoint", "execute-api:Invoke"),
    ],
)
def test_interface_endpoints_admit_this_accounts_callers_on_its_resources_only(
    network: StackModel, endpoint: str, action: str
) -> None:
    policy = _policy(network, endpoint)
    service = action.split(":")[0]
    ours = f"arn:aws:{service}:{REGION}:{ACCOUNT}:thing"
    theirs = f"arn:aws:{service}:{REGION}:{OTHER_ACCOUNT}:thing"
    assert allows(policy, Request(ACCOUNT, action, ours, ACCOUNT))
    assert not allows(policy, Request(ACCOUNT, action, theirs, OTHER_ACCOUNT))
    assert not allows(policy, Request(OTHER_ACCOUNT, action, ours, ACCOUNT))
    other_service = "sqs:SendMessage" if service != "sqs" else "sns:Publish"
    assert not allows(policy, Request(ACCOUNT, other_service, ours, ACCOUNT))


def test_ssm_admits_aws_public_parameters_and_documents_to_this_account_only(network: StackModel) -> None:
    policy = _policy(network, "SsmEndpoint")
    document = f"arn:aws:ssm:{REGION}::document/AWS-RunShellScript"
    assert allows(policy, Request(ACCOUNT, "ssm:GetDocument", document, "aws-owned"))
    assert not allows(policy, Request(OTHER_ACCOUNT, "ssm:GetDocument", document, "aws-owned"))
    assert not allows(
        policy, Request(ACCOUNT, "ssm:PutParameter", f"arn:aws:ssm:{REGION}::parameter/aws/x", "x")
    )
