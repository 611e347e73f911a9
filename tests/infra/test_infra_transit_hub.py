"""The Transit Gateway is the hub: the VPC, the site-to-site VPN, Direct Connect and the peering with
the other region attach to it, and its route tables decide who reaches whom.

The network stack is evaluated with the parameters of a paired region that has both kinds of link,
and routed like a Transit Gateway routes: a packet entering through an attachment is looked up
(longest prefix) in the route table that attachment is associated with, whose routes are its static
routes plus what the attachments propagating into it announce (the VPC its range, the VPN and
Direct Connect the firm's range over BGP; a peering announces nothing).
"""

from __future__ import annotations

import ipaddress
import sys
import types
from typing import Any

import pytest

from tests.infra.templates import load, properties
from tools.cfn_model import StackModel, environment_model

VPC, PEER, ON_PREMISES = "10.0.0.0/16", "10.1.0.0/16", "192.168.0.0/16"
PEERING = "tgw-attach-0peer0000000000"
LINKED = {
    "Environment": "prod",
    "VpcCidr": VPC,
    "PeerVpcCidr": PEER,
    "CreateTransitGateway": "true",
    "OnPremisesCidr": ON_PREMISES,
    "CustomerGatewayIp": "203.0.113.10",
    "DirectConnectGatewayId": "dxgw-0firm000000000000",
    "PeerTransitGatewayAttachmentId": PEERING,
}


class Hub:
    """The hub of one evaluated network stack: attachments, associations, routes."""

    def __init__(self, parameters: dict[str, str]) -> None:
        self.net = StackModel("stacks/network.yaml", parameters, "us-east-1", "meridian-net", "prod")
        p = self.net.parameters
        self.attachments: dict[str, str] = {self.net.ref("TransitGatewayVpcAttachment"): "vpc"}
        announces = {self.net.ref("TransitGatewayVpcAttachment"): [p["VpcCidr"]]}
        for kind, lookup in (("vpn", "VpnAttachment"), ("direct-connect", "DirectConnectAttachment")):
            if lookup in self.net.resources:
                attachment = self.net.get_att(lookup, "AttachmentId")
                self.attachments[attachment] = kind
                announces[attachment] = [p["OnPremisesCidr"]]
        if p["PeerTransitGatewayAttachmentId"]:
            self.attachments[p["PeerTransitGatewayAttachmentId"]] = "peering"
        self.associated: dict[str, str] = {}
        for lid in self.net.of_type("AWS::EC2::TransitGatewayRouteTableAssociation"):
            props = self.net.properties(lid)
            assert props["TransitGatewayAttachmentId"] not in self.associated, "one route table each"
            self.associated[props["TransitGatewayAttachmentId"]] = props["TransitGatewayRouteTableId"]
        self.routes: dict[str, list[tuple[str, str]]] = {}
        for lid in self.net.of_type("AWS::EC2::TransitGatewayRouteTablePropagation"):
            props = self.net.properties(lid)
            for cidr in announces[props["TransitGatewayAttachmentId"]]:
                self.routes.setdefault(props["TransitGatewayRouteTableId"], []).append(
                    (cidr, props["TransitGatewayAttachmentId"])
                )
        for lid in self.net.of_type("AWS::EC2::TransitGatewayRoute"):
            props = self.net.properties(lid)
            self.routes.setdefault(props["TransitGatewayRouteTableId"], []).append(
                (props["DestinationCidrBlock"], props["TransitGatewayAttachmentId"])
            )

    def table_of(self, kind: str) -> str:
        (attachment,) = [a for a, k in self.attachments.items() if k == kind]
        return self.associated[attachment]

    def next_hops(self, entering: str, destination: str) -> set[str]:
        """The kinds of attachment a packet entering through ``entering`` leaves by (longest prefix)."""
        (attachment,) = [a for a, k in self.attachments.items() if k == entering]
        address = ipaddress.ip_address(destination)
        matching = [
            (ipaddress.ip_network(cidr).prefixlen, target)
            for cidr, target in self.routes.get(self.associated[attachment], [])
            if address in ipaddress.ip_network(cidr)
        ]
        if not matching:
            return set()
        longest = max(length for length, _ in matching)
        return {self.attachments[target] for length, target in matching if length == longest}

    def vpc_routes(self, route_table: str) -> dict[str, str]:
        """Destination -> target of the routes in one of the VPC's own (subnet) route tables."""
        found = {}
        for lid in self.net.of_type("AWS::EC2::Route"):
            props = self.net.properties(lid)
            if props["RouteTableId"] == self.net.ref(route_table):
                target = "tgw" if "TransitGatewayId" in props else "other"
                found[props["DestinationCidrBlock"]] = target
        return found


