"""Every table trading needs is in the recovery region: the prod stack owns each one as a DynamoDB
global table with a replica in dr's region, and the dr stack's functions and runbooks use those
replicas (it creates no trading table of its own).

Evaluated as samconfig.toml's prod and dr deploy once paired (tools.cfn_model), and as prod's first
deploy, before dr's keys exist.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.infra.templates import ROOT_TEMPLATE, load, resources
from tools.cfn_model import StackModel, environment_model

# Tables that stay in their region, and why.
REGION_LOCAL = {
    # Task tokens of this region's order-flow executions: meaningless to another region's.
    "OrderApprovalsTable": "task tokens of this region's executions",
    # This region's view of the primary's health alarms and its own failover lock.
    "DrControlTable": "each region decides its own failover",
    # A replicated matching shard's lease: fencing rests on conditional writes that one region
    # serialises; a global table's last-writer-wins replication would let two regions' nodes both
    # hold it. Each region's shards are its own (the recovery region restores from the archive).
    "LeaseTable": "conditional-write fencing of this region's matching shards",
}
# The functions whose tables trading needs in the recovery region: order entry (the API and the
# order flow's intake and routing) and market data.
TRADING_FUNCTIONS = (
    "OrdersApiFunction",
    "MarketDataFunction",
    "OrderIntakeFunction",
    "RouteApprovedOrderFunction",
)


def _function(stack: StackModel, logical_id: str) -> dict[str, Any]:
    return stack.properties(logical_id)


def _table_variables(stack: StackModel) -> dict[tuple[str, str], str]:
    """(function, variable) -> table name, for every *_TABLE variable of the trading functions."""
    found = {}
    for function in TRADING_FUNCTIONS:
        variables = _function(stack, function)["Environment"]["Variables"]
        for name, value in variables.items():
            if name.endswith("_TABLE"):
                found[(function, name)] = str(value)
    return found


def _global_tables(stack: StackModel) -> dict[str, dict[str, Any]]:
    """Table name -> properties of each global table the stack creates."""
    return {
        str(stack.properties(lid)["TableName"]): stack.properties(lid)
        for lid in stack.of_type("AWS::DynamoDB::GlobalTable")
    }


PROD, DR = environment_model("prod"), environment_model("dr")


def test_every_dynamodb_table_is_global_or_region_local_for_a_reason() -> None:
    for path in ("template.yaml", "stacks/data.yaml", "hotpath/template.yaml"):
        for logical_id in resources(load(path), "AWS::DynamoDB::Table"):
            assert logical_id in REGION_LOCAL, f"{path} {logical_id}: make it a global table or say why not"
    root_globals = resources(load(ROOT_TEMPLATE), "AWS::DynamoDB::GlobalTable")
    assert {"OrdersTable", "IdempotencyTable", "RiskLimitsTable", "PrincipalsTable", "ExposureTable"} <= set(
        root_globals
    )
    assert {"TradingControlsTable", "MarketDataTable"} <= set(root_globals)


def test_the_dr_stack_creates_no_trading_table() -> None:
    assert DR.region == "us-west-2"
    assert not DR.of_type("AWS::DynamoDB::GlobalTable")
    assert (
        {"OrderApprovalsTable", "DrControlTable"}
        <= set(DR.of_type("AWS::DynamoDB::Table"))
        <= set(REGION_LOCAL)
    )


@pytest.mark.parametrize(("function", "variable"), sorted(_table_variables(DR)))
def test_every_table_the_dr_trading_functions_use_is_a_replica_of_prods(function: str, variable: str) -> None:
    table = _table_variables(DR)[(function, variable)]
    if table == DR.physical_name("OrderApprovalsTable"):
        return  # region-local by design (REGION_LOCAL)
    owned = _global_tables(PROD)
    assert table in owned, f"dr's {function} {variable}={table} is not one of prod's global tables"
    regions = [replica["Region"] for replica in owned[table]["Replicas"]]
    assert regions == [PROD.region, DR.region], regions
    # The replica's name is the same in both regions: dr names prod's table.
    assert _table_variables(PROD)[(function, variable)] == table


def test_dr_grants_its_functions_the_replicas_in_its_own_region() -> None:
    policies = json.dumps([DR.properties(lid) for lid in DR.of_type("AWS::IAM::Role")])
    for name in (
        "orders",
        "idempotency",
        "exposure",
        "risk-limits",
        "principals",
        "trading-controls",
        "market-data",
    ):
        assert f"arn:aws:dynamodb:us-west-2:123456789012:table/meridian-{name}-prod" in policies, name
        assert f"table/meridian-{name}-dr" not in policies, name


def test_the_runbooks_halt_the_replicated_trading_controls() -> None:
    definition = DR.properties("DrFailoverStateMachine")["DefinitionSubstitutions"]
    assert definition["TradingControlsTableName"] == "meridian-trading-controls-prod"


def test_replicas_are_encrypted_with_the_recovery_regions_keys_and_keep_point_in_time_recovery() -> None:
    for name, table in _global_tables(PROD).items():
        here, there = table["Replicas"]
        assert there["Region"] == "us-west-2"
        assert there["SSESpecification"]["KMSMasterKeyId"].startswith("arn:aws:kms:us-west-2:"), name
        assert here["SSESpecification"]["KMSMasterKeyId"] != there["SSESpecification"]["KMSMasterKeyId"]
        for replica in (here, there):
            assert replica["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
        assert table["StreamSpecification"] == {
            "StreamViewType": "NEW_AND_OLD_IMAGES"
        }  # replication needs it
        assert table["SSESpecification"] == {"SSEEnabled": True, "SSEType": "KMS"}
        key = there["SSESpecification"]["KMSMasterKeyId"]
        market = name.startswith("meridian-market-data")
        assert (
            key
            == PROD.parameters[
                "TablesReplicaMarketDataKeyArn" if market else "TablesReplicaTradingDataKeyArn"
            ]
        )


def test_prods_first_deploy_keeps_its_tables_in_its_region_until_drs_keys_exist() -> None:
    first = environment_model("prod", include_after_first_deploy=False)
    tables = _global_tables(first)
    assert len(tables) == 7
    for table in tables.values():
        assert [replica["Region"] for replica in table["Replicas"]] == ["us-east-1"]


def test_a_dr_deploy_without_its_primary_environment_is_refused() -> None:
    rule = load(ROOT_TEMPLATE)["Rules"]["DrUsesThePrimarysTables"]
    assert rule["RuleCondition"] == {"Fn::Equals": [{"Ref": "Environment"}, "dr"]}
    assert DR.parameters["PeerEnvironment"] == "prod"
    assert PROD.parameters["PeerEnvironment"] == "dr"
