"""The REST API's definition for API Gateway, derived from the API's contract.

The contract (``docs/api/openapi.json``, see ``openapi_export``) is what Powertools generates:
OpenAPI 3.1 with JSON Schema 2020-12 models. API Gateway REST APIs import only OpenAPI 2.0 and 3.0,
and turn ``components.schemas`` into draft-04 JSON-schema models, which reject or misread 3.1
keywords (``anyOf`` with ``{"type": "null"}``, ``const``, ``examples``, type arrays, numeric
``exclusiveMinimum``, ``$ref`` with siblings). So API Gateway imports its own document
(``docs/api/apigateway.json``), reduced from the contract to what a proxy needs:

- ``openapi: 3.0.1``, the contract's title, description and version, no ``servers`` (the stage
  gives the base path);
- every path and method, each with its path parameters as plain ``{"type": "string"}`` (or
  ``integer``/``number``/``boolean``) parameters, its summary, description and operation id, its
  ``security`` and every ``x-amazon-apigateway-*`` extension (the ``aws_proxy`` integration to the
  live alias); the document's own extensions (gateway responses) and ``securitySchemes`` (SigV4);
- no request bodies, no response bodies or headers (responses keep their descriptions) and no
  ``components.schemas``: the function validates every request with Powertools' OpenAPI
  validation, and API Gateway only proxies;
- no query or header parameters: with ``aws_proxy`` API Gateway passes every query string and
  header through whether declared or not. It would use declarations only for request validation
  (none: the function validates) or cache keys (the stage caches nothing), so declaring them
  would be a second list to keep in step with the contract, for no effect.

``openapi_export`` then adds the one route the contract does not have: API Gateway's own
unauthenticated ``GET /ping`` with a MOCK integration (``gateway_ping``).
"""

from __future__ import annotations

from typing import Any

OPENAPI_VERSION = "3.0.1"
EXTENSION_PREFIX = "x-amazon-apigateway-"
HTTP_METHODS = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})
SIMPLE_TYPES = frozenset({"string", "integer", "number", "boolean"})
_INFO_FIELDS = ("title", "description", "version")
_OPERATION_FIELDS = ("summary", "description", "operationId")


def _extensions(item: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in item.items() if key.startswith(EXTENSION_PREFIX)}


def _simple_type(schema: dict[str, Any]) -> str:
    """The parameter's type when it is one plain scalar type, else ``string`` (what a path carries)."""
    kind = schema.get("type")
    return kind if isinstance(kind, str) and kind in SIMPLE_TYPES else "string"


def _path_parameter(parameter: dict[str, Any]) -> dict[str, Any]:
    reduced: dict[str, Any] = {"name": parameter["name"], "in": "path", "required": True}
    if "description" in parameter:
        reduced["description"] = parameter["description"]
    reduced["schema"] = {"type": _simple_type(parameter.get("schema", {}))}
    return reduced


def _responses(responses: dict[str, Any]) -> dict[str, Any]:
    return {status: {"description": response["description"]} for status, response in responses.items()}


def _operation(operation: dict[str, Any], shared_parameters: list[dict[str, Any]]) -> dict[str, Any]:
    reduced = {field: operation[field] for field in _OPERATION_FIELDS if field in operation}
    parameters = [*shared_parameters, *operation.get("parameters", [])]
    path_parameters = [_path_parameter(p) for p in parameters if p.get("in") == "path"]
    if path_parameters:
        reduced["parameters"] = path_parameters
    reduced["responses"] = _responses(operation["responses"])
    if "security" in operation:
        reduced["security"] = operation["security"]
    return reduced | _extensions(operation)


def _path_item(item: dict[str, Any]) -> dict[str, Any]:
    shared = item.get("parameters", [])
    operations = {
        method: _operation(operation, shared) for method, operation in item.items() if method in HTTP_METHODS
    }
    return operations | _extensions(item)


def from_contract(contract: dict[str, Any]) -> dict[str, Any]:
    """API Gateway's OpenAPI 3.0 document for the routes, security and integrations of ``contract``."""
    info = contract["info"]
    definition: dict[str, Any] = {
        "openapi": OPENAPI_VERSION,
        "info": {field: info[field] for field in _INFO_FIELDS if field in info},
        "paths": {path: _path_item(item) for path, item in contract["paths"].items()},
    }
    security_schemes = contract.get("components", {}).get("securitySchemes")
    if security_schemes:
        definition["components"] = {"securitySchemes": security_schemes}
    if "security" in contract:
        definition["security"] = contract["security"]
    return definition | _extensions(contract)
