"""Which service can open a TCP connection to which, computed from the security groups and network
ACLs the templates create for an environment (``tools.cfn_model``), compared with the flows the
platform declares: each declared flow is allowed, and nothing else is.

A flow from group S to group D on port P is allowed when S's egress rules admit D (by group or by a
range holding D's subnet) on P, D's ingress rules admit S the same way, and the network ACLs of both
subnets pass the request and its answer (the answer on an ephemeral port): stateless rules, first
match by rule number, deny by default. A group without inline egress rules keeps EC2's allow-all
egress. A replicated shard's two nodes reach each other on the replication port (9002) and on
nothing else; without replication (dev) node -> node is closed.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Network
from typing import Any

import pytest

from tests.infra.templates import as_list
from tools.cfn_model import environment_model

EPHEMERAL = 50000

# Where each security group's members live: (stack, logical id) -> subnet tier.
TIERS = {
    ("SecurityStack", "LambdaSecurityGroup"): "Private",
    ("SecurityStack", "MatchingClientSecurityGroup"): "Private",
    ("SecurityStack", "MonitoringSecurityGroup"): "Private",
    ("SecurityStack", "MarketDataSecurityGroup"): "Private",
    ("SecurityStack", "ComplianceSecurityGroup"): "Private",
    ("ContainersStack", "LoadBalancerSecurityGroup"): "Private",
    ("ContainersStack", "GatewaySecurityGroup"): "Private",
    ("NetworkStack", "EndpointSecurityGroup"): "Private",
    ("HotpathStack", "EndpointSecurityGroup"): "Private",
    ("HotpathStack", "LoadBalancerSecurityGroup"): "Hotpath",
    ("HotpathStack", "NodeSecurityGroup"): "Hotpath",
    ("DataStack", "DatabaseSecurityGroup"): "Data",
    ("DataStack", "FileSystemSecurityGroup"): "Data",
}
LAMBDAS = "SecurityStack/LambdaSecurityGroup"
MATCHING_CLIENTS = "SecurityStack/MatchingClientSecurityGroup"  # the functions that send orders
MONITORING = "SecurityStack/MonitoringSecurityGroup"
NODES = "HotpathStack/NodeSecurityGroup"
AWS_APIS = "NetworkStack/EndpointSecurityGroup"
PEER_LAMBDAS = "peer region/LambdaSecurityGroup"
GATEWAY = "ContainersStack/GatewaySecurityGroup"  # the streaming gateway's tasks
PEER_MATCHING_CLIENTS = "peer region/MatchingClientSecurityGroup"

# The platform's service-to-service flows (source, destination, port).
DECLARED = {
    (
        MATCHING_CLIENTS,
        "HotpathStack/EndpointSecurityGroup",
        9001,
    ),  # API and order-flow functions -> node (PrivateLink)
    (MATCHING_CLIENTS, "HotpathStack/LoadBalancerSecurityGroup", 9001),  # ... or the NLB directly
    ("HotpathStack/LoadBalancerSecurityGroup", NODES, 9001),  # NLB -> node
    ("HotpathStack/LoadBalancerSecurityGroup", NODES, 9101),  # NLB health checks
    (LAMBDAS, "DataStack/DatabaseSecurityGroup", 5432),  # functions -> ledger
    ("SecurityStack/ComplianceSecurityGroup", "DataStack/DatabaseSecurityGroup", 5432),
    (MONITORING, MONITORING, 9090),  # Grafana -> Prometheus
    (MONITORING, NODES, 9101),  # Prometheus scrapes the nodes
    (MONITORING, "SecurityStack/MarketDataSecurityGroup", 9101),
    (MONITORING, "DataStack/FileSystemSecurityGroup", 2049),  # their data on EFS
    ("ContainersStack/LoadBalancerSecurityGroup", MONITORING, 3000),  # operators -> Grafana
    ("ContainersStack/LoadBalancerSecurityGroup", MONITORING, 9090),  # operators -> Prometheus
    ("ContainersStack/LoadBalancerSecurityGroup", GATEWAY, 8080),  # WebSocket clients -> gateway
}
# A replicated shard (hot path ReplicatedShards true): the standby follows the primary's journal.
REPLICATION = (NODES, NODES, 9002)
# Every tier that calls AWS APIs reaches the interface endpoints (environments that create them).
API_CALLERS = {
    LAMBDAS,
    MONITORING,
    NODES,
    "SecurityStack/MarketDataSecurityGroup",
    "SecurityStack/ComplianceSecurityGroup",
    GATEWAY,
}
# The internal ALB admits HTTPS (only) from the VPC range, where operators' sessions arrive; every
# tier with HTTPS egress can open it. Nothing listens in clear text (port 80 is checked closed).
ALB = "ContainersStack/LoadBalancerSecurityGroup"
ALB_CLIENTS = {(caller, ALB, 443) for caller in API_CALLERS}
# The DR integrity checks: the other region's functions -> this region's ledger and node endpoint.
PEER_FLOWS = {
    (PEER_LAMBDAS, "DataStack/DatabaseSecurityGroup", 5432),
    (PEER_MATCHING_CLIENTS, "HotpathStack/EndpointSecurityGroup", 9001),
}
# The hot path's fleet (ShardCount): shard n's NLB and endpoint listener. The nodes serve every
# shard on 9001, so NLB -> node stays 9001; only the client-facing flows multiply.
SHARD_PORTS = {1: 9001, 2: 9011, 3: 9021, 4: 9031}


def shard_flows(shards: int) -> set[tuple[str, str, int]]:
    """The functions reach every shard's listener, through the endpoint or the NLB directly."""
    return {
        (MATCHING_CLIENTS, f"HotpathStack/{group}", SHARD_PORTS[n])
        for n in range(1, shards + 1)
        for group in ("EndpointSecurityGroup", "LoadBalancerSecurityGroup")
    }


