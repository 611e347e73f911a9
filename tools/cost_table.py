"""The monthly cost table of docs/deploy.md, computed from the templates and tools/prices.toml.

Each environment of samconfig.toml (dev, prod, dr) is evaluated as it would deploy
(``tools.cfn_model``): the resources its conditions create, with its parameter values. Each cost
driver counts what it is priced by in those resources (NAT gateways, interface endpoints per AZ,
the node's instance type and tenancy, the journal's type, size and IOPS, the database's class and
Multi-AZ, Kinesis shards and retention, Fargate task sizes ...) and multiplies by the price table.
So the table cannot drift from the templates: ``python -m tools.cost_table --write`` rewrites it
between its markers in docs/deploy.md, and a test fails when the committed table differs.
"""

from __future__ import annotations

import argparse
import sys
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tools.cfn_model import StackModel, environment_model
from tools.cfn_templates import ROOT

PRICES_FILE = ROOT / "tools" / "prices.toml"
GUIDE = ROOT / "docs" / "deploy.md"
START, END = "<!-- cost-table:start -->", "<!-- cost-table:end -->"
ENVIRONMENTS = {"default": "dev", "prod": "prod", "dr": "dr (warm standby)"}
ROOT_VOLUME_GIB = 30  # the node's gp3 root volume (hotpath launch template)


@dataclass(frozen=True)
class Cost:
    usd: float
    basis: str


Driver = Callable[["Environment"], Cost]


class Environment:
    """One environment's stacks, with what the drivers ask of them."""

    def __init__(self, section: str, prices: dict[str, Any]) -> None:
        self.root = environment_model(section)
        self.name = self.root.environment
        self.stacks = self.root.all_stacks()
        self.prices = prices
        self.hours: float = prices["hours_per_month"]

    def stack(self, logical_id: str) -> StackModel:
        return self.root.nested(logical_id)

    def each(self, resource_type: str) -> list[tuple[StackModel, str]]:
        return [(stack, lid) for stack in self.stacks for lid in stack.of_type(resource_type)]


def _launch(env: Environment) -> tuple[dict[str, Any], int]:
    hotpath = env.stack("HotpathStack")
    data = hotpath.properties("NodeLaunchTemplate")["LaunchTemplateData"]
    # The fleet once a release is deployed (before that it is empty): ShardCount shards, each one
    # node or, replicated, a primary and a standby. High volatility's spare nodes run only while the
    # market is volatile and are not counted (docs/deploy.md, "Matching fleet").
    per_shard = 2 if hotpath.condition("IsReplicated") else int(hotpath.parameters["NodeCount"])
    return data, per_shard * int(hotpath.parameters["ShardCount"])


def dedicated_fee(env: Environment) -> Cost:
    data, nodes = _launch(env)
    if data["Placement"]["Tenancy"] != "dedicated" or nodes == 0:
        return Cost(0.0, "shared tenancy: no fee")
    return Cost(
        env.prices["ec2"]["dedicated_region_fee_per_hour"] * env.hours, "dedicated nodes in the region"
    )


def matching_nodes(env: Environment) -> Cost:
    data, nodes = _launch(env)
    tenancy = data["Placement"]["Tenancy"]
    shared, dedicated = env.prices["ec2"]["instance_per_hour"][data["InstanceType"]]
    hourly = dedicated if tenancy == "dedicated" else shared
    return Cost(hourly * nodes * env.hours, f"{nodes} x {data['InstanceType']}, {tenancy} tenancy")


def journal_volumes(env: Environment) -> Cost:
    data, nodes = _launch(env)
    ebs = env.prices["ebs"]
    journal = next(m["Ebs"] for m in data["BlockDeviceMappings"] if m["DeviceName"] == "/dev/sdf")
    size, iops, kind = int(journal["VolumeSize"]), int(journal["Iops"]), journal["VolumeType"]
    if kind == "io2":
        monthly = size * ebs["io2_per_gb_month"] + iops * ebs["io2_per_iops_month"]
    else:
        monthly = size * ebs["gp3_per_gb_month"] + max(0, iops - 3000) * ebs["gp3_per_iops_month_over_3000"]
    monthly += ROOT_VOLUME_GIB * ebs["gp3_per_gb_month"]
    return Cost(monthly * nodes, f"{kind} {size} GiB, {iops:,} IOPS (+ {ROOT_VOLUME_GIB} GiB gp3 root)")


