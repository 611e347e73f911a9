"""Every IAM policy of the transformed templates, as each environment of samconfig.toml deploys it,
passes parliament (https://github.com/duo-labs/parliament): it reads the AWS service authorization
reference offline and reports actions scoped to resources they do not support, unknown actions and
prefixes, condition keys an action does not know, mismatched condition types and malformed
statements.

Policies are linted after the SAM transform (the roles SAM generates included) with each
environment's conditions decided and its intrinsics evaluated (``tools.cfn_model``), so a statement
only one environment has is linted too. A finding is accepted only with a written reason below.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from parliament import analyze_policy_string

from tests.infra.templates import _RESOURCE_POLICIES, as_list, load
from tools.cfn_model import StackModel, environment_model, environments


@dataclass(frozen=True)
class Finding:
    path: str
    logical_id: str
    issue: str
    detail: str


@dataclass(frozen=True)
class Rendered:
    path: str
    logical_id: str
    resource_type: str
    where: str
    document: dict[str, Any]


def rendered_policies(stack: StackModel) -> Iterator[Rendered]:
    """Every identity and resource policy of ``stack`` with this environment's values."""
    for lid, res in stack.resources.items():
        rtype = res.get("Type", "")
        if rtype == "AWS::IAM::Role":
            for policy in as_list(stack.properties(lid).get("Policies")):
                yield Rendered(stack.path, lid, rtype, str(policy["PolicyName"]), policy["PolicyDocument"])
        elif rtype in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            yield Rendered(stack.path, lid, rtype, "PolicyDocument", stack.properties(lid)["PolicyDocument"])
        elif rtype in _RESOURCE_POLICIES:
            document = stack.properties(lid).get(_RESOURCE_POLICIES[rtype])
            if isinstance(document, dict):
                # An EventBusPolicy holds one statement; EventBridge files it in the bus's policy,
                # a 2012-10-17 document it writes itself.
                if "Statement" not in document:
                    document = {"Version": "2012-10-17", "Statement": [document]}
                yield Rendered(stack.path, lid, rtype, _RESOURCE_POLICIES[rtype], document)


# Findings accepted on purpose: (template, logical id, issue) -> why.
REASONS: dict[tuple[str, str, str], str] = {
    ("template.yaml", "DrSwitchoverPolicy", "RESOURCE_MISMATCH"): (
        "ssm:SendCommand is authorized per resource: one statement allows the AWS-RunShellScript "
        "document, another the matching nodes by tag (a tag condition in the document's statement "
        "would deny the document); parliament expects the required document in every statement"
    ),
    ("template.yaml", "DrAutomaticFailoverStateMachineRole", "RESOURCE_MISMATCH"): (
        "states:ListExecutions lists the executions of a state machine (resource: the state machine) "
        "or of a Map Run; parliament expects the Map Run's ARN in every statement naming it"
    ),
    ("stacks/data.yaml", "MonitoringFileSystem", "MALFORMED"): (
        "an EFS file system policy governs its own file system; it has no Resource element to name "
        "(and the template could not name the file system's own ARN inside it)"
    ),
    ("stacks/data.yaml", "ComplianceArchiveBucketPolicy", "MISMATCHED_TYPE_BUT_USABLE"): (
        "s3:x-amz-server-side-encryption-aws-kms-key-id is a String key holding a key ARN; AWS "
        "documents comparing it with the String operators, as here"
    ),
    ("stacks/monitoring.yaml", "GrafanaTaskRole", "MISMATCHED_TYPE_BUT_USABLE"): (
        "elasticfilesystem:AccessPointArn is a String key holding an access point ARN; StringEquals is "
        "AWS's documented comparison for it"
    ),
    ("stacks/monitoring.yaml", "PrometheusTaskRole", "MISMATCHED_TYPE_BUT_USABLE"): (
        "elasticfilesystem:AccessPointArn is a String key holding an access point ARN; StringEquals is "
        "AWS's documented comparison for it"
    ),
}