def peer_shard_flows(shards: int) -> set[tuple[str, str, int]]:
    """The other region's book-checksum reads reach every shard's listener through the endpoint."""
    return {
        (PEER_MATCHING_CLIENTS, "HotpathStack/EndpointSecurityGroup", SHARD_PORTS[n])
        for n in range(1, shards + 1)
    }


@dataclass(frozen=True)
class Rule:
    protocol: str
    low: int
    high: int
    group: str | None
    cidr: str | None

    def admits(self, port: int, group: str, network: str) -> bool:
        if self.protocol not in ("-1", "tcp", "6") or not self.low <= port <= self.high:
            return False
        if self.group is not None:
            return self.group == group
        return self.cidr is not None and IPv4Network(network).subnet_of(IPv4Network(self.cidr))


def _rule(raw: dict[str, Any], peer_key: str) -> Rule:
    protocol = str(raw["IpProtocol"])
    low, high = (0, 65535) if protocol == "-1" else (int(raw["FromPort"]), int(raw["ToPort"]))
    return Rule(protocol, low, high, raw.get(peer_key), raw.get("CidrIp"))


class Environment:
    def __init__(self, section: str, shards: int = 1) -> None:
        fleet = {"HotpathStack": {"ShardCount": str(shards)}} if shards != 1 else None
        self.root = environment_model(section, nested_overrides=fleet)
        self.network = self.root.nested("NetworkStack")
        self.groups: dict[str, str] = {}  # symbol -> name
        self.ingress: dict[str, list[Rule]] = {}
        self.egress: dict[str, list[Rule]] = {}
        for stack_id, stack in self.root.nested_stacks().items():
            for lid in stack.of_type("AWS::EC2::SecurityGroup"):
                name = f"{stack_id}/{lid}"
                symbol = stack.ref(lid)
                self.groups[symbol] = name
                props = stack.properties(lid)
                self.ingress[name] = [
                    _rule(r, "SourceSecurityGroupId") for r in as_list(props.get("SecurityGroupIngress"))
                ]
                inline = as_list(props.get("SecurityGroupEgress"))
                everything = [Rule("-1", 0, 65535, None, "0.0.0.0/0")]
                self.egress[name] = (
                    [_rule(r, "DestinationSecurityGroupId") for r in inline] if inline else everything
                )
        for stack in self.root.nested_stacks().values():
            for kind, table, key in (
                ("AWS::EC2::SecurityGroupIngress", self.ingress, "SourceSecurityGroupId"),
                ("AWS::EC2::SecurityGroupEgress", self.egress, "DestinationSecurityGroupId"),
            ):
                for lid in stack.of_type(kind):
                    props = stack.properties(lid)
                    table[self.groups[props["GroupId"]]].append(_rule(props, key))
        for table in (self.ingress, self.egress):
            for rules in table.values():
                for i, rule in enumerate(rules):
                    if rule.group is not None:
                        rules[i] = Rule(rule.protocol, rule.low, rule.high, self.groups[rule.group], None)

    def subnet(self, tier: str) -> str:
        return str(self.network.properties(f"{tier}SubnetA")["CidrBlock"])

    def tier(self, group: str) -> str:
        stack, lid = group.split("/", 1)
        return TIERS[(stack, lid)]

    def acl_allows(self, tier: str, egress: bool, port: int, network: str) -> bool:
        """First matching entry of the tier's network ACL, by rule number."""
        subnet = IPv4Network(self.subnet(tier))
        acl = next(
            self.network.properties(lid)["NetworkAclId"]
            for lid in self.network.of_type("AWS::EC2::SubnetNetworkAclAssociation")
            if self.network.properties(lid)["SubnetId"] == self.network.ref(f"{tier}SubnetA")
        )
        entries = [
            self.network.properties(lid)
            for lid in self.network.of_type("AWS::EC2::NetworkAclEntry")
            if self.network.properties(lid)["NetworkAclId"] == acl
            and bool(self.network.properties(lid).get("Egress", False)) == egress
        ]
        for entry in sorted(entries, key=lambda e: int(e["RuleNumber"])):
            ports = entry.get("PortRange", {"From": 0, "To": 65535})
            protocol_matches = str(entry["Protocol"]) in ("-1", "6")
            in_range = int(ports["From"]) <= port <= int(ports["To"])
            if (
                protocol_matches
                and in_range
                and IPv4Network(network).subnet_of(IPv4Network(entry["CidrBlock"]))
            ):
                return bool(entry["RuleAction"] == "allow")
        assert subnet  # a subnet without entries denies everything
        return False