def nat_gateways(env: Environment) -> Cost:
    count = len(env.each("AWS::EC2::NatGateway"))
    return Cost(count * env.prices["network"]["nat_gateway_per_hour"] * env.hours, f"{count}, before data")


def interface_endpoints(env: Environment) -> Cost:
    endpoints = [
        (stack, lid)
        for stack, lid in env.each("AWS::EC2::VPCEndpoint")
        if stack.properties(lid)["VpcEndpointType"] == "Interface"
    ]
    azs = sum(len(stack.properties(lid)["SubnetIds"]) for stack, lid in endpoints)
    usd = azs * env.prices["network"]["interface_endpoint_per_az_hour"] * env.hours
    return Cost(usd, f"{len(endpoints)} endpoints, {azs} endpoint-AZs")


def transit_gateway(env: Environment) -> Cost:
    """Every attachment of the hub is billed by the hour: the VPC's, the VPN's and Direct Connect's
    (created by their own resources) and the peering with the other region (once routed here)."""
    vpns = env.each("AWS::EC2::VPNConnection")
    associations = env.each("AWS::EC2::TransitGatewayRouteTableAssociation")
    kinds = {
        "VPC": len(env.each("AWS::EC2::TransitGatewayAttachment")),
        "VPN": sum(1 for stack, lid in vpns if "TransitGatewayId" in stack.properties(lid)),
        "Direct Connect": len(env.each("AWS::DirectConnect::DirectConnectGatewayAssociation")),
        "peering": sum(1 for _, lid in associations if lid == "TransitGatewayPeerAssociation"),
    }
    count = sum(kinds.values())
    usd = count * env.prices["network"]["transit_gateway_attachment_per_hour"] * env.hours
    basis = ", ".join(f"{n} {kind}" for kind, n in kinds.items() if n)
    return Cost(usd, f"{basis} attachment{'s' if count > 1 else ''}" if count else "none")


def load_balancers(env: Environment) -> Cost:
    count = len(env.each("AWS::ElasticLoadBalancingV2::LoadBalancer"))
    return Cost(count * env.prices["network"]["load_balancer_per_hour"] * env.hours, f"{count} (NLB + ALB)")


def database(env: Environment) -> Cost:
    data = env.stack("DataStack")
    (lid,) = data.of_type("AWS::RDS::DBInstance")
    props = data.properties(lid)
    copies = 2 if str(props["MultiAZ"]).lower() == "true" else 1
    rds = env.prices["rds"]
    storage = int(data.parameters["DbAllocatedStorage"])
    hourly = rds["instance_per_hour"][props["DBInstanceClass"]]
    usd = copies * (hourly * env.hours + storage * rds["gp3_per_gb_month"])
    role = "replica" if lid == "DatabaseReplica" else "primary"
    return Cost(
        usd, f"{props['DBInstanceClass']} {role}, {'Multi-AZ' if copies == 2 else 'single-AZ'}, {storage} GiB"
    )


def kinesis(env: Environment) -> Cost:
    prices = env.prices["kinesis"]
    shards = extended = on_demand = 0
    for stack, lid in env.each("AWS::Kinesis::Stream"):
        props = stack.properties(lid)
        if "ShardCount" not in props:  # ON_DEMAND: billed per GB written and read, not modelled here
            on_demand += 1
            continue
        shards += int(props["ShardCount"])
        if int(props.get("RetentionPeriodHours", 24)) > 24:
            extended += int(props["ShardCount"])
    usd = (
        shards * prices["shard_per_hour"] + extended * prices["extended_retention_shard_per_hour"]
    ) * env.hours
    records = env.prices["usage"]["records_per_second"][env.name]
    usd += records * 3600 * env.hours / 1e6 * prices["put_payload_units_per_million"]
    note = f", {on_demand} on-demand stream(s) not priced" if on_demand else ""
    return Cost(usd, f"{shards} shards ({extended} kept beyond 24 h), {records:,} records/s{note}")


def fargate(env: Environment) -> Cost:
    prices = env.prices["fargate"]
    usd, tasks = 0.0, []
    for stack, lid in env.each("AWS::ECS::Service"):
        service = stack.properties(lid)
        definition = stack.properties(
            str(stack.template["Resources"][lid]["Properties"]["TaskDefinition"]["Ref"])
        )
        vcpu, gb = int(definition["Cpu"]) / 1024, int(definition["Memory"]) / 1024
        count = int(service["DesiredCount"])
        usd += count * (vcpu * prices["vcpu_per_hour"] + gb * prices["gb_per_hour"]) * env.hours
        tasks.append(f"{definition['ContainerDefinitions'][0]['Name']} {vcpu:g} vCPU/{gb:g} GB")
    return Cost(usd, ", ".join(tasks))


