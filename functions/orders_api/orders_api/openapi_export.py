"""The API's OpenAPI document: generated from the routes, plus API Gateway's extensions.

``python -m orders_api.openapi_export docs/api/openapi.json`` writes the committed copy, which the
template includes as the REST API's definition (``Fn::Transform: AWS::Include``); a test keeps the
two identical. Every operation is SigV4-authorised (IAM) and proxied to the function's live alias.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from orders_api.api import app

DEFAULT_PATH = Path("docs/api/openapi.json")
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


def render() -> str:
    return json.dumps(document(), indent=2, sort_keys=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    target = Path(args[0]) if args else DEFAULT_PATH
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render(), encoding="utf-8")
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
