"""stacks/network.yaml: the core infrastructure layer and hybrid connectivity of the seed."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from tests.infra.templates import load, properties, resources
from tools.cfn_model import environment_model

NETWORK = load("stacks/network.yaml")
TIERS = ("Public", "Private", "Hotpath", "Data")
INTERFACE_ENDPOINTS = {
    "execute-api",
    "kinesis-streams",
    "events",
    "sqs",
    "sns",
    "kms",
    "states",
    "secretsmanager",
    "monitoring",
    "logs",
    "xray",
    "ssm",
}


def _default(parameter: str) -> Any:
    return NETWORK["Parameters"][parameter]["Default"]


def _subnet_cidr(subnet: str) -> ipaddress.IPv4Network:
    """Evaluate ``!Select [i, !Cidr [!Ref VpcCidr, count, bits]]`` with the default VPC range."""
    index, cidr = properties(NETWORK, subnet)["CidrBlock"]["Fn::Select"]
    vpc, _count, host_bits = cidr["Fn::Cidr"]
    assert vpc == {"Ref": "VpcCidr"}
    blocks = list(ipaddress.IPv4Network(_default("VpcCidr")).subnets(new_prefix=32 - int(host_bits)))
    return blocks[int(index)]


def _az_index(subnet: str) -> int:
    return int(properties(NETWORK, subnet)["AvailabilityZone"]["Fn::Select"][0])


def test_vpc_is_10_0_0_0_16_with_dns() -> None:
    vpc = properties(NETWORK, "Vpc")
    assert vpc["CidrBlock"] == {"Ref": "VpcCidr"}
    assert _default("VpcCidr") == "10.0.0.0/16"
    assert vpc["EnableDnsSupport"] is True
    assert vpc["EnableDnsHostnames"] is True


@pytest.mark.parametrize("tier", TIERS)
def test_each_tier_has_a_subnet_in_each_of_two_azs(tier: str) -> None:
    assert {_az_index(f"{tier}SubnetA"), _az_index(f"{tier}SubnetB")} == {0, 1}


def test_subnets_are_distinct_blocks_of_the_vpc() -> None:
    vpc = ipaddress.IPv4Network(_default("VpcCidr"))
    cidrs = [_subnet_cidr(name) for name in resources(NETWORK, "AWS::EC2::Subnet")]
    assert len(cidrs) == 8
    assert all(c.subnet_of(vpc) for c in cidrs)
    assert len(set(cidrs)) == len(cidrs)
    assert str(_subnet_cidr("PrivateSubnetA")) == "10.0.32.0/20"


def test_internet_gateway_serves_the_public_subnets_only() -> None:
    assert properties(NETWORK, "InternetGatewayAttachment")["InternetGatewayId"] == {"Ref": "InternetGateway"}
    igw_routes = [r for r in resources(NETWORK, "AWS::EC2::Route").values() if "GatewayId" in r["Properties"]]
    assert [r["Properties"]["RouteTableId"] for r in igw_routes] == [{"Ref": "PublicRouteTable"}]
    for subnet in ("PublicSubnetA", "PublicSubnetB"):
        assert properties(NETWORK, subnet)["MapPublicIpOnLaunch"] is False


def test_two_nat_gateways_one_per_az_each_serving_its_az_or_one_for_both() -> None:
    nats = resources(NETWORK, "AWS::EC2::NatGateway")
    assert len(nats) == 2
    subnets = [n["Properties"]["SubnetId"]["Ref"] for n in nats.values()]
    assert sorted(subnets) == ["PublicSubnetA", "PublicSubnetB"]
    assert {_az_index(s) for s in subnets} == {0, 1}
    for section, expected in (("prod", ["NatGatewayA", "NatGatewayB"]), ("default", ["NatGatewayA"] * 2)):
        network = environment_model(section).nested("NetworkStack")
        assert sorted(network.of_type("AWS::EC2::NatGateway")) == sorted(set(expected))
        assert len(network.of_type("AWS::EC2::EIP")) == len(set(expected))
        for az, nat in zip(("A", "B"), expected, strict=True):
            route = network.properties(f"PrivateDefaultRoute{az}")
            assert route["NatGatewayId"] == network.ref(nat)
            assert route["RouteTableId"] == network.ref(f"PrivateRouteTable{az}")


def test_data_tier_has_no_route_out_only_to_the_peer_region() -> None:
    for section in ("default", "prod", "dr"):
        network = environment_model(section).nested("NetworkStack")
        data_routes = [
            network.properties(lid)
            for lid in network.of_type("AWS::EC2::Route")
            if network.properties(lid)["RouteTableId"] == network.ref("DataRouteTable")
        ]
        assert all(r["DestinationCidrBlock"] == network.parameters["PeerVpcCidr"] for r in data_routes), (
            section
        )
        assert all("TransitGatewayId" in r for r in data_routes), section


def test_transit_gateway_with_the_vpc_attached() -> None:
    assert resources(NETWORK, "AWS::EC2::TransitGateway")
    attachment = properties(NETWORK, "TransitGatewayVpcAttachment")
    assert attachment["TransitGatewayId"] == {"Ref": "TransitGateway"}
    assert attachment["VpcId"] == {"Ref": "Vpc"}
    assert len(attachment["SubnetIds"]) == 2


def test_gateway_endpoints_for_s3_and_dynamodb_on_every_private_route_table() -> None:
    gateways = {
        p["ServiceName"]["Fn::Sub"].rsplit(".", 1)[-1]: p
        for p in (e["Properties"] for e in resources(NETWORK, "AWS::EC2::VPCEndpoint").values())
        if p["VpcEndpointType"] == "Gateway"
    }
    assert set(gateways) == {"s3", "dynamodb"}
    for endpoint in gateways.values():
        tables = {t["Ref"] for t in endpoint["RouteTableIds"]}
        assert tables == {
            "PrivateRouteTableA",
            "PrivateRouteTableB",
            "HotpathRouteTableA",
            "HotpathRouteTableB",
            "DataRouteTable",
        }


def test_interface_endpoints_with_private_dns_and_their_security_group() -> None:
    interfaces = [
        e["Properties"]
        for e in resources(NETWORK, "AWS::EC2::VPCEndpoint").values()
        if e["Properties"]["VpcEndpointType"] == "Interface"
    ]
    services = {e["ServiceName"]["Fn::Sub"].split("${AWS::Region}.", 1)[1] for e in interfaces}
    assert services == INTERFACE_ENDPOINTS
    for endpoint in interfaces:
        assert endpoint["PrivateDnsEnabled"] is True
        assert endpoint["SecurityGroupIds"] == [{"Ref": "EndpointSecurityGroup"}]
        assert endpoint["SubnetIds"] == [{"Ref": "PrivateSubnetA"}, {"Ref": "PrivateSubnetB"}]
    ingress = properties(NETWORK, "EndpointSecurityGroup")["SecurityGroupIngress"]
    assert [(r["FromPort"], r["ToPort"], r["CidrIp"]) for r in ingress] == [(443, 443, {"Ref": "VpcCidr"})]


def test_network_acls_per_tier_keep_ssh_and_rdp_closed() -> None:
    acls = resources(NETWORK, "AWS::EC2::NetworkAcl")
    assert set(acls) == {f"{tier}NetworkAcl" for tier in TIERS}
    associations = {
        a["Properties"]["SubnetId"]["Ref"]: a["Properties"]["NetworkAclId"]["Ref"]
        for a in resources(NETWORK, "AWS::EC2::SubnetNetworkAclAssociation").values()
    }
    for tier in TIERS:
        for az in ("A", "B"):
            assert associations[f"{tier}Subnet{az}"] == f"{tier}NetworkAcl"
    for entry in (e["Properties"] for e in resources(NETWORK, "AWS::EC2::NetworkAclEntry").values()):
        if entry.get("Egress") or entry["RuleAction"] != "allow" or entry["CidrBlock"] != "0.0.0.0/0":
            continue
        low, high = entry["PortRange"]["From"], entry["PortRange"]["To"]
        assert not low <= 22 <= high, entry
        assert not low <= 3389 <= high, entry


def test_vpc_flow_logs_capture_all_traffic_into_an_encrypted_log_group() -> None:
    flow = properties(NETWORK, "VpcFlowLog")
    assert flow["ResourceId"] == {"Ref": "Vpc"}
    assert flow["TrafficType"] == "ALL"
    assert flow["LogDestinationType"] == "cloud-watch-logs"
    group = properties(NETWORK, "FlowLogGroup")
    assert group["KmsKeyId"] == {"Fn::GetAtt": ["NetworkLogsKey", "Arn"]}
    assert group["RetentionInDays"]


def test_site_to_site_ipsec_vpn_from_parameters_on_the_hub() -> None:
    gateway = NETWORK["Resources"]["CustomerGateway"]
    assert gateway["Condition"] == "HasCustomerGateway"
    assert gateway["Properties"]["IpAddress"] == {"Ref": "CustomerGatewayIp"}
    assert gateway["Properties"]["BgpAsn"] == {"Ref": "CustomerGatewayBgpAsn"}
    vpn = properties(NETWORK, "VpnConnection")
    assert vpn["Type"] == "ipsec.1"
    assert vpn["TransitGatewayId"] == {"Ref": "TransitGateway"}
    assert "VpnGatewayId" not in vpn
    assert vpn["StaticRoutesOnly"] is False  # BGP: the firm's routes propagate into the hub
    tunnels = vpn["VpnTunnelOptionsSpecifications"]
    assert len(tunnels) == 2
    assert {t["TunnelInsideCidr"]["Ref"] for t in tunnels} == {"VpnTunnel1InsideCidr", "VpnTunnel2InsideCidr"}
    assert all(t["IKEVersions"] == [{"Value": "ikev2"}] for t in tunnels)


def test_direct_connect_gateway_associates_with_the_hub() -> None:
    association = NETWORK["Resources"]["DirectConnectGatewayAssociation"]
    assert association["Condition"] == "HasDirectConnectGateway"
    assert NETWORK["Conditions"]["HasDirectConnectGateway"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "DirectConnectGatewayId"}, ""]}]
    }
    assert association["Properties"]["AssociatedGatewayId"] == {"Ref": "TransitGateway"}
    assert _default("DirectConnectGatewayId") == ""


def test_no_virtual_private_gateway() -> None:
    for resource_type in ("AWS::EC2::VPNGateway", "AWS::EC2::VPNGatewayRoutePropagation"):
        assert not resources(NETWORK, resource_type)
    assert not any(
        "VpnGatewayId" in r["Properties"]
        for r in resources(NETWORK, "AWS::EC2::VPCGatewayAttachment").values()
    )


def test_outputs_are_the_stacks_interface() -> None:
    assert {
        "VpcId",
        "VpcCidr",
        "PublicSubnetIds",
        "PrivateSubnetIds",
        "HotpathSubnetIds",
        "DataSubnetIds",
        "PrivateRouteTableIds",
        "PublicRouteTableId",
        "DataRouteTableId",
        "EndpointSecurityGroupId",
        "TransitGatewayId",
        "TradingVpcRouteTableId",
        "OnPremisesRouteTableId",
        "PeerRegionRouteTableId",
    } <= set(NETWORK["Outputs"])
    assert NETWORK["Outputs"]["PrivateSubnetIds"]["Value"]["Fn::Join"][0] == ","


def _tables_of(network: Any, tier: str) -> set[str]:
    return {
        network.properties(lid)["RouteTableId"]
        for lid in network.of_type("AWS::EC2::SubnetRouteTableAssociation")
        if network.properties(lid)["SubnetId"]
        in (network.ref(f"{tier}SubnetA"), network.ref(f"{tier}SubnetB"))
    }


@pytest.mark.parametrize("section", ["default", "prod", "dr"])
def test_on_premises_routes_never_reach_the_hot_path(section: str) -> None:
    """The firm's network (and the other region) is reached through the Transit Gateway from the
    private tier (operators and the execute-api endpoint) only; the nodes' tables hold their NAT route
    and the gateway endpoints."""
    network = environment_model(section).nested("NetworkStack")
    hotpath, private = _tables_of(network, "Hotpath"), _tables_of(network, "Private")
    assert len(hotpath) == 2
    assert not hotpath & private
    routes = [network.properties(lid) for lid in network.of_type("AWS::EC2::Route")]
    on_premises = network.parameters["OnPremisesCidr"]
    to_on_premises = {r["RouteTableId"] for r in routes if r["DestinationCidrBlock"] == on_premises}
    assert to_on_premises == (set() if section == "default" else private)
    assert not {r["RouteTableId"] for r in routes if "TransitGatewayId" in r} & hotpath
    for table in hotpath:
        mine = [r for r in routes if r["RouteTableId"] == table]
        assert [(r["DestinationCidrBlock"], "NatGatewayId" in r) for r in mine] == [("0.0.0.0/0", True)]
        for endpoint in ("S3GatewayEndpoint", "DynamoDbGatewayEndpoint"):
            assert table in network.properties(endpoint)["RouteTableIds"]


@pytest.mark.parametrize("section", ["default", "prod", "dr"])
@pytest.mark.parametrize("port", [9001, 9101, 1024, 22, 3389, 8080])
def test_the_hot_path_acl_admits_its_ports_from_the_vpc_only(section: str, port: int) -> None:
    """No outside address (the firm's network, the other region, the internet) gets through the hot
    path's network ACL to the order or metrics port, or to any port below the ephemeral range;
    answers to the nodes' own connections (HTTPS through NAT) still come back."""
    from tests.infra.test_infra_reachability import Environment  # noqa: PLC0415 - shared ACL evaluator

    env = Environment(section)
    vpc = env.root.nested("NetworkStack").parameters["VpcCidr"]
    outside = [
        env.root.nested("NetworkStack").parameters["OnPremisesCidr"],
        "203.0.113.7/32",
        "10.1.32.0/20" if section != "dr" else "10.0.32.0/20",
    ]
    for network in outside:
        assert not env.acl_allows("Hotpath", False, port, network), (network, port)
    assert env.acl_allows("Hotpath", False, port, vpc) == (port in (9001, 9101, 1024, 8080))
    assert env.acl_allows("Hotpath", False, 50000, "203.0.113.7/32")  # an AWS API's answer via NAT
