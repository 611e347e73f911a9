"""The hot path's fleet of matching shards (hot path ShardCount, 1-4): each shard its own Auto Scaling
group, target group and NLB listener (9001 + 10 x (n - 1)), its own lease key, archive prefix and node
number; the security groups admit exactly the listeners in use; the routing table sends every symbol
to shard 1 until a symbol move; volatility adds spare capacity and proposes moves, never a writer.

Checked on the hot-path template as environments deploy it (``tools.cfn_model``), with a release (the
groups have nodes) and ShardCount varied; the node's identity by running the bootstrap's tag reads.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.infra.node_bootstrap import USER_DATA, node_identity
from tests.infra.templates import ROOT, load
from tools import cost_table
from tools.cfn_model import StackModel, environment_model

HOTPATH = load("hotpath/template.yaml")
RELEASE = "s3://meridian-releases-prod/node/1.0.0.tar.gz"
PORTS = {1: 9001, 2: 9011, 3: 9021, 4: 9031}
GROUPS = {
    1: "NodeAutoScalingGroup",
    2: "Shard2AutoScalingGroup",
    3: "Shard3AutoScalingGroup",
    4: "Shard4AutoScalingGroup",
}
TARGETS = {1: "NodeTargetGroup", 2: "Shard2TargetGroup", 3: "Shard3TargetGroup", 4: "Shard4TargetGroup"}
LISTENERS = {1: "NodeListener", 2: "Shard2Listener", 3: "Shard3Listener", 4: "Shard4Listener"}


def fleet(section: str, shards: int, **overrides: str) -> StackModel:
    """The hot-path stack of ``section`` with a release and ``shards`` shards."""
    nested = environment_model(section).nested("HotpathStack")
    parameters = {
        name: ",".join(map(str, value)) if isinstance(value, list) else value
        for name, value in nested.parameters.items()
    }
    parameters |= {"NodeReleaseS3Uri": RELEASE, "ShardCount": str(shards), **overrides}
    return StackModel(nested.path, parameters, nested.region, nested.stack_name, nested.environment)


def _tags(model: StackModel, group: str) -> dict[str, str]:
    return {tag["Key"]: tag["Value"] for tag in model.properties(group)["Tags"]}


def _shard_groups(model: StackModel) -> dict[str, dict[str, Any]]:
    return {
        lid: res
        for lid, res in model.of_type("AWS::AutoScaling::AutoScalingGroup").items()
        if lid != "SpareAutoScalingGroup"
    }


def _ingress_ports(model: StackModel, group: str) -> dict[int, set[str]]:
    """Port -> the sources (group refs or CIDRs) the security group admits on it, inline or added."""
    rules = list(model.properties(group).get("SecurityGroupIngress", []))
    rules += [
        model.properties(lid)
        for lid in model.of_type("AWS::EC2::SecurityGroupIngress")
        if model.properties(lid)["GroupId"] == model.ref(group)
    ]
    found: dict[int, set[str]] = {}
    for rule in rules:
        assert rule["FromPort"] == rule["ToPort"], rule  # one port per rule, no ranges
        found.setdefault(int(rule["FromPort"]), set()).add(
            rule.get("SourceSecurityGroupId") or rule["CidrIp"]
        )
    return found


# ---- ShardCount 1: what existing stacks have ----


@pytest.mark.parametrize("section", ["default", "prod", "dr"])
def test_one_shard_is_the_stack_as_before(section: str) -> None:
    model = fleet(section, 1)
    assert set(_shard_groups(model)) == {"NodeAutoScalingGroup"}
    assert set(model.of_type("AWS::ElasticLoadBalancingV2::TargetGroup")) == {"NodeTargetGroup"}
    assert set(model.of_type("AWS::ElasticLoadBalancingV2::Listener")) == {"NodeListener"}
    assert not [lid for lid in model.resources if lid.startswith(("Shard", "MatchingClientsTo"))]
    assert not [lid for lid in model.resources if "Shard2" in lid or "Shard3" in lid or "Shard4" in lid]
    listener = model.properties("NodeListener")
    assert (listener["Port"], listener["DefaultActions"][0]["TargetGroupArn"]) == (
        9001,
        model.ref("NodeTargetGroup"),
    )
    assert model.properties("NodeAutoScalingGroup")["TargetGroupARNs"] == [model.ref("NodeTargetGroup")]
    tags = _tags(model, "NodeAutoScalingGroup")
    # shard 1 keeps the stack's own lease key and archive prefix: an existing shard stays the same shard
    assert tags["meridian:shard-index"] == "1"
    assert tags["meridian:shard"] == model.parameters["ShardName"]
    assert tags["meridian:archive-prefix"] == model.parameters["ArchivePrefix"]
    assert tags["meridian:scaling-group"] == "NodeAutoScalingGroup"
    assert model.output("ShardPorts") == "9001"
    assert model.output("ShardTargetGroupFullNames") == ""
    assert _ingress_ports(model, "EndpointSecurityGroup").keys() == {9001}
    assert _ingress_ports(model, "LoadBalancerSecurityGroup").keys() == {9001}


def test_more_shards_change_nothing_of_shard_1() -> None:
    """Raising ShardCount adds resources; every resource a one-shard stack has keeps its properties
    (the instance role gains the new shards' archive prefixes, the outputs list the new shards)."""
    one, three = fleet("prod", 1), fleet("prod", 3)
    assert set(one.resources) <= set(three.resources)
    for lid in one.resources:
        if lid != "NodeInstanceRole":
            assert one.properties(lid) == three.properties(lid), lid
    (policy_one,) = one.properties("NodeInstanceRole")["Policies"]
    (policy_three,) = three.properties("NodeInstanceRole")["Policies"]
    statements = policy_three["PolicyDocument"]["Statement"]
    assert [
        s for s in statements if s["Sid"] not in ("ShipAndRestoreFleetArchives", "ListFleetArchives")
    ] == (policy_one["PolicyDocument"]["Statement"])


# ---- ShardCount 3 ----


@pytest.mark.parametrize("section", ["default", "prod"])
def test_three_shards_are_three_groups_target_groups_and_listeners_on_distinct_ports(section: str) -> None:
    model = fleet(section, 3)
    assert set(_shard_groups(model)) == {GROUPS[n] for n in (1, 2, 3)}
    assert set(model.of_type("AWS::ElasticLoadBalancingV2::TargetGroup")) == {TARGETS[n] for n in (1, 2, 3)}
    assert set(model.of_type("AWS::ElasticLoadBalancingV2::Listener")) == {LISTENERS[n] for n in (1, 2, 3)}
    replicated = model.condition("IsReplicated")
    first = model.properties("NodeAutoScalingGroup")
    for n in (1, 2, 3):
        listener = model.properties(LISTENERS[n])
        assert (listener["Protocol"], listener["Port"]) == ("TCP", PORTS[n])
        assert listener["LoadBalancerArn"] == model.ref("NodeLoadBalancer")  # one NLB, one endpoint
        (action,) = listener["DefaultActions"]
        assert action == {"Type": "forward", "TargetGroupArn": model.ref(TARGETS[n])}
        target = model.properties(TARGETS[n])
        assert (target["Protocol"], target["Port"]) == ("TCP", 9001)  # the nodes serve on 9001
        assert target["HealthCheckProtocol"] == ("TCP" if replicated else "HTTP")
        group = model.properties(GROUPS[n])
        assert group["TargetGroupARNs"] == [model.ref(TARGETS[n])]  # its own, and only its own
        size = 2 if replicated else 1
        assert (int(group["MinSize"]), int(group["MaxSize"]), int(group["DesiredCapacity"])) == (
            size,
            size,
            size,
        )
        # the same nodes: launch template, placement group (one AZ), health checks, update policy
        for key in ("LaunchTemplate", "PlacementGroup", "VPCZoneIdentifier", "HealthCheckType"):
            assert group[key] == first[key], (n, key)
        update = model.value(model.resources[GROUPS[n]]["UpdatePolicy"])
        assert update == model.value(model.resources["NodeAutoScalingGroup"]["UpdatePolicy"])
    assert len({model.properties(LISTENERS[n])["Port"] for n in (1, 2, 3)}) == 3


def test_each_shard_has_its_own_lease_key_archive_prefix_node_number_and_signal(tmp_path: Path) -> None:
    model = fleet("prod", 3, NodeNumber="7")
    identities = {}
    for n in (1, 2, 3):
        tags = _tags(model, GROUPS[n])
        assert tags["meridian:shard-index"] == str(n)
        assert tags["meridian:scaling-group"] == GROUPS[n]  # the resource its rolling update waits on
        (tmp_path / str(n)).mkdir()
        identity = node_identity(tmp_path / str(n), "true", tags, {"NodeNumber": "7"})
        assert identity["status"] == "0", identity
        identities[n] = identity
    assert {n: i["shard"] for n, i in identities.items()} == {1: "default", 2: "default-2", 3: "default-3"}
    assert {n: i["node_number"] for n, i in identities.items()} == {1: "7", 2: "8", 3: "9"}
    prefixes = {n: i["archive_prefix"] for n, i in identities.items()}
    assert prefixes == {1: "shards/default", 2: "shards/default-2", 3: "shards/default-3"}
    assert {n: i["scaling_group"] for n, i in identities.items()} == {n: GROUPS[n] for n in (1, 2, 3)}
    for n, identity in identities.items():
        args = identity["shard_args"].split()
        assert args[args.index("--shard") + 1] == identity["shard"], n  # the node's lease key
    assert model.output("ShardNames") == "default,default-2,default-3"
    assert model.output("ShardArchivePrefixes") == "shards/default,shards/default-2,shards/default-3"


def test_the_instance_role_reaches_the_archive_prefixes_of_the_shards_in_use_only() -> None:
    (policy,) = fleet("prod", 3).properties("NodeInstanceRole")["Policies"]
    statements = {s["Sid"]: s for s in policy["PolicyDocument"]["Statement"]}
    bucket = statements["ShipAndRestoreShardArchive"]["Resource"].removesuffix("/shards/default/*")
    assert statements["ShipAndRestoreFleetArchives"]["Resource"] == [
        f"{bucket}/shards/default-2/*",
        f"{bucket}/shards/default-3/*",
    ]
    listed = statements["ListFleetArchives"]["Condition"]["StringLike"]["s3:prefix"]
    assert listed == ["shards/default-2/*", "shards/default-2", "shards/default-3/*", "shards/default-3"]


def test_a_node_without_its_shard_tags_or_past_the_last_node_number_does_not_start(tmp_path: Path) -> None:
    (tmp_path / "untagged").mkdir()
    assert node_identity(tmp_path / "untagged", "false", {})["status"] != "0"
    tags = {
        "meridian:shard-index": "2",
        "meridian:shard": "default-2",
        "meridian:archive-prefix": "shards/default-2",
        "meridian:scaling-group": "Shard2AutoScalingGroup",
    }
    (tmp_path / "last").mkdir()
    assert node_identity(tmp_path / "last", "false", tags, {"NodeNumber": "65534"})["node_number"] == "65535"
    (tmp_path / "past").mkdir()
    assert node_identity(tmp_path / "past", "false", tags, {"NodeNumber": "65535"})["status"] != "0"


@pytest.mark.parametrize("section", ["default", "prod", "dr"])
def test_the_security_groups_admit_the_listener_ports_in_use_and_no_other(section: str) -> None:
    model = fleet(section, 3)
    clients = model.parameters["LambdaSecurityGroupId"]
    endpoint = _ingress_ports(model, "EndpointSecurityGroup")
    balancer = _ingress_ports(model, "LoadBalancerSecurityGroup")
    assert endpoint.keys() == balancer.keys() == {9001, 9011, 9021}
    for port in (9001, 9011, 9021):
        assert clients in endpoint[port]
        assert balancer[port] == {clients, model.ref("EndpointSecurityGroup")}
        if model.parameters["PeerVpcCidr"]:  # the other region's book checksums, each shard's port
            assert len(endpoint[port]) == 3, endpoint[port]
        else:
            assert endpoint[port] == {clients}
    # the nodes serve every shard on 9001: their rules are a single shard's
    nodes = _ingress_ports(model, "NodeSecurityGroup")
    assert {9001, 9101} <= nodes.keys() <= {9001, 9002, 9101}
    # the functions' group opens each new listener towards this endpoint and NLB (and the peer's)
    added = [model.properties(lid) for lid in model.of_type("AWS::EC2::SecurityGroupEgress")]
    egress = {
        (rule["FromPort"], rule.get("DestinationSecurityGroupId") or rule["CidrIp"])
        for rule in added
        if rule["GroupId"] == clients
    }
    expected = {
        (port, model.ref(group))
        for port in (9011, 9021)
        for group in ("EndpointSecurityGroup", "LoadBalancerSecurityGroup")
    }
    if model.parameters["PeerVpcCidr"]:
        expected |= {(port, model.parameters["PeerVpcCidr"]) for port in (9011, 9021)}
    assert egress == expected
    assert all(rule["FromPort"] == rule["ToPort"] for rule in added)


# ---- routing table and outputs ----


def test_every_symbol_routes_to_shard_1_and_the_outputs_name_each_shards_address() -> None:
    model = fleet("prod", 3)
    routes = json.loads(model.properties("RoutesParameter")["Value"])
    host = model.output("EndpointDnsName")
    assert routes == {"default": f"{host}:9001", "symbols": {}}  # shards 2 and 3 own no symbols yet
    assert model.output("ShardAddresses") == f"{host}:9001,{host}:9011,{host}:9021"
    assert model.output("ShardPorts") == "9001,9011,9021"
    assert model.output("ShardCount") == "3"
    groups = model.output("ShardAutoScalingGroupNames").split(",")
    assert groups == [model.ref(GROUPS[n]) for n in (1, 2, 3)]
    assert model.output("ShardTargetGroupFullNames").count(",") == 1  # shards 2 and 3


def test_shard_count_is_one_to_four_and_the_ports_are_the_documented_ones() -> None:
    parameter = HOTPATH["Parameters"]["ShardCount"]
    assert (parameter["Default"], parameter["AllowedValues"]) == (1, [1, 2, 3, 4])
    four = fleet("prod", 4)
    assert sorted(
        four.properties(lid)["Port"] for lid in four.of_type("AWS::ElasticLoadBalancingV2::Listener")
    ) == [
        9001,
        9011,
        9021,
        9031,
    ]


# ---- volatility: spare capacity and a proposal, never a second writer ----


def test_volatility_scales_only_the_spare_group_which_serves_no_shard(tmp_path: Path) -> None:
    model = fleet("prod", 2)
    policies = model.of_type("AWS::AutoScaling::ScalingPolicy")
    assert {model.properties(lid)["AutoScalingGroupName"] for lid in policies} == {
        model.ref("SpareAutoScalingGroup")
    }
    spare = model.properties("SpareAutoScalingGroup")
    assert "TargetGroupARNs" not in spare  # no traffic reaches a spare
    assert (int(spare["MinSize"]), int(spare["MaxSize"])) == (0, int(model.parameters["MaxNodes"]))
    tags = _tags(model, "SpareAutoScalingGroup")
    # not a matching node to the DR runbook (it activates tag meridian:role=matching-node)
    assert tags["meridian:role"] == "spare-node"
    identity = node_identity(tmp_path, "true", tags)
    assert identity["status"] == "0", identity
    assert (identity["node_mode"], identity["replicated"], identity["shard_args"]) == ("spare", "false", "")
    assert 'if [ "$NODE_MODE" = "active" ]; then\n  /usr/local/sbin/meridian-activate' in USER_DATA
    high = model.properties("HighVolatilityAlarm")
    assert high["AlarmActions"] == [model.ref("ScaleOutPolicy"), model.ref("VolatilityTopic")]
    assert "symbol-move" in high["AlarmDescription"]


def test_no_spare_capacity_still_proposes_moves() -> None:
    model = fleet("prod", 2, MaxNodes="0")
    assert "SpareAutoScalingGroup" not in model.resources
    assert not model.of_type("AWS::AutoScaling::ScalingPolicy")
    assert model.properties("HighVolatilityAlarm")["AlarmActions"] == [model.ref("VolatilityTopic")]


# ---- alarms per shard (the observability stack, wired as the root is to wire it) ----


def test_each_shard_has_its_no_healthy_node_alarm_and_one_shard_has_only_the_regions() -> None:
    hotpath = environment_model("prod", nested_overrides={"HotpathStack": {"ShardCount": "3"}}).nested(
        "HotpathStack"
    )
    names = hotpath.output("ShardTargetGroupFullNames")
    root = environment_model(
        "prod",
        nested_overrides={
            "HotpathStack": {"ShardCount": "3"},
            "ObservabilityStack": {"HotpathShardTargetGroupFullNames": names},
        },
    )
    observability = root.nested("ObservabilityStack")
    alarms = {
        lid: observability.properties(lid)
        for lid in observability.of_type("AWS::CloudWatch::Alarm")
        if observability.properties(lid).get("MetricName") == "HealthyHostCount"
    }
    assert set(alarms) == {
        "HotpathHealthyNodesAlarm",
        "HotpathShard2HealthyNodesAlarm",
        "HotpathShard3HealthyNodesAlarm",
    }
    groups = {
        lid: {d["Name"]: d["Value"] for d in alarm["Dimensions"]}["TargetGroup"]
        for lid, alarm in alarms.items()
    }
    assert groups == {
        "HotpathHealthyNodesAlarm": hotpath.output("TargetGroupFullName"),
        "HotpathShard2HealthyNodesAlarm": hotpath.get_att("Shard2TargetGroup", "TargetGroupFullName"),
        "HotpathShard3HealthyNodesAlarm": hotpath.get_att("Shard3TargetGroup", "TargetGroupFullName"),
    }
    one = environment_model("prod").nested("ObservabilityStack")
    assert not [lid for lid in one.resources if lid.startswith("HotpathShard")]


def test_the_guide_gives_each_environments_cost_per_shard_from_the_cost_table() -> None:
    costs = cost_table.shard_costs(cost_table.compute())
    guide = (ROOT / "docs" / "deploy.md").read_text()
    written = guide.split("<!-- shard-cost:start -->", 1)[1].split("<!-- shard-cost:end -->", 1)[0]
    assert written == (
        f"${costs['default']:,.0f} a month in dev, ${costs['prod']:,.0f} in prod, ${costs['dr']:,.0f} in dr"
    )
    # prod's shard is a replicated pair: twice dr's single node
    assert round(costs["prod"]) == round(2 * costs["dr"])


def test_a_rule_keeps_an_unreplicated_shard_to_one_node() -> None:
    rule = HOTPATH["Rules"]["OneWriterPerShard"]
    assert rule["RuleCondition"] == {"Fn::Equals": [{"Ref": "ReplicatedShards"}, "false"]}
    (assertion,) = rule["Assertions"]
    assert assertion["Assert"] == {"Fn::Contains": [["0", "1"], {"Ref": "NodeCount"}]}
    for section in ("default", "staging", "prod", "dr"):  # every environment keeps to it
        model = environment_model(section).nested("HotpathStack")
        assert model.parameters["ReplicatedShards"] == "true" or str(model.parameters["NodeCount"]) in (
            "0",
            "1",
        )
