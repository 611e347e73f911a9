"""The pipeline's deploy role creates roles only inside a permissions boundary (finding 9).

The pipeline stack defines the boundary; its deploy role may create a role, or change a role's
permissions, only with that boundary on it, and may neither lift it nor rewrite the boundary
policy. Every role the application's stacks create carries it when the pipeline passes it, and the
boundary admits every action those roles' own policies grant (so it breaks nothing) but no IAM
write, STS or Organizations action. Requests are evaluated against the rendered policies.
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Any

import pytest

from tests.infra.templates import as_list
from tests.infra.test_infra_iam_lint import Rendered, lint
from tools.cfn_model import ACCOUNT, StackModel, environments

PIPELINE = StackModel(
    "stacks/pipeline.yaml",
    {"Environment": "dev", "AccessLogsBucketName": "meridian-dev-access-logs"},
    "us-east-1",
    "meridian-dev-PipelineStack",
    "dev",
)
BOUNDARY = str(PIPELINE.ref("PermissionsBoundaryPolicy"))
ROLE = f"arn:aws:iam::{ACCOUNT}:role/meridian-prod-OrdersApiFunctionRole-X"


def _decide(statements: list[dict[str, Any]], action: str, resource: str, context: dict[str, str]) -> bool:
    """IAM's evaluation for one policy: an explicit Deny wins, else any Allow, else denied."""

    def applies(statement: dict[str, Any]) -> bool:
        if not any(fnmatchcase(action.lower(), a.lower()) for a in as_list(statement["Action"])):
            return False
        if not any(fnmatchcase(resource, r) for r in as_list(statement["Resource"])):
            return False
        for operator, keys in statement.get("Condition", {}).items():
            assert operator in ("StringEquals", "ArnEquals"), operator
            for key, wanted in keys.items():
                if context.get(key) not in [str(v) for v in as_list(wanted)]:
                    return False
        return True

    matching = [s for s in statements if applies(s)]
    if any(s["Effect"] == "Deny" for s in matching):
        return False
    return any(s["Effect"] == "Allow" for s in matching)


def _deploy_role() -> list[dict[str, Any]]:
    (policy,) = PIPELINE.properties("DeployRole")["Policies"]
    return list(policy["PolicyDocument"]["Statement"])


@pytest.mark.parametrize(
    "action",
    ["iam:CreateRole", "iam:PutRolePolicy", "iam:AttachRolePolicy", "iam:PutRolePermissionsBoundary"],
)
def test_the_deploy_role_writes_role_permissions_only_with_the_boundary(action: str) -> None:
    statements = _deploy_role()
    assert _decide(statements, action, ROLE, {"iam:PermissionsBoundary": BOUNDARY})
    assert not _decide(statements, action, ROLE, {})
    other = f"arn:aws:iam::{ACCOUNT}:policy/meridian-dev-wide-open"
    assert not _decide(statements, action, ROLE, {"iam:PermissionsBoundary": other})
    outside = f"arn:aws:iam::{ACCOUNT}:role/admin"
    assert not _decide(statements, action, outside, {"iam:PermissionsBoundary": BOUNDARY})


def test_the_deploy_role_cannot_lift_or_rewrite_the_boundary() -> None:
    statements = _deploy_role()
    context = {"iam:PermissionsBoundary": BOUNDARY}
    assert not _decide(statements, "iam:DeleteRolePermissionsBoundary", ROLE, context)
    for action in ("iam:CreatePolicyVersion", "iam:DeletePolicy", "iam:DeletePolicyVersion"):
        assert not _decide(statements, action, BOUNDARY, context), action
    # The platform's own managed policies stay manageable.
    assert _decide(
        statements, "iam:CreatePolicyVersion", f"arn:aws:iam::{ACCOUNT}:policy/meridian-prod-X", {}
    )


def test_the_pipelines_policies_pass_parliament() -> None:
    for lid in ("DeployRole", "PermissionsBoundaryPolicy"):
        props = PIPELINE.properties(lid)
        documents = [p["PolicyDocument"] for p in props.get("Policies", [])] or [props["PolicyDocument"]]
        for document in documents:
            findings = lint(Rendered("stacks/pipeline.yaml", lid, "AWS::IAM::Role", lid, document))
            # Resource "*" is the written exemption of the Wildcard statements (Metadata.Meridian).
            assert not [f for f in findings if f.issue != "RESOURCE_STAR"], findings


def _application(section: str) -> StackModel:
    environment = environments()[section]
    return StackModel(
        "template.yaml",
        {**environment.parameters, "PermissionsBoundaryArn": BOUNDARY},
        environment.region,
        environment.stack_name,
        environment.name,
    )


def _grants(stack: StackModel, role: str) -> list[dict[str, Any]]:
    managed = {
        stack.ref(lid): stack.properties(lid)["PolicyDocument"]
        for lid in stack.of_type("AWS::IAM::ManagedPolicy")
    }
    props = stack.properties(role)
    documents = [p["PolicyDocument"] for p in as_list(props.get("Policies"))]
    documents += [managed[arn] for arn in as_list(props.get("ManagedPolicyArns")) if arn in managed]
    return [s for d in documents for s in as_list(d["Statement"]) if s["Effect"] == "Allow"]


@pytest.mark.parametrize("section", sorted(environments()))
def test_every_role_of_the_application_carries_the_boundary_and_fits_in_it(section: str) -> None:
    boundary = list(PIPELINE.properties("PermissionsBoundaryPolicy")["PolicyDocument"]["Statement"])
    roles = 0
    for stack in _application(section).all_stacks():
        for role in stack.of_type("AWS::IAM::Role"):
            roles += 1
            assert stack.properties(role).get("PermissionsBoundary") == BOUNDARY, (stack.path, role)
            for grant in _grants(stack, role):
                for action in as_list(grant["Action"]):
                    probe = action.replace("*", "Probe")
                    resources = [
                        r if "*" not in r else r.replace("*", "x")
                        for r in map(str, as_list(grant["Resource"]))
                    ]
                    assert any(_decide(boundary, probe, r, {}) for r in resources), (stack.path, role, action)
    assert roles > 30  # the SAM-generated function and state machine roles included


@pytest.mark.parametrize(
    ("action", "resource"),
    [
        ("iam:CreateRole", ROLE),
        ("iam:PutRolePolicy", ROLE),
        ("iam:AttachRolePolicy", ROLE),
        ("iam:CreateAccessKey", f"arn:aws:iam::{ACCOUNT}:user/admin"),
        ("iam:PassRole", f"arn:aws:iam::{ACCOUNT}:role/admin"),
        ("sts:AssumeRole", f"arn:aws:iam::{ACCOUNT}:role/admin"),
        ("organizations:LeaveOrganization", "*"),
    ],
)
def test_the_boundary_keeps_identity_and_account_changes_out(action: str, resource: str) -> None:
    boundary = list(PIPELINE.properties("PermissionsBoundaryPolicy")["PolicyDocument"]["Statement"])
    assert not _decide(boundary, action, resource, {})


def test_without_a_boundary_the_application_sets_none() -> None:
    environment = environments()["default"]
    root = StackModel(
        "template.yaml", environment.parameters, environment.region, environment.stack_name, environment.name
    )
    assert all("PermissionsBoundary" not in root.properties(r) for r in root.of_type("AWS::IAM::Role"))