def _allowed(source: Environment, src: str, target: Environment, dst: str, port: int, src_net: str) -> bool:
    dst_net = target.subnet(target.tier(dst))
    peer = {PEER_LAMBDAS: LAMBDAS, PEER_MATCHING_CLIENTS: MATCHING_CLIENTS}
    src_tier = "Private" if src in peer else source.tier(src)
    src_name = peer.get(src, src)
    same_vpc = source is target
    out = any(r.admits(port, dst if same_vpc else "", dst_net) for r in source.egress[src_name])
    into = any(r.admits(port, src if same_vpc else "", src_net) for r in target.ingress[dst])
    dst_tier = target.tier(dst)
    acls = (
        source.acl_allows(src_tier, True, port, dst_net)
        and target.acl_allows(dst_tier, False, port, src_net)
        and target.acl_allows(dst_tier, True, EPHEMERAL, src_net)
        and source.acl_allows(src_tier, False, EPHEMERAL, dst_net)
    )
    return out and into and acls


def _ports(env: Environment) -> set[int]:
    ports = {r.low for rules in env.ingress.values() for r in rules if r.protocol != "-1"}
    return ports | {22, 80, 443, 5432, 9002, 9090, 9101, 2049, 3000} | set(SHARD_PORTS.values())


def _flows(section: str, shards: int = 1) -> set[tuple[str, str, int]]:
    env = Environment(section, shards)
    names = sorted(env.ingress)
    return {
        (src, dst, port)
        for src in names
        for dst in names
        for port in _ports(env)
        if _allowed(env, src, env, dst, port, env.subnet(env.tier(src)))
    }


@pytest.mark.parametrize(
    ("section", "shards"), [("default", 1), ("prod", 1), ("dr", 1), ("default", 3), ("prod", 4), ("dr", 2)]
)
def test_declared_flows_are_allowed_and_nothing_else(section: str, shards: int) -> None:
    allowed = _flows(section, shards)
    expected = set(DECLARED) | ALB_CLIENTS | shard_flows(shards)
    if environment_model(section).nested("HotpathStack").condition("IsReplicated"):
        expected.add(REPLICATION)
    if section != "default":  # interface endpoints only where InterfaceEndpoints=all
        expected |= {(caller, AWS_APIS, 443) for caller in API_CALLERS}
    assert not expected - allowed, f"declared but blocked: {sorted(expected - allowed)}"
    assert not allowed - expected, f"allowed but not declared: {sorted(allowed - expected)}"


