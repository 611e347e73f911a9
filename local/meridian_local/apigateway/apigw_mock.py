"""MOCK integrations of the REST API's definition: the answers API Gateway gives without a backend.

A method whose ``x-amazon-apigateway-integration`` is ``type: mock`` is answered by API Gateway
itself from the integration response's static template. Served locally: unauthenticated methods
(``security: []``, so neither a signature nor IAM is asked) on a literal path, whose request
template selects the ``default`` integration response by its status code and whose response
template is a fixed body. Anything else (a VTL expression, a path variable, a secured mock) would
be guessed here, so it is refused when the definition is read, not answered wrongly.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

INTEGRATION = "x-amazon-apigateway-integration"
_HTTP_METHODS = frozenset({"get", "put", "post", "delete", "options", "head", "patch"})
_VTL_MARKERS = ("$", "#")


class UnsupportedMockError(ValueError):
    """A mock integration this local gateway cannot answer exactly as API Gateway would."""


@dataclass(frozen=True, slots=True)
class MockResponse:
    """What API Gateway answers a mocked method: status, body and its content type."""

    status: int
    body: bytes
    content_type: str


def _static(template: str, where: str) -> str:
    if any(marker in template for marker in _VTL_MARKERS):
        raise UnsupportedMockError(f"{where}: mapping templates with VTL are not evaluated locally")
    return template


def _response(operation: Mapping[str, Any], where: str) -> MockResponse:
    integration = operation[INTEGRATION]
    if operation.get("security") != []:
        raise UnsupportedMockError(f"{where}: only unauthenticated (security: []) mocks are served locally")
    requested = {
        json.loads(_static(t, where)).get("statusCode")
        for t in integration.get("requestTemplates", {}).values()
    }
    default = integration.get("responses", {}).get("default", {})
    status = int(default.get("statusCode", 0))
    if not default or requested - {status}:
        raise UnsupportedMockError(f"{where}: the request template must select the default response")
    templates: Mapping[str, str] = default.get("responseTemplates", {})
    if len(templates) != 1:
        raise UnsupportedMockError(f"{where}: exactly one response template is served locally")
    ((content_type, template),) = templates.items()
    return MockResponse(status, _static(template, where).encode(), content_type)


def mock_responses(definition: Mapping[str, Any]) -> dict[tuple[str, str], MockResponse]:
    """(METHOD, path) -> the mock answer, for every MOCK-integrated method of ``definition``."""
    found: dict[tuple[str, str], MockResponse] = {}
    for path, item in definition.get("paths", {}).items():
        for method, operation in item.items():
            if method not in _HTTP_METHODS or operation.get(INTEGRATION, {}).get("type") != "mock":
                continue
            where = f"{method.upper()} {path}"
            if "{" in path:
                raise UnsupportedMockError(f"{where}: path variables are not matched for mocks locally")
            found[(method.upper(), path)] = _response(operation, where)
    return found