def test_every_attachment_has_its_own_route_table() -> None:
    hub = Hub(LINKED)
    assert sorted(hub.attachments.values()) == ["direct-connect", "peering", "vpc", "vpn"]
    assert set(hub.associated) == set(hub.attachments)
    tables = {kind: hub.table_of(kind) for kind in ("vpc", "vpn", "direct-connect", "peering")}
    assert tables["vpc"] == hub.net.ref("TradingVpcRouteTable")
    assert tables["vpn"] == tables["direct-connect"] == hub.net.ref("OnPremisesRouteTable")
    assert tables["peering"] == hub.net.ref("PeerRegionRouteTable")
    assert len(set(tables.values())) == 3


@pytest.mark.parametrize(
    ("entering", "destination", "leaves_by"),
    [
        ("vpc", "192.168.4.20", {"vpn", "direct-connect"}),  # operators and feeds on-premises
        ("vpc", "10.1.32.9", {"peering"}),  # the recovery region (integrity checks)
        ("vpn", "10.0.32.9", {"vpc"}),
        ("direct-connect", "10.0.64.5", {"vpc"}),
        ("vpn", "10.1.32.9", {"peering"}),  # operators reach the recovery region through this one
        ("peering", "10.0.96.7", {"vpc"}),  # the peer's checks reach the ledger here
        ("peering", "192.168.4.20", {"vpn", "direct-connect"}),  # and on-premises, through this region
    ],
)
def test_who_reaches_whom_through_the_hub(entering: str, destination: str, leaves_by: set[str]) -> None:
    assert Hub(LINKED).next_hops(entering, destination) == leaves_by


@pytest.mark.parametrize(
    ("entering", "destination"),
    [
        ("vpn", "192.168.4.20"),  # the hub is no transit between the firm's own links
        ("peering", "10.1.0.9"),  # nor a loop back to the peer
        ("vpc", "172.16.0.1"),  # nothing else is routed
    ],
)
def test_nothing_else_is_routed(entering: str, destination: str) -> None:
    assert Hub(LINKED).next_hops(entering, destination) == set()


def test_the_vpcs_route_tables_send_the_firm_and_the_peer_to_the_hub() -> None:
    hub = Hub(LINKED)
    for table in ("PrivateRouteTableA", "PrivateRouteTableB"):  # private and hot-path tiers
        routes = hub.vpc_routes(table)
        assert routes[ON_PREMISES] == "tgw"
        assert routes[PEER] == "tgw"
    assert hub.vpc_routes("DataRouteTable") == {PEER: "tgw"}


def test_a_region_without_links_reaches_on_premises_through_the_peer() -> None:
    unlinked = {k: v for k, v in LINKED.items() if k not in ("CustomerGatewayIp", "DirectConnectGatewayId")}
    hub = Hub(unlinked)
    assert sorted(hub.attachments.values()) == ["peering", "vpc"]
    assert "OnPremisesRouteTable" not in hub.net.resources
    assert hub.next_hops("vpc", "192.168.4.20") == {"peering"}
    assert hub.vpc_routes("PrivateRouteTableA")[ON_PREMISES] == "tgw"


def test_a_vpn_alone_brings_the_hub_and_dev_has_none() -> None:
    dev = StackModel("stacks/network.yaml", {"Environment": "dev"}, "us-east-1", "meridian-net", "dev")
    assert not dev.of_type("AWS::EC2::TransitGateway")
    vpn_only = {"Environment": "dev", "CustomerGatewayIp": "203.0.113.10"}
    hub = Hub(vpn_only)
    assert sorted(hub.attachments.values()) == ["vpc", "vpn"]
    assert hub.next_hops("vpc", "192.168.4.20") == {"vpn"}
    assert hub.next_hops("vpn", "10.0.32.1") == {"vpc"}  # the stack's default VpcCidr


def test_until_the_peering_is_accepted_nothing_routes_to_it() -> None:
    hub = Hub({**LINKED, "PeerTransitGatewayAttachmentId": ""})
    assert "peering" not in hub.attachments.values()
    assert hub.next_hops("vpc", "10.1.32.9") == set()
    assert PEER not in hub.vpc_routes("PrivateRouteTableA")