# Findings accepted by rule, wherever they occur: issue -> (does the rule apply, why).
NO_VERSION_REASON = (
    "SAM writes the inline policies of the roles it generates without a Version (the 2008 policy "
    "language); the only thing that language lacks is policy variables, which none of them uses"
)
KEY_POLICY_REASON = "in a key policy Resource '*' means the key itself, not every resource"


def _accepted_by_rule(policy: Rendered, issue: str) -> str | None:
    if issue == "NO_VERSION":
        sam_generated = policy.logical_id not in load(policy.path).get("Resources", {})
        uses_variables = "${aws:" in json.dumps(policy.document)
        return NO_VERSION_REASON if sam_generated and not uses_variables else None
    if issue == "RESOURCE_STAR" and policy.resource_type == "AWS::KMS::Key":
        return KEY_POLICY_REASON
    return None


def lint(policy: Rendered) -> list[Finding]:
    analysed = analyze_policy_string(json.dumps(policy.document))
    return [
        Finding(
            policy.path, policy.logical_id, f.issue, f"{policy.where}: {json.dumps(f.detail, default=str)}"
        )
        for f in analysed.findings
    ]


def _all_findings() -> dict[str, list[tuple[Rendered, Finding]]]:
    found: dict[str, list[tuple[Rendered, Finding]]] = {}
    for section in environments():
        for stack in environment_model(section).all_stacks():
            for policy in rendered_policies(stack):
                found.setdefault(section, []).extend((policy, f) for f in lint(policy))
    return found


FINDINGS = _all_findings()


@pytest.mark.parametrize("section", sorted(environments()))
def test_every_policy_passes_parliament_or_has_a_written_reason(section: str) -> None:
    unexplained = sorted(
        {
            f"{f.path} {f.logical_id} {f.issue} {f.detail[:300]}"
            for policy, f in FINDINGS.get(section, [])
            if (f.path, f.logical_id, f.issue) not in REASONS and not _accepted_by_rule(policy, f.issue)
        }
    )
    assert not unexplained, "parliament findings without a reason:\n" + "\n".join(unexplained)


def test_every_written_reason_is_still_needed() -> None:
    raised = {(f.path, f.logical_id, f.issue) for findings in FINDINGS.values() for _, f in findings}
    stale = set(REASONS) - raised
    assert not stale, f"reasons for findings parliament no longer reports: {sorted(stale)}"


def test_the_lint_sees_every_stacks_policies() -> None:
    linted = {
        (p.path, p.logical_id)
        for s in ("default", "dr")
        for st in environment_model(s).all_stacks()
        for p in rendered_policies(st)
    }
    paths = {path for path, _ in linted}
    assert {"template.yaml", "stacks/network.yaml", "hotpath/template.yaml", "stacks/data.yaml"} <= paths
    # SAM's generated function roles are linted, not only the roles written in the template.
    assert ("template.yaml", "OrdersApiFunctionRole") in linted
    assert ("template.yaml", "DrSwitchoverPolicy") in linted
    assert ("stacks/data.yaml", "SnapshotLifecycleRole") in linted


def test_parliament_reports_an_action_scoped_to_a_resource_it_does_not_support() -> None:
    """The defect this lint exists for: states:SendTask* authorize on '*' only."""
    policy = Rendered(
        "template.yaml",
        "Example",
        "AWS::IAM::Role",
        "example",
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Action": ["states:SendTaskSuccess", "logs:DescribeLogGroups"],
                    "Resource": "arn:aws:states:us-east-1:123456789012:stateMachine:meridian-order-flow-dev",
                }
            ],
        },
    )
    issues = {(f.issue, a["action"]) for f in lint(policy) for a in json.loads(f.detail.split(": ", 1)[1])}
    assert issues == {
        ("RESOURCE_MISMATCH", "states:SendTaskSuccess"),
        ("RESOURCE_MISMATCH", "logs:DescribeLogGroups"),
    }
