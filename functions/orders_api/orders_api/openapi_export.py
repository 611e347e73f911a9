"""The API's two OpenAPI documents, generated from the routes.

- ``docs/api/openapi.json``, the contract: what Powertools generates from the routes (OpenAPI 3.1,
  every request and response model), plus API Gateway's extensions. Clients, Swagger UI (``/docs``
  of the local gateway) and the schemathesis tests read it.
- ``docs/api/apigateway.json``, the REST API's definition: the contract reduced to OpenAPI 3.0
  without models (see ``apigateway_definition`` for why and what is kept). ``template.yaml``
  includes it as ``OrdersApi``'s ``DefinitionBody`` (``Fn::Transform: AWS::Include``).

``python -m orders_api.openapi_export docs/api/openapi.json`` (``make openapi``) writes both, the
definition beside the contract unless ``--gateway PATH`` says otherwise; a test keeps the committed
copies identical to the generated ones. Every operation of the contract is SigV4-authorised (IAM)
and proxied to the function's live alias; the definition adds API Gateway's own unauthenticated
``GET /ping`` (``gateway_ping``), which no function serves.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from orders_api.api import app
from orders_api.apigateway_definition import from_contract
from orders_api.gateway_ping import with_ping

DEFAULT_PATH = Path("docs/api/openapi.json")
GATEWAY_FILE_NAME = "apigateway.json"
SECURITY_SCHEME = "sigv4"
_LAMBDA_PATH = "arn:aws:apigateway:${AWS::Region}:lambda:path/2015-03-31/functions/"
INTEGRATION_URI = _LAMBDA_PATH + "${OrdersApiFunctionAliaslive}/invocations"
_ERROR_TEMPLATE = (
    '{"error":"$context.error.responseType","message":$context.error.messageString,'
    + '"details":[],"order_id":null}'
)


def _gateway_responses() -> dict[str, Any]:
    """API Gateway's own errors (bad signature, throttling) in the API's error shape."""
    response = {"responseTemplates": {"application/json": _ERROR_TEMPLATE}}
    return {"DEFAULT_4XX": response, "DEFAULT_5XX": response}


def document() -> dict[str, Any]:
    """The contract: Powertools' OpenAPI 3.1 document with SigV4 security and the integrations."""
    spec: dict[str, Any] = json.loads(app.get_openapi_json_schema())
    spec.setdefault("components", {})["securitySchemes"] = {
        SECURITY_SCHEME: {
            "type": "apiKey",
            "name": "Authorization",
            "in": "header",
            "description": "AWS Signature Version 4 by an IAM role of the caller's user type",
            "x-amazon-apigateway-authtype": "awsSigv4",
        }
    }
    for operations in spec["paths"].values():
        for operation in operations.values():
            operation["security"] = [{SECURITY_SCHEME: []}]
            operation["x-amazon-apigateway-integration"] = {
                "type": "aws_proxy",
                "httpMethod": "POST",
                "uri": {"Fn::Sub": INTEGRATION_URI},
                "passthroughBehavior": "when_no_match",
            }
    spec["x-amazon-apigateway-gateway-responses"] = _gateway_responses()
    return spec


def gateway_document() -> dict[str, Any]:
    """The REST API's definition for API Gateway: OpenAPI 3.0, routes and integrations only."""
    return gateway_definition(document())


def gateway_definition(contract: dict[str, Any]) -> dict[str, Any]:
    """The contract's routes reduced for API Gateway, plus its own ping route."""
    return with_ping(from_contract(contract))


def render(spec: dict[str, Any]) -> str:
    return json.dumps(spec, indent=2, sort_keys=False) + "\n"


def _write(target: Path, spec: dict[str, Any]) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render(spec), encoding="utf-8")
    print(f"wrote {target}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m orders_api.openapi_export", description=__doc__)
    parser.add_argument("contract", nargs="?", type=Path, default=DEFAULT_PATH, help="the contract (3.1)")
    parser.add_argument(
        "--gateway", type=Path, help=f"API Gateway's definition (3.0); default: {GATEWAY_FILE_NAME} beside it"
    )
    args = parser.parse_args(argv)
    contract = document()
    _write(args.contract, contract)
    _write(args.gateway or args.contract.parent / GATEWAY_FILE_NAME, gateway_definition(contract))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
