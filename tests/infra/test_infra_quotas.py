"""Account quotas: what each environment takes of the quotas a deploy consumes, summed over three
environments in one account and region, fits the account's default quotas.

Two readings: three environments deployed with the template's defaults (every quota-taking choice
is a parameter whose default is the dev environment), and samconfig.toml's three us-east-1
environments (dev, staging, prod) as configured. docs/deploy.md lists each quota and the ones to
raise for production scale.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.infra.templates import ROOT, ROOT_TEMPLATE
from tools.cfn_model import StackModel, environment_model, environments

Counter = Callable[[list[StackModel]], int]


def _count(resource_type: str) -> Counter:
    return lambda stacks: sum(len(s.of_type(resource_type)) for s in stacks)


def _reserved_concurrency(stacks: list[StackModel]) -> int:
    return sum(
        int(s.properties(lid).get("ReservedConcurrentExecutions", 0))
        for s in stacks
        for lid in s.of_type("AWS::Lambda::Function")
    )


def _kinesis_shards(stacks: list[StackModel]) -> int:
    return sum(
        int(s.properties(lid).get("ShardCount", 0))  # ON_DEMAND streams count against no shard quota here
        for s in stacks
        for lid in s.of_type("AWS::Kinesis::Stream")
    )


def _nat_gateways_in_first_az(stacks: list[StackModel]) -> int:
    return sum(
        1
        for s in stacks
        for lid in s.of_type("AWS::EC2::NatGateway")
        if s.properties(lid)["SubnetId"] == s.ref("PublicSubnetA")
    )


def _fargate_vcpus(stacks: list[StackModel]) -> int:
    total = 0.0
    for s in stacks:
        for lid in s.of_type("AWS::ECS::Service"):
            definition = s.properties(s.template["Resources"][lid]["Properties"]["TaskDefinition"]["Ref"])
            total += int(s.properties(lid)["DesiredCount"]) * int(definition["Cpu"]) / 1024
    return int(total + 0.999)


# (quota as Service Quotas names it, its default, what one environment takes of it)
QUOTAS: list[tuple[str, int, Counter]] = [
    ("EC2-VPC Elastic IPs", 5, _count("AWS::EC2::EIP")),
    ("VPCs per Region", 5, _count("AWS::EC2::VPC")),
    ("Internet gateways per Region", 5, _count("AWS::EC2::InternetGateway")),
    ("NAT gateways per Availability Zone", 5, _nat_gateways_in_first_az),
    ("Transit gateways per account", 5, _count("AWS::EC2::TransitGateway")),
    # 1,000 concurrent executions, of which AWS keeps 100 unreserved.
    ("Lambda concurrent executions (reservable)", 900, _reserved_concurrency),
    ("CloudTrail trails per Region", 5, _count("AWS::CloudTrail::Trail")),
    ("Kinesis shards per Region (us-east-1)", 500, _kinesis_shards),
    ("Fargate On-Demand vCPU resource count", 6, _fargate_vcpus),
]


def _defaults(environment: str, cidr: str) -> list[StackModel]:
    return StackModel(
        ROOT_TEMPLATE,
        {"Environment": environment, "VpcCidr": cidr},
        "us-east-1",
        f"meridian-{environment}",
        environment,
    ).all_stacks()


def _sums(deployments: list[list[StackModel]]) -> dict[str, tuple[int, list[int]]]:
    return {name: (default, [count(stacks) for stacks in deployments]) for name, default, count in QUOTAS}


def test_three_environments_with_the_template_defaults_fit_a_default_account() -> None:
    deployments = [
        _defaults(name, cidr)
        for name, cidr in (("dev", "10.10.0.0/16"), ("staging", "10.20.0.0/16"), ("prod", "10.0.0.0/16"))
    ]
    sums = _sums(deployments)
    over = {name: (default, taken) for name, (default, taken) in sums.items() if sum(taken) > default}
    assert not over, f"quota -> (default, each environment's share): {over}"
    # Each environment takes something of every quota counted (the counters see the resources).
    assert all(all(t > 0 for t in taken) for name, (_, taken) in sums.items() if "Transit" not in name)
    assert sums["Lambda concurrent executions (reservable)"][1] == [176, 176, 176]
    assert sums["EC2-VPC Elastic IPs"][1] == [1, 1, 1]


def test_samconfigs_environments_of_one_region_fit_a_default_account() -> None:
    sections = [s for s, e in environments().items() if e.region == "us-east-1"]
    assert sorted(sections) == ["default", "prod", "staging"]
    sums = _sums([environment_model(s).all_stacks() for s in sections])
    over = {name: (default, taken) for name, (default, taken) in sums.items() if sum(taken) > default}
    assert not over, over
    assert sum(sums["EC2-VPC Elastic IPs"][1]) == 4  # prod's two NAT gateways, one each for dev and staging


def test_the_seed_layout_would_not_have_fit() -> None:
    """What the counters caught: two NAT gateways and 336 reserved executions in every environment."""
    seed = {
        "NatGatewayCount": "2",
        "OrdersApiReservedConcurrency": "200",
        "OrderFlowReservedConcurrency": "20",
    }
    deployments = [
        StackModel(ROOT_TEMPLATE, {"Environment": n, **seed}, "us-east-1", f"meridian-{n}", n).all_stacks()
        for n in ("dev", "staging", "prod")
    ]
    sums = _sums(deployments)
    assert sum(sums["EC2-VPC Elastic IPs"][1]) == 6
    assert sum(sums["Lambda concurrent executions (reservable)"][1]) == 1008


@pytest.mark.parametrize("quota", [name for name, _, _ in QUOTAS])
def test_the_guide_lists_every_quota(quota: str) -> None:
    guide = (ROOT / "docs" / "deploy.md").read_text()
    section = guide.split("### Account quotas", 1)[1].split("\n## ", 1)[0]
    assert quota in section
