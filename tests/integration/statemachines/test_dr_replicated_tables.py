"""The recovery region trades with the primary's users, limits and controls (moto server).

The primary stack (us-east-1) creates its trading tables as global tables with a replica in
us-west-2; the dr stack creates none and its order API uses the replicas. Replication is the local
stand-in for DynamoDB's (``meridian_local.endpoint.global_tables``), both ways. What an operator writes in
the primary (a trader's principal, a risk limit, a symbol halt) governs orders the recovery
region's API takes; what that API writes (the order, its idempotency record) reaches the primary.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from meridian_local.cloud.runbook_stack import DR, PRIMARY, RunbookStack, build, next_environment
from meridian_local.drills.containers import cold_start
from meridian_local.drills.dr_orders import order_api_environment, register_principal, submit
from meridian_local.endpoint.global_tables import TableReplicator

pytestmark = pytest.mark.integration
ACCOUNT = "123456789012"
KEYS = {
    "TablesReplicaTradingDataKeyArn": f"arn:aws:kms:us-west-2:{ACCOUNT}:key/dr-trading",
    "TablesReplicaMarketDataKeyArn": f"arn:aws:kms:us-west-2:{ACCOUNT}:key/dr-market-data",
}


class Pair:
    def __init__(self, primary: RunbookStack, dr: RunbookStack, replicator: TableReplicator) -> None:
        self.primary, self.dr, self.replicator = primary, dr, replicator

    def eventually(self, check: Callable[[], bool], timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            assert time.monotonic() < deadline, "not replicated in time"
            time.sleep(0.05)


@pytest.fixture
def pair(moto: Any, tmp_path: Path, start_node: Any, ledger_database_url: str) -> Iterator[Pair]:
    primary_env, dr_env = next_environment(), next_environment()
    cold_start()  # the order API below is a new function: an earlier test's cached wiring is not its
    primary = build(
        moto,
        "us-east-1",
        name=primary_env,
        parameters={"PeerEnvironment": dr_env, "SecondaryRegion": "us-west-2", **KEYS},
        role=PRIMARY,
    )
    node = start_node(tmp_path / "dr-node")
    dr = build(
        moto,
        "us-west-2",
        name=dr_env,
        parameters={"PeerEnvironment": primary_env, "SecondaryRegion": "us-east-1"},
        role=DR,
        functions=("OrdersApiFunction",),
        environment={
            # The ledger replica: an account's first order adds its positions to its exposure.
            "OrdersApiFunction": order_api_environment(ledger_database_url, node)
        },
    )
    tables = [(t.name, t.regions) for t in primary.global_tables]
    replicator = TableReplicator(lambda service, region: primary.client(service, region), tables).start()
    try:
        yield Pair(primary, dr, replicator)
    finally:
        replicator.stop()


def _item(stack: RunbookStack, table: str, key: dict[str, Any], region: str | None = None) -> Any:
    return stack.client("dynamodb", region).get_item(TableName=stack.refs[table], Key=key).get("Item")


def test_every_trading_table_is_global_with_a_replica_in_the_recovery_region(pair: Pair) -> None:
    declared = {t.logical_id: t for t in pair.primary.global_tables}
    assert set(declared) == {
        "OrdersTable",
        "IdempotencyTable",
        "ExposureTable",
        "RiskLimitsTable",
        "PrincipalsTable",
        "TradingControlsTable",
        "MarketDataTable",
    }
    for table in declared.values():
        assert table.regions == ("us-east-1", "us-west-2")
        # The dr stack's functions name the replica: the same table, in their region.
        assert pair.dr.refs[table.logical_id] == table.name
        assert pair.dr.client("dynamodb").describe_table(TableName=table.name)["Table"]["TableStatus"]


def test_the_recovery_regions_api_knows_the_primarys_users_limits_and_halts(pair: Pair) -> None:
    alice = f"arn:aws:sts::{ACCOUNT}:assumed-role/meridian-trader-{pair.dr.environment}/alice"
    # Operators work in the primary: the dr role's principal, a limit, a symbol halt.
    register_principal(pair.primary, alice, "trader", "ACC-ALICE")
    dynamodb = pair.primary.client("dynamodb")
    dynamodb.put_item(
        TableName=pair.primary.refs["RiskLimitsTable"],
        Item={
            "account": {"S": "ACC-ALICE"},
            "max_order_quantity": {"N": "5"},
            "max_notional": {"N": "100000"},
            "max_open_orders": {"N": "10"},
        },
    )
    dynamodb.put_item(
        TableName=pair.primary.refs["TradingControlsTable"],
        Item={"scope": {"S": "SYMBOL#MSFT"}, "halted": {"BOOL": True}, "reason": {"S": "news pending"}},
    )
    pair.eventually(lambda: _item(pair.dr, "PrincipalsTable", {"principal": {"S": alice}}) is not None)
    pair.eventually(lambda: _item(pair.dr, "RiskLimitsTable", {"account": {"S": "ACC-ALICE"}}) is not None)
    pair.eventually(
        lambda: _item(pair.dr, "TradingControlsTable", {"scope": {"S": "SYMBOL#MSFT"}}) is not None
    )

    too_big = submit(pair.dr, alice, {"symbol": "AAPL", "side": "BUY", "quantity": 10, "price": "180.00"})
    assert too_big[0] == 422, too_big
    assert too_big[1]["error"] == "MAX_ORDER_QUANTITY"
    halted = submit(pair.dr, alice, {"symbol": "MSFT", "side": "BUY", "quantity": 1, "price": "400.00"})
    assert (halted[0], halted[1]["message"]) == (422, "trading in MSFT is halted"), halted
    stranger = f"arn:aws:sts::{ACCOUNT}:assumed-role/meridian-trader-{pair.dr.environment}/mallory"
    assert (
        submit(pair.dr, stranger, {"symbol": "AAPL", "side": "BUY", "quantity": 1, "price": "180.00"})[0]
        == 403
    )

    status, order = submit(
        pair.dr,
        alice,
        {"symbol": "AAPL", "side": "BUY", "quantity": 2, "price": "180.00", "client_order_id": "dr-1"},
        idempotency_key="dr-key-1",
    )
    assert status == 201, order
    # The recovery region's writes reach the primary's replica too (global tables replicate both ways).
    order_key = {"order_id": {"S": order["order_id"]}}
    pair.eventually(lambda: _item(pair.primary, "OrdersTable", order_key) is not None)
    assert _item(pair.primary, "OrdersTable", order_key)["client_order_id"] == {"S": "dr-1"}
    # A client retrying in the primary after a failback finds its idempotency record there.
    pair.eventually(
        lambda: (
            pair.primary.client("dynamodb").scan(TableName=pair.primary.refs["IdempotencyTable"])["Count"] > 0
        )
    )
    # So does the exposure the order reserved: the primary's limits count it after a failback.
    account_key = {"account": {"S": "ACC-ALICE"}}
    pair.eventually(lambda: _item(pair.primary, "ExposureTable", account_key) is not None)
    assert _item(pair.primary, "ExposureTable", account_key)["long:AAPL"] == {"N": "2"}
    assert pair.replicator.replicated >= 6
