"""MOCK integrations of a REST API definition, as the local gateway answers them."""

from __future__ import annotations

from typing import Any

import pytest
from orders_api.openapi_export import gateway_document

from meridian_local.apigateway.apigw_mock import MockResponse, UnsupportedMockError, mock_responses
from meridian_local.apigateway.route_access import from_template

ACCOUNT = "123456789012"


def mock(
    body: str = '{"status":"ok"}', request: str = '{"statusCode": 200}', status: str = "200", **extra: Any
) -> dict[str, Any]:
    integration = {
        "type": "mock",
        "requestTemplates": {"application/json": request},
        "responses": {"default": {"statusCode": status, "responseTemplates": {"application/json": body}}},
    }
    return {"responses": {}, "security": [], "x-amazon-apigateway-integration": integration, **extra}


def test_the_gateway_definition_mocks_only_the_ping() -> None:
    assert mock_responses(gateway_document()) == {
        ("GET", "/ping"): MockResponse(200, b'{"status":"ok"}', "application/json")
    }


def test_a_proxied_method_is_not_a_mock() -> None:
    proxied = {"security": [{"sigv4": []}], "x-amazon-apigateway-integration": {"type": "aws_proxy"}}
    definition = {
        "paths": {"/a": {"get": proxied, "x-amazon-apigateway-any-method": mock()}, "/b": {"post": mock()}}
    }
    assert mock_responses(definition) == {
        ("POST", "/b"): MockResponse(200, b'{"status":"ok"}', "application/json")
    }


@pytest.mark.parametrize(
    ("path", "operation", "reason"),
    [
        ("/a", mock(security=[{"sigv4": []}]), "unauthenticated"),
        ("/a", {**mock(), "security": None}, "unauthenticated"),
        ("/a/{id}", mock(), "path variables"),
        ("/a", mock(body='{"id":"$context.requestId"}'), "VTL"),
        ("/a", mock(request='#if(1){"statusCode": 200}#end'), "VTL"),
        ("/a", mock(request='{"statusCode": 500}'), "default response"),
    ],
    ids=["secured", "security-unset", "path-variable", "vtl-body", "vtl-request", "other-status"],
)
def test_what_would_be_guessed_is_refused(path: str, operation: dict[str, Any], reason: str) -> None:
    with pytest.raises(UnsupportedMockError, match=reason):
        mock_responses({"paths": {path: {"get": operation}}})


def test_route_access_answers_the_rest_apis_mocks_without_iam() -> None:
    template = {
        "Resources": {
            "Api": {
                "Type": "AWS::ApiGateway::RestApi",
                "Properties": {"Body": {"paths": {"/ping": {"get": mock()}}}},
            },
            "Apiv1Stage": {
                "Type": "AWS::ApiGateway::Stage",
                "Properties": {"RestApiId": {"Ref": "Api"}, "StageName": "v1"},
            },
        }
    }
    access = from_template(template, {}, "Api", "localapi", "eu-west-1", ACCOUNT)
    assert access.gateway_answer("get", "/ping") == MockResponse(200, b'{"status":"ok"}', "application/json")
    assert access.gateway_answer("POST", "/ping") is None
    assert access.gateway_answer("GET", "/orders") is None
