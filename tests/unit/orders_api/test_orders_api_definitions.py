"""The API's two OpenAPI documents: the 3.1 contract and API Gateway's 3.0 definition derived from it.

API Gateway REST APIs import OpenAPI 2.0/3.0 only and turn schemas into draft-04 models, so the
definition must be valid 3.0, keep every route with its SigV4 security and ``aws_proxy``
integration, and carry no JSON-Schema keyword those models reject. It adds one route of its own,
``GET /ping``: unauthenticated, answered by API Gateway's MOCK integration, no function.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from botocore.credentials import Credentials
from openapi_spec_validator import OpenAPIV30SpecValidator, OpenAPIV31SpecValidator, validate
from openapi_spec_validator.validation.exceptions import OpenAPIValidationError
from orders_api.apigateway_definition import EXTENSION_PREFIX, HTTP_METHODS, from_contract
from orders_api.gateway_ping import PING_PATH, with_ping
from orders_api.openapi_export import (
    INTEGRATION_URI,
    SECURITY_SCHEME,
    document,
    gateway_definition,
    gateway_document,
    main,
    render,
)

from meridian_client import SigV4RequestAuth
from meridian_local.apigateway.route_access import RouteAccess
from tests.unit.orders_api.harness import ACCESS_KEYS, Answer, key_for, secret_for

ROOT = Path(__file__).resolve().parents[3]
CONTRACT_FILE = ROOT / "docs" / "api" / "openapi.json"
GATEWAY_FILE = ROOT / "docs" / "api" / "apigateway.json"
CONTRACT = document()
GATEWAY = gateway_document()
PING = ("GET", "/ping")  # the one route API Gateway answers itself

# JSON-Schema keywords of OpenAPI 3.1 / JSON Schema 2020-12 (and OpenAPI 3.0 schema extras) that API
# Gateway's draft-04 models reject or misread; the definition carries no schema that needs them.
DRAFT04_UNSAFE_KEYS = frozenset(
    {
        "anyOf", "oneOf", "allOf", "not", "const", "examples", "example", "$defs", "definitions",
        "$ref", "$schema", "$id", "$anchor", "nullable", "exclusiveMinimum", "exclusiveMaximum",
        "prefixItems", "unevaluatedProperties", "unevaluatedItems", "dependentSchemas",
        "dependentRequired", "contentMediaType", "contentEncoding", "discriminator", "if", "then",
        "else", "propertyNames", "contains", "readOnly", "writeOnly",
    }
)  # fmt: skip


def _routes(spec: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (method.upper(), path)
        for path, item in spec["paths"].items()
        for method in item
        if method in HTTP_METHODS
    }


def _operations(spec: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method in HTTP_METHODS:
                yield method, path, operation


def _walk(value: Any, where: str = "$") -> Iterator[tuple[str, str, Any]]:
    """Every (location, key, value) of every object in ``value``, depth first."""
    if isinstance(value, dict):
        for key, child in value.items():
            yield where, key, child
            yield from _walk(child, f"{where}.{key}")
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from _walk(child, f"{where}[{index}]")


def test_contract_is_valid_openapi_3_1() -> None:
    assert CONTRACT["openapi"].startswith("3.1.")
    validate(CONTRACT, cls=OpenAPIV31SpecValidator)


def test_gateway_definition_is_valid_openapi_3_0() -> None:
    assert GATEWAY["openapi"] == "3.0.1"
    validate(GATEWAY, cls=OpenAPIV30SpecValidator)


def test_the_validator_refuses_the_contract_as_3_0() -> None:
    """The 3.0 check can fail: the contract itself, relabelled 3.0.1, is not valid 3.0."""
    with pytest.raises(OpenAPIValidationError):
        validate({**CONTRACT, "openapi": "3.0.1"}, cls=OpenAPIV30SpecValidator)


def test_gateway_definition_has_exactly_the_contracts_routes_and_the_ping() -> None:
    assert len(_routes(CONTRACT)) >= 12
    assert PING not in _routes(CONTRACT)  # not a product route
    assert _routes(GATEWAY) == _routes(CONTRACT) | {PING}


def test_the_ping_is_unauthenticated_and_answered_by_api_gateway_alone() -> None:
    assert GATEWAY["paths"][PING_PATH] == {
        "get": {
            "summary": "Gateway liveness probe",
            "description": "Answered by API Gateway itself, unsigned, for the Route 53 health check.",
            "operationId": "gateway_ping",
            "responses": {"200": {"description": "API Gateway serves this stage"}},
            "security": [],
            "x-amazon-apigateway-integration": {
                "type": "mock",
                "passthroughBehavior": "when_no_match",
                "requestTemplates": {"application/json": '{"statusCode": 200}'},
                "responses": {
                    "default": {
                        "statusCode": "200",
                        "responseTemplates": {"application/json": '{"status":"ok"}'},
                    }
                },
            },
        }
    }
    assert "security" not in GATEWAY  # no document-wide default: `security: []` is no auth at all


def test_the_ping_is_added_once_and_never_over_a_contract_route() -> None:
    assert gateway_definition(CONTRACT) == GATEWAY
    contract_with_ping = {**CONTRACT, "paths": {**CONTRACT["paths"], PING_PATH: {"get": {"responses": {}}}}}
    with pytest.raises(ValueError, match="/ping"):
        gateway_definition(contract_with_ping)
    with pytest.raises(ValueError, match="/ping"):
        with_ping(GATEWAY)


def test_every_contract_operation_is_sigv4_and_proxied_to_the_live_alias() -> None:
    scheme = GATEWAY["components"]["securitySchemes"][SECURITY_SCHEME]
    assert scheme["type"] == "apiKey"
    assert scheme["x-amazon-apigateway-authtype"] == "awsSigv4"
    proxied = [(m, p, o) for m, p, o in _operations(GATEWAY) if (m.upper(), p) != PING]
    assert len(proxied) == len(_routes(GATEWAY)) - 1
    for method, path, operation in proxied:
        assert operation["security"] == [{SECURITY_SCHEME: []}], (method, path)
        assert operation["x-amazon-apigateway-integration"] == {
            "type": "aws_proxy",
            "httpMethod": "POST",
            "uri": {"Fn::Sub": INTEGRATION_URI},
            "passthroughBehavior": "when_no_match",
        }, (method, path)
    assert "${OrdersApiFunctionAliaslive}" in INTEGRATION_URI


def test_gateway_definition_keeps_every_apigateway_extension_of_the_contract() -> None:
    def extensions(item: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in item.items() if k.startswith(EXTENSION_PREFIX)}

    assert extensions(GATEWAY) == extensions(CONTRACT)
    assert set(GATEWAY["x-amazon-apigateway-gateway-responses"]) == {"DEFAULT_4XX", "DEFAULT_5XX"}
    for path, item in CONTRACT["paths"].items():
        assert extensions(GATEWAY["paths"][path]) == extensions(item), path
        for method in item:
            if method in HTTP_METHODS:
                expected = extensions(item[method])
                assert extensions(GATEWAY["paths"][path][method]) == expected, (method, path)


def test_every_path_variable_is_a_required_path_parameter() -> None:
    for method, path, operation in _operations(GATEWAY):
        declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
        assert declared == set(re.findall(r"{([^}]+)}", path)), (method, path)
        assert all(p["required"] is True for p in operation.get("parameters", [])), (method, path)


def test_gateway_definition_carries_no_models() -> None:
    assert set(GATEWAY["components"]) == {"securitySchemes"}
    for method, path, operation in _operations(GATEWAY):
        assert "requestBody" not in operation, (method, path)
        assert {p["in"] for p in operation.get("parameters", [])} <= {"path"}, (method, path)
        for status, response in operation["responses"].items():
            assert set(response) == {"description"}, (method, path, status)
    schemas = [child for _, key, child in _walk(GATEWAY) if key == "schema"]
    assert schemas, "path parameters keep a plain schema"
    assert all(schema in ({"type": "string"}, {"type": "integer"}) for schema in schemas), schemas


def test_gateway_definition_has_no_keyword_draft04_models_reject() -> None:
    found = [(where, key) for where, key, _ in _walk(GATEWAY) if key in DRAFT04_UNSAFE_KEYS]
    assert not found
    type_values = [(where, child) for where, key, child in _walk(GATEWAY) if key == "type"]
    assert type_values
    assert all(isinstance(child, str) for _, child in type_values), type_values
    contract_found = {key for _, key, _ in _walk(CONTRACT) if key in DRAFT04_UNSAFE_KEYS}
    assert {"anyOf", "$ref"} <= contract_found, "the walk finds these keywords where they are"


def test_from_contract_reduces_a_3_1_document_to_routes_security_and_integrations() -> None:
    integration = {"type": "aws_proxy", "httpMethod": "POST", "uri": "arn:fn"}
    schemes = {"sigv4": {"type": "apiKey", "name": "Authorization", "in": "header"}}
    nullable_flag = {"anyOf": [{"type": "boolean"}, {"type": "null"}]}
    thing_id = {"name": "thing_id", "in": "path", "required": True}
    body = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/In"}}}}
    contract = {
        "openapi": "3.1.0",
        "info": {"title": "T", "summary": "3.1 only", "version": "2", "license": {"identifier": "MIT"}},
        "servers": [{"url": "/"}],
        "webhooks": {},
        "paths": {
            "/things/{thing_id}": {
                "parameters": [{**thing_id, "schema": {"type": "integer", "exclusiveMinimum": 0}}],
                "x-amazon-apigateway-any-method": {"x": 1},
                "patch": {
                    "tags": ["things"],
                    "summary": "Change a thing",
                    "operationId": "change",
                    "parameters": [
                        {"name": "dry_run", "in": "query", "schema": nullable_flag},
                        {"name": "Idempotency-Key", "in": "header", "schema": {"type": ["string", "null"]}},
                    ],
                    "requestBody": body,
                    "responses": {
                        "200": {"description": "Changed", "content": {"application/json": {"schema": {}}}},
                        "503": {"description": "Later", "headers": {"Retry-After": {"schema": {}}}},
                    },
                    "security": [{"sigv4": []}],
                    "x-amazon-apigateway-integration": integration,
                    "x-amazon-apigateway-request-validator": "none",
                },
            }
        },
        "components": {"schemas": {"In": {"const": 1, "examples": [1]}}, "securitySchemes": schemes},
        "x-amazon-apigateway-gateway-responses": {"DEFAULT_4XX": {}},
        "x-amazon-apigateway-binary-media-types": ["application/octet-stream"],
        "x-other-tool": True,
    }
    assert from_contract(contract) == {
        "openapi": "3.0.1",
        "info": {"title": "T", "version": "2"},
        "paths": {
            "/things/{thing_id}": {
                "patch": {
                    "summary": "Change a thing",
                    "operationId": "change",
                    "parameters": [{**thing_id, "schema": {"type": "integer"}}],
                    "responses": {"200": {"description": "Changed"}, "503": {"description": "Later"}},
                    "security": [{"sigv4": []}],
                    "x-amazon-apigateway-integration": integration,
                    "x-amazon-apigateway-request-validator": "none",
                },
                "x-amazon-apigateway-any-method": {"x": 1},
            }
        },
        "components": {"securitySchemes": schemes},
        "x-amazon-apigateway-gateway-responses": {"DEFAULT_4XX": {}},
        "x-amazon-apigateway-binary-media-types": ["application/octet-stream"],
    }


@pytest.mark.parametrize(
    ("committed", "generated"),
    [(CONTRACT_FILE, CONTRACT), (GATEWAY_FILE, GATEWAY)],
    ids=["contract", "gateway"],
)
def test_committed_documents_match_the_code(committed: Path, generated: dict[str, Any]) -> None:
    assert json.loads(committed.read_text()) == generated, "run `make openapi` and commit docs/api/*.json"


def test_one_command_writes_both_documents(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(tmp_path / "api" / "openapi.json")]) == 0
    assert (tmp_path / "api" / "openapi.json").read_text() == render(CONTRACT)
    assert (tmp_path / "api" / "apigateway.json").read_text() == render(GATEWAY)
    assert main([str(tmp_path / "c.json"), "--gateway", str(tmp_path / "gw" / "g.json")]) == 0
    assert json.loads((tmp_path / "gw" / "g.json").read_text()) == GATEWAY
    assert "wrote" in capsys.readouterr().out


def test_every_route_of_the_definition_reaches_the_function_locally(
    local_api: str, route_access: RouteAccess, api: Callable[..., Answer]
) -> None:
    """The local gateway hands every route API Gateway will have to the function's own router,
    signed by a user the template's IAM allows the route."""
    values = {"order_id": "ord_missing", "symbol": "AAPL"}

    def error_of(method: str, path: str) -> str | None:
        url_path = re.sub(r"{([^}]+)}", lambda m: values[m.group(1)], path)
        allowed = [p for p in ACCESS_KEYS.values() if route_access.decide(p, method, url_path).allowed]
        key = key_for(allowed[0] if allowed else next(iter(ACCESS_KEYS.values())))
        auth = SigV4RequestAuth(Credentials(key, secret_for(key)), "us-east-1")
        body = "{}" if method in ("POST", "PATCH") else None
        headers = {"Content-Type": "application/json"}
        answer = requests.request(
            method, local_api + url_path, data=body, headers=headers, auth=auth, timeout=10
        )
        assert answer.status_code < 500, (method, path, answer.text)
        payload = answer.json()
        return payload.get("error") if isinstance(payload, dict) else None

    assert api("GET", "/no-such-route").body["error"] == "ROUTE_NOT_FOUND"  # the function's router
    assert error_of("GET", "/no-such-route") == "ACCESS_DENIED"  # no role may invoke it
    for method, path in sorted(_routes(GATEWAY) - {PING}):  # the ping never reaches the function
        error = error_of(method, path)
        assert error not in ("ROUTE_NOT_FOUND", "INVALID_SIGNATURE", "ACCESS_DENIED"), (method, path, error)
