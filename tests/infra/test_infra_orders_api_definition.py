"""OrdersApi imports API Gateway's OpenAPI 3.0 definition, not the 3.1 contract."""

from __future__ import annotations

import json

from meridian_local.cloud.sam_template import load_transformed
from tests.infra.templates import ROOT, ROOT_TEMPLATE, load, properties

GATEWAY_DEFINITION = "docs/api/apigateway.json"


def test_orders_api_includes_exactly_the_gateway_definition() -> None:
    body = properties(load(ROOT_TEMPLATE), "OrdersApi")["DefinitionBody"]
    assert body == {"Fn::Transform": {"Name": "AWS::Include", "Parameters": {"Location": GATEWAY_DEFINITION}}}
    assert "DefinitionUri" not in properties(load(ROOT_TEMPLATE), "OrdersApi")


def test_the_sam_transform_keeps_the_definition_at_openapi_3_0() -> None:
    """The REST API that the SAM transform makes carries the definition's version and every path."""
    definition = json.loads((ROOT / GATEWAY_DEFINITION).read_text())
    rest_apis = [
        res for res in load_transformed()["Resources"].values() if res["Type"] == "AWS::ApiGateway::RestApi"
    ]
    assert len(rest_apis) == 1
    body = rest_apis[0]["Properties"]["Body"]
    assert body["openapi"] == definition["openapi"] == "3.0.1"
    assert body["paths"] == definition["paths"]
    assert body["components"]["securitySchemes"] == definition["components"]["securitySchemes"]


def test_the_ping_stays_unauthenticated_and_mocked_after_the_sam_transform() -> None:
    """SAM adds no authorizer to the gateway's own route: Route 53's unsigned checkers can reach it."""
    [rest_api] = [
        res for res in load_transformed()["Resources"].values() if res["Type"] == "AWS::ApiGateway::RestApi"
    ]
    ping = rest_api["Properties"]["Body"]["paths"]["/ping"]
    assert set(ping) == {"get"}
    assert ping["get"]["security"] == []
    integration = ping["get"]["x-amazon-apigateway-integration"]
    assert integration["type"] == "mock"
    assert "uri" not in integration  # no function behind it
    assert "security" not in rest_api["Properties"]["Body"]