def small_items(env: Environment) -> Cost:
    other = env.prices["other"]
    rules = sum(len(stack.properties(lid)["Rules"]) for stack, lid in env.each("AWS::WAFv2::WebACL"))
    acls = len(env.each("AWS::WAFv2::WebACL"))
    keys = len(env.each("AWS::KMS::Key"))
    secrets = len(env.each("AWS::SecretsManager::Secret")) + len(
        env.stack("DataStack").of_type("AWS::RDS::DBInstance")
    )
    alarms = len(env.each("AWS::CloudWatch::Alarm"))
    dashboards = len(env.each("AWS::CloudWatch::Dashboard"))
    checks = len(env.each("AWS::Route53::HealthCheck"))
    vpn = len(env.each("AWS::EC2::VPNConnection"))
    usd = (
        acls * other["waf_web_acl_per_month"]
        + rules * other["waf_rule_per_month"]
        + keys * other["kms_key_per_month"]
        + secrets * other["secret_per_month"]
        + alarms * other["alarm_per_month"]
        + dashboards * other["dashboard_per_month"]
        + checks * other["health_check_per_month"]
        + vpn * env.prices["network"]["vpn_connection_per_hour"] * env.hours
    )
    basis = f"WAF {rules} rules, {keys} KMS keys, {secrets} secrets, {alarms} alarms, {checks} health checks"
    return Cost(usd, basis + (f", {vpn} VPN" if vpn else ""))


DRIVERS: list[tuple[str, Driver]] = [
    ("Dedicated Instances region fee", dedicated_fee),
    ("C5n matching node", matching_nodes),
    ("Journal volume", journal_volumes),
    ("NAT gateways", nat_gateways),
    ("Interface endpoints (AWS APIs + the hot-path PrivateLink endpoint)", interface_endpoints),
    ("Transit Gateway", transit_gateway),
    ("NLB + ALB (base)", load_balancers),
    ("RDS PostgreSQL", database),
    ("Kinesis (market data + drop copy)", kinesis),
    ("Fargate (Prometheus, Grafana, engine tasks)", fargate),
    ("WAF, KMS, secrets, alarms, dashboard, health checks, VPN", small_items),
]


def prices() -> dict[str, Any]:
    return tomllib.loads(PRICES_FILE.read_text())


def compute() -> dict[str, dict[str, Cost]]:
    """Section -> driver name -> cost, with a "Total" entry."""
    table: dict[str, dict[str, Cost]] = {}
    for section in ENVIRONMENTS:
        env = Environment(section, prices())
        costs = {name: driver(env) for name, driver in DRIVERS}
        costs["Total"] = Cost(sum(c.usd for c in costs.values()), "")
        table[section] = costs
    return table


def shard_costs(table: dict[str, dict[str, Cost]]) -> dict[str, float]:
    """Section -> what one more matching shard (hot path ShardCount + 1) adds a month: its nodes and
    their journal volumes, the table's two per-node lines divided by the environment's shards."""
    found = {}
    for section in ENVIRONMENTS:
        shards = int(environment_model(section).nested("HotpathStack").parameters["ShardCount"])
        costs = table[section]
        found[section] = (costs["C5n matching node"].usd + costs["Journal volume"].usd) / shards
    return found


def render(table: dict[str, dict[str, Cost]]) -> str:
    header = "| Cost driver | " + " | ".join(ENVIRONMENTS.values()) + " |"
    lines = [header, "| --- |" + " ---: |" * len(ENVIRONMENTS)]
    for name, _ in DRIVERS:
        cells = [f"${table[s][name].usd:,.0f}<br>{table[s][name].basis}" for s in ENVIRONMENTS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    totals = [f"**${table[s]['Total'].usd:,.0f}**" for s in ENVIRONMENTS]
    lines.append("| **Total a month** | " + " | ".join(totals) + " |")
    return "\n".join(lines)


def rewrite(guide: str, table: str) -> str:
    before, rest = guide.split(START, 1)
    _, after = rest.split(END, 1)
    return f"{before}{START}\n{table}\n{END}{after}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--write", action="store_true", help="rewrite the table in docs/deploy.md")
    args = parser.parse_args(argv)
    table = render(compute())
    if args.write:
        GUIDE.write_text(rewrite(GUIDE.read_text(), table))
    else:
        print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
