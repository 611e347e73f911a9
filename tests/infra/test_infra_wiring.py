"""template.yaml: the application sections (order API, runbooks, post-trade) use what the nested
stacks provide (network, security group, keys, buckets, database, routing table) instead of
parameters or stand-ins of their own."""

from __future__ import annotations

from typing import Any

from tests.infra.templates import (
    ROOT_TEMPLATE,
    exemptions,
    load,
    resources,
    transformed,
)

TEMPLATE = load(ROOT_TEMPLATE)

PRIVATE_SUBNETS = {"Fn::Split": [",", {"Fn::GetAtt": ["NetworkStack", "Outputs.PrivateSubnetIds"]}]}
LAMBDA_SECURITY_GROUP = {"Fn::GetAtt": ["SecurityStack", "Outputs.LambdaSecurityGroupId"]}


def _functions() -> dict[str, dict[str, Any]]:
    return resources(transformed(ROOT_TEMPLATE), "AWS::Lambda::Function")


def test_every_function_runs_in_the_private_subnets_with_the_lambda_security_group() -> None:
    """Unconditionally: a function may leave the VPC only with a written OutsideVpc exemption."""
    functions = _functions()
    assert {"LedgerFunction", "SurveillanceFunction", "MarketDataFunction", "MigrationsFunction"} <= set(
        functions
    )
    wrong = {}
    for name, function in functions.items():
        if exemptions(function.get("Metadata", {})).get("OutsideVpc"):
            continue
        vpc = function["Properties"].get("VpcConfig")
        if vpc != {"SubnetIds": PRIVATE_SUBNETS, "SecurityGroupIds": [LAMBDA_SECURITY_GROUP]}:
            wrong[name] = vpc
    assert not wrong, f"functions outside the Globals VpcConfig: {wrong}"