def test_the_dr_deploy_requests_the_peering_with_prods_hub() -> None:
    prod = environment_model("prod").nested("NetworkStack")
    dr = environment_model("dr").nested("NetworkStack")
    assert not prod.of_type("AWS::EC2::TransitGatewayPeeringAttachment")
    (request,) = dr.of_type("AWS::EC2::TransitGatewayPeeringAttachment")
    peering = dr.properties(request)
    assert peering["PeerRegion"] == environment_model("prod").region
    assert peering["TransitGatewayId"] == dr.ref("TransitGateway")
    # Once accepted, both regions route the other's range through it.
    for network, peer_range in ((prod, "10.1.0.0/16"), (dr, "10.0.0.0/16")):
        route = network.properties("TransitGatewayPeerRoute")
        assert route["DestinationCidrBlock"] == peer_range
        assert route["TransitGatewayRouteTableId"] == network.ref("TradingVpcRouteTable")


class _Context:
    def __init__(self, remaining_ms: list[int]) -> None:
        self.remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms.pop(0) if self.remaining_ms else 0


class _Ec2:
    def __init__(self, answers: list[list[dict[str, str]]]) -> None:
        self.answers = answers
        self.filters: list[Any] = []

    def describe_transit_gateway_attachments(self, Filters: Any) -> dict[str, Any]:  # noqa: N803 - boto3's name
        self.filters.append(Filters)
        return {"TransitGatewayAttachments": self.answers.pop(0) if self.answers else []}


def _lookup_module(sent: list[tuple[str, dict[str, Any], str | None, str | None]]) -> dict[str, Any]:
    """The custom resource's inline code, with cfnresponse recording what it would send."""
    fake = types.ModuleType("cfnresponse")
    fake.SUCCESS, fake.FAILED = "SUCCESS", "FAILED"  # type: ignore[attr-defined]

    def send(
        event: Any, context: Any, status: str, data: Any, physical: Any = None, reason: Any = None
    ) -> None:
        sent.append((status, data, physical, reason))

    fake.send = send  # type: ignore[attr-defined]
    sys.modules["cfnresponse"] = fake
    try:
        code = properties(load("stacks/network.yaml"), "AttachmentLookupFunction")["Code"]["ZipFile"]
        namespace: dict[str, Any] = {}
        exec(compile(code, "index.py", "exec"), namespace)  # noqa: S102 - the template's own code
        return namespace
    finally:
        del sys.modules["cfnresponse"]


EVENT = {
    "RequestType": "Create",
    "ResourceProperties": {"TransitGatewayId": "tgw-1", "ResourceType": "vpn", "ResourceId": "vpn-1"},
}


def test_the_attachment_lookup_waits_for_the_available_attachment() -> None:
    sent: list[Any] = []
    lookup = _lookup_module(sent)
    ec2 = _Ec2(
        [
            [],
            [{"TransitGatewayAttachmentId": "tgw-attach-vpn", "State": "pending"}],
            [{"TransitGatewayAttachmentId": "tgw-attach-vpn", "State": "available"}],
        ]
    )
    lookup["handler"](EVENT, _Context([600_000, 600_000]), ec2=ec2, sleep=lambda s: None)
    assert sent == [("SUCCESS", {"AttachmentId": "tgw-attach-vpn"}, "tgw-attach-vpn", None)]
    assert {f["Name"]: f["Values"] for f in ec2.filters[0]} == {
        "transit-gateway-id": ["tgw-1"],
        "resource-type": ["vpn"],
        "resource-id": ["vpn-1"],
    }


def test_the_attachment_lookup_fails_the_deploy_when_none_appears_in_time() -> None:
    sent: list[Any] = []
    lookup = _lookup_module(sent)
    lookup["handler"](EVENT, _Context([600_000, 10_000]), ec2=_Ec2([]), sleep=lambda s: None)
    ((status, _, _, reason),) = sent
    assert status == "FAILED"
    assert "no available vpn attachment" in reason


def test_deleting_the_lookup_changes_nothing() -> None:
    sent: list[Any] = []
    lookup = _lookup_module(sent)
    lookup["handler"](
        {**EVENT, "RequestType": "Delete", "PhysicalResourceId": "tgw-attach-vpn"}, _Context([])
    )
    assert sent == [("SUCCESS", {}, "tgw-attach-vpn", None)]
