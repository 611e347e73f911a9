"""The order API's tables in the tests are template.yaml's: the same keys, indexes and TTL."""

from __future__ import annotations

from typing import Any

from orders_api.config import Settings

from meridian_local.cloud.sam_template import load
from tests.orders_api_fixtures import TABLE_TYPES, TEMPLATE, owned_table, template_tables


def _keys(schema: list[dict[str, str]]) -> list[tuple[str, str]]:
    return [(key["AttributeName"], key["KeyType"]) for key in schema]


def _attributes(definitions: list[dict[str, str]]) -> set[tuple[str, str]]:
    return {(attribute["AttributeName"], attribute["AttributeType"]) for attribute in definitions}


def test_every_table_the_function_reads_from_its_environment_comes_from_the_template() -> None:
    table_settings = {name for name in Settings.model_fields if name.endswith("_table")}
    assert {variable.lower() for variable in template_tables()} == table_settings
    resources = load(TEMPLATE)["Resources"]
    declared = {lid for lid, r in resources.items() if r["Type"] in TABLE_TYPES}
    function_env = resources["OrdersApiFunction"]["Properties"]["Environment"]["Variables"]
    referenced = {owned_table(v) for v in function_env.values()} & declared
    assert len(referenced) == len(template_tables())


def test_created_tables_match_the_template(clients: dict[str, Any], settings: Settings) -> None:
    dynamodb = clients["dynamodb"]  # the fixture created every table through create_tables
    for variable, properties in template_tables().items():
        name = getattr(settings, variable.lower())
        table = dynamodb.describe_table(TableName=name)["Table"]
        assert _keys(table["KeySchema"]) == _keys(properties["KeySchema"]), name
        assert _attributes(table["AttributeDefinitions"]) == _attributes(properties["AttributeDefinitions"])
        made = {i["IndexName"]: _keys(i["KeySchema"]) for i in table.get("GlobalSecondaryIndexes", [])}
        declared = {
            i["IndexName"]: _keys(i["KeySchema"]) for i in properties.get("GlobalSecondaryIndexes", [])
        }
        assert made == declared, name
        ttl = dynamodb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
        expected = properties.get("TimeToLiveSpecification", {})
        if expected.get("Enabled"):
            assert (ttl["TimeToLiveStatus"], ttl["AttributeName"]) == ("ENABLED", expected["AttributeName"])
        else:
            assert ttl["TimeToLiveStatus"] == "DISABLED", name