def test_grafana_reaches_prometheus_and_the_nodes_reach_each_other_only_to_replicate() -> None:
    allowed = _flows("prod")
    assert (MONITORING, MONITORING, 9090) in allowed
    assert {f for f in allowed if f[0] == NODES and f[1] == NODES} == {REPLICATION}
    assert not {f for f in _flows("default") if f[0] == NODES and f[1] == NODES}  # dev: one node


@pytest.mark.parametrize("section", ["default", "prod"])
def test_only_the_nodes_reach_the_replication_port(section: str) -> None:
    env = Environment(section)
    names = sorted(env.ingress)
    reached = {
        (src, dst)
        for src in names
        for dst in names
        if _allowed(env, src, env, dst, 9002, env.subnet(env.tier(src)))
    }
    replicated = env.root.nested("HotpathStack").condition("IsReplicated")
    assert reached == ({(NODES, NODES)} if replicated else set())
    # and the hot-path network ACL refuses 9002 from the rest of the VPC, whatever the groups say
    assert env.acl_allows("Hotpath", False, 9002, env.subnet("Hotpath"))
    for tier in ("Private", "Public", "Data"):
        assert not env.acl_allows("Hotpath", False, 9002, env.subnet(tier)), tier


def test_a_fleet_of_three_reaches_each_shards_listener_from_the_functions_and_opens_nothing_else() -> None:
    one, three = _flows("prod", 1), _flows("prod", 3)
    assert three - one == {
        (MATCHING_CLIENTS, "HotpathStack/EndpointSecurityGroup", 9011),
        (MATCHING_CLIENTS, "HotpathStack/LoadBalancerSecurityGroup", 9011),
        (MATCHING_CLIENTS, "HotpathStack/EndpointSecurityGroup", 9021),
        (MATCHING_CLIENTS, "HotpathStack/LoadBalancerSecurityGroup", 9021),
    }
    assert one - three == set()
    assert not {f for f in three if f[2] == 9031}  # shard 4's port stays closed with three shards
    # the NLB still reaches the nodes on 9001 (and health checks on 9101) only, whichever shard
    assert {f[2] for f in three if f[1] == NODES} == {9001, 9002, 9101}


@pytest.mark.parametrize(
    ("here", "there", "shards"), [("dr", "prod", 1), ("prod", "dr", 1), ("dr", "prod", 3)]
)
def test_the_peer_regions_functions_reach_the_ledger_and_node_endpoint_and_nothing_else(
    here: str, there: str, shards: int
) -> None:
    source, target = Environment(there, shards), Environment(here, shards)
    peer_private = source.subnet("Private")
    allowed = {
        (group, dst, port)
        for group in (PEER_LAMBDAS, PEER_MATCHING_CLIENTS)  # a function carries both groups
        for dst in target.ingress
        for port in _ports(target)
        if _allowed(source, group, target, dst, port, peer_private)
    }
    assert allowed == PEER_FLOWS | peer_shard_flows(shards)
    # The peer's other tiers (its nodes, its data tier) reach nothing here.
    for tier in ("Hotpath", "Data"):
        other = source.subnet(tier)
        reached = {
            (dst, port)
            for dst in target.ingress
            for port in _ports(target)
            for group in (PEER_LAMBDAS, PEER_MATCHING_CLIENTS)
            if _allowed(source, group, target, dst, port, other)
        }
        assert not reached, (tier, reached)
    # and a route carries the traffic: the peer range goes to the Transit Gateway, answers included.
    routes = {
        (
            target.network.properties(lid)["RouteTableId"],
            target.network.properties(lid)["DestinationCidrBlock"],
        )
        for lid in target.network.of_type("AWS::EC2::Route")
    }
    peer = source.network.parameters["VpcCidr"]
    for table in ("PrivateRouteTableA", "PrivateRouteTableB", "DataRouteTable"):
        assert (target.network.ref(table), peer) in routes, table
