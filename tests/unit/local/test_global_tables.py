"""The local global-table stand-in: writes reach the other region once, copies do not come back,
the newer of two writes wins, and a region cut off catches up when it returns."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from meridian_local.endpoint.global_tables import TableReplicator

TABLE = "meridian-trading-controls-test"
EAST, WEST = "us-east-1", "us-west-2"


@pytest.fixture
def regions() -> Iterator[dict[str, Any]]:
    with mock_aws():
        clients = {region: boto3.client("dynamodb", region_name=region) for region in (EAST, WEST)}
        for client in clients.values():
            client.create_table(
                TableName=TABLE,
                KeySchema=[{"AttributeName": "scope", "KeyType": "HASH"}],
                AttributeDefinitions=[{"AttributeName": "scope", "AttributeType": "S"}],
                BillingMode="PAY_PER_REQUEST",
                StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
            )
        yield clients


def _client(service: str, region: str) -> Any:
    return boto3.client(service, region_name=region)  # type: ignore[call-overload]  # any service


def _replicator(regions: dict[str, Any]) -> TableReplicator:
    return TableReplicator(_client, [(TABLE, (EAST, WEST))])


def _put(client: Any, scope: str, halted: bool) -> None:
    client.put_item(TableName=TABLE, Item={"scope": {"S": scope}, "halted": {"BOOL": halted}})


def _halted(client: Any, scope: str) -> bool | None:
    item = client.get_item(TableName=TABLE, Key={"scope": {"S": scope}}, ConsistentRead=True).get("Item")
    return None if item is None else bool(item["halted"]["BOOL"])


def test_writes_reach_the_other_region_once_and_their_copies_stop_there(regions: dict[str, Any]) -> None:
    replicator = _replicator(regions)
    _put(regions[EAST], "GLOBAL", True)
    _put(regions[WEST], "SYMBOL#AAPL", True)
    assert replicator.replicate_once() == 2
    assert replicator.replicate_once() == 0  # the copies' own stream records are not copied back
    assert _halted(regions[WEST], "GLOBAL") is True
    assert _halted(regions[EAST], "SYMBOL#AAPL") is True
    regions[EAST].delete_item(TableName=TABLE, Key={"scope": {"S": "GLOBAL"}})
    assert replicator.catch_up() == 1
    assert _halted(regions[WEST], "GLOBAL") is None
    assert replicator.replicate_once() == 0


def test_a_later_write_is_not_overwritten_by_the_echo_of_an_earlier_one(regions: dict[str, Any]) -> None:
    replicator = _replicator(regions)
    _put(regions[EAST], "GLOBAL", True)
    replicator.replicate_once()  # west now holds the copy; its record waits on west's stream
    _put(regions[WEST], "GLOBAL", False)  # written in west after the copy
    replicator.catch_up()
    assert (_halted(regions[EAST], "GLOBAL"), _halted(regions[WEST], "GLOBAL")) == (False, False)


def test_a_region_back_from_a_cut_catches_up_and_its_older_writes_lose(regions: dict[str, Any]) -> None:
    replicator = _replicator(regions)
    _put(regions[EAST], "GLOBAL", False)
    replicator.catch_up()
    replicator.start()
    replicator.pause()  # east is cut off
    _put(regions[EAST], "SYMBOL#MSFT", True)  # east's last write, never delivered before the cut
    _put(regions[WEST], "GLOBAL", True)  # the failover halts in west
    _put(regions[WEST], "GLOBAL", False)  # and resumes
    _put(regions[WEST], "SYMBOL#MSFT", False)  # newer than east's undelivered write
    assert _halted(regions[EAST], "GLOBAL") is False
    assert _halted(regions[EAST], "SYMBOL#MSFT") is True
    replicator.catch_up()  # east is back: both regions' held-back writes are delivered
    for client in regions.values():
        assert _halted(client, "GLOBAL") is False
        assert _halted(client, "SYMBOL#MSFT") is False  # last writer wins, in both regions
    assert replicator.replicate_once() == 0
