"""``GET /ping``: the one route API Gateway answers itself, for Route 53's HTTPS health check.

Every product route requires a SigV4 signature, which Route 53's checkers cannot give. ``/ping``
needs none (``security: []``) and has a MOCK integration: API Gateway answers ``200`` with a fixed
body without running the function or reading anything, so the answer discloses nothing and a
success only says that this region's API Gateway serves the stage. It is not a product route and
is not in the contract (``docs/api/openapi.json``); only API Gateway's definition
(``docs/api/apigateway.json``) has it.
"""

from __future__ import annotations

from typing import Any

PING_PATH = "/ping"
PING_METHOD = "get"
PING_STATUS = "200"
PING_CONTENT_TYPE = "application/json"
PING_BODY = '{"status":"ok"}'
# The mock's integration request selects the integration response by this status code.
_MOCK_REQUEST = '{"statusCode": 200}'


def ping_operation() -> dict[str, Any]:
    """The OpenAPI 3.0 operation: unauthenticated, answered by API Gateway's MOCK integration."""
    return {
        "summary": "Gateway liveness probe",
        "description": "Answered by API Gateway itself, unsigned, for the Route 53 health check.",
        "operationId": "gateway_ping",
        "responses": {PING_STATUS: {"description": "API Gateway serves this stage"}},
        "security": [],
        "x-amazon-apigateway-integration": {
            "type": "mock",
            "passthroughBehavior": "when_no_match",
            "requestTemplates": {PING_CONTENT_TYPE: _MOCK_REQUEST},
            "responses": {
                "default": {"statusCode": PING_STATUS, "responseTemplates": {PING_CONTENT_TYPE: PING_BODY}}
            },
        },
    }


def with_ping(definition: dict[str, Any]) -> dict[str, Any]:
    """``definition`` (API Gateway's document) with the ping route; refuses a contract that has one."""
    if PING_PATH in definition["paths"]:
        raise ValueError(f"{PING_PATH} is API Gateway's own route; the contract must not declare it")
    return {**definition, "paths": {**definition["paths"], PING_PATH: {PING_METHOD: ping_operation()}}}
