"""Routing table parsing, providers (static env, SSM with TTL) and Router.client_for."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from meridian.routing import (
    ROUTES_ENV,
    ROUTES_PARAMETER_ENV,
    Router,
    RouteTable,
    RoutingError,
    SsmRoutes,
    StaticRoutes,
    parse_address,
    provider_from_environment,
)

PARAMETER = "/meridian/dev/hotpath/routes"
TABLE = {"default": "127.0.0.1:9001", "symbols": {"MSFT": "127.0.0.1:9002", "ESZ6": "[::1]:9003"}}


def test_table_routes_listed_symbols_and_falls_back_to_default() -> None:
    table = RouteTable.from_mapping(TABLE)
    assert table.address_for("MSFT") == ("127.0.0.1", 9002)
    assert table.address_for("AAPL") == ("127.0.0.1", 9001)
    assert table.address_for("ESZ6") == ("::1", 9003)


def test_table_without_default_refuses_unknown_symbols() -> None:
    table = RouteTable.from_json(json.dumps({"symbols": {"MSFT": "10.0.0.2:9001"}}))
    with pytest.raises(RoutingError, match="AAPL"):
        table.address_for("AAPL")


@pytest.mark.parametrize(
    "raw",
    [
        "not json",
        "[]",
        '{"default": 9001}',
        '{"default": "host-without-port"}',
        '{"default": "h:99999"}',
        '{"symbols": {"MSFT": 1}}',
        '{"nodes": []}',
        "{}",
    ],
)
def test_malformed_tables_are_refused(raw: str) -> None:
    with pytest.raises(RoutingError):
        RouteTable.from_json(raw)


def test_parse_address() -> None:
    assert parse_address("node-1.internal:9001") == ("node-1.internal", 9001)
    with pytest.raises(RoutingError):
        parse_address(":9001")


def test_environment_selects_static_routes() -> None:
    provider = provider_from_environment({ROUTES_ENV: json.dumps(TABLE)})
    assert isinstance(provider, StaticRoutes)
    assert provider.table().address_for("MSFT") == ("127.0.0.1", 9002)


def test_environment_prefers_the_ssm_parameter() -> None:
    provider = provider_from_environment({ROUTES_ENV: json.dumps(TABLE), ROUTES_PARAMETER_ENV: PARAMETER})
    assert isinstance(provider, SsmRoutes)
    assert provider.parameter_name == PARAMETER


def test_environment_without_routes_is_an_error() -> None:
    with pytest.raises(RoutingError, match=ROUTES_ENV):
        provider_from_environment({})


def test_router_hands_out_clients_for_the_owning_node() -> None:
    router = Router(StaticRoutes(RouteTable.from_mapping(TABLE)), timeout=0.5)
    client = router.client_for("MSFT")
    assert client.address == ("127.0.0.1", 9002)
    assert client.timeout == 0.5
    assert router.client_for("AAPL").address == ("127.0.0.1", 9001)


# ---- SSM --------------------------------------------------------------------------------------


@pytest.fixture
def ssm(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        client = boto3.client("ssm", region_name="us-east-1")
        client.put_parameter(Name=PARAMETER, Value=json.dumps(TABLE), Type="String")
        yield client


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def move_msft(ssm: Any, address: str) -> None:
    table = {**TABLE, "symbols": {**TABLE["symbols"], "MSFT": address}}  # type: ignore[dict-item]
    ssm.put_parameter(Name=PARAMETER, Value=json.dumps(table), Type="String", Overwrite=True)


def test_ssm_routes_are_cached_for_the_ttl_then_reread(ssm: Any) -> None:
    clock = FakeClock()
    routes = SsmRoutes(PARAMETER, ttl=5, client=ssm, clock=clock)
    router = Router(routes)
    assert router.address_for("MSFT") == ("127.0.0.1", 9002)
    move_msft(ssm, "127.0.0.1:9005")  # an operator moves MSFT to a new node
    clock.now += 4
    assert router.address_for("MSFT") == ("127.0.0.1", 9002)  # still cached
    clock.now += 2
    assert router.address_for("MSFT") == ("127.0.0.1", 9005)
    assert router.address_for("AAPL") == ("127.0.0.1", 9001)


def test_ssm_outage_keeps_serving_the_last_table(ssm: Any) -> None:
    clock = FakeClock()
    routes = SsmRoutes(PARAMETER, ttl=1, client=ssm, clock=clock)
    assert routes.table().address_for("MSFT") == ("127.0.0.1", 9002)
    ssm.delete_parameter(Name=PARAMETER)
    clock.now += 10
    assert routes.table().address_for("MSFT") == ("127.0.0.1", 9002)


def test_ssm_without_a_readable_table_is_a_routing_error(ssm: Any) -> None:
    with pytest.raises(RoutingError, match="cannot read"):
        SsmRoutes("/meridian/missing", client=ssm).table()
    ssm.put_parameter(Name="/meridian/bad", Value="{broken", Type="String")
    with pytest.raises(RoutingError, match="not JSON"):
        SsmRoutes("/meridian/bad", client=ssm).table()


def test_ssm_client_is_created_from_the_environment(ssm: Any) -> None:
    router = Router.from_environment({ROUTES_PARAMETER_ENV: PARAMETER})
    assert router.client_for("ESZ6").address == ("::1", 9003)


def test_a_replicated_shard_lists_its_nodes_and_the_client_reaches_the_one_that_accepts() -> None:
    import socket  # noqa: PLC0415

    from orders_api.dal.hotpath import HotpathGateway  # noqa: PLC0415

    from meridian.client import close_pooled_connections  # noqa: PLC0415
    from meridian.protocol import Flag  # noqa: PLC0415
    from tests.unit.client.stub_node import StubNode  # noqa: PLC0415

    standby = socket.socket()
    standby.bind(("127.0.0.1", 0))  # bound, not listening: it refuses, as a standby does
    standby_address = f"127.0.0.1:{standby.getsockname()[1]}"
    primary = StubNode(lambda message, _: [(message, Flag.LAST)])  # an echo: heartbeats come back
    try:
        shard = f"{standby_address},127.0.0.1:{primary.port}"
        table = RouteTable.from_mapping({"default": shard})
        assert table.addresses_for("AAPL") == (parse_address(standby_address), ("127.0.0.1", primary.port))
        router = Router(StaticRoutes(table))
        assert router.client_for("AAPL").address == ("127.0.0.1", primary.port)
        gateway = HotpathGateway(router)
        assert gateway.nodes() == [shard]
        assert gateway.ping()
        # The node that answered goes first from now on.
        assert router.addresses_for("AAPL")[0] == ("127.0.0.1", primary.port)
    finally:
        primary.stop()
        standby.close()
        close_pooled_connections()


def test_the_gateway_maps_an_undecodable_answer_to_an_unknown_outcome() -> None:
    from orders_api.dal.hotpath import HotpathGateway, NodeOutcomeUnknown  # noqa: PLC0415

    from meridian.client import close_pooled_connections  # noqa: PLC0415
    from meridian.protocol import NewOrder  # noqa: PLC0415
    from tests.unit.client.stub_node import StubNode  # noqa: PLC0415

    node = StubNode(lambda message, _: (40).to_bytes(4, "little") + bytes(40))  # not a frame
    try:
        gateway = HotpathGateway(
            Router(StaticRoutes(RouteTable.from_mapping({"default": f"127.0.0.1:{node.port}"})))
        )
        order = NewOrder(0, "c-1", "acct", "AAPL", 1, 1, 1, 0, 1, 19000)
        with pytest.raises(NodeOutcomeUnknown, match="query by client order id"):
            gateway.send("AAPL", order)
    finally:
        node.stop()
        close_pooled_connections()
