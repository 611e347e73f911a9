"""API Gateway REST (v1) proxy events, as API Gateway hands them to a Lambda integration."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import parse_qs

ACCOUNT_ID = "123456789012"
API_ID = "meridianapi"
STAGE = "v1"


def route_resource(path: str) -> str:
    """The API Gateway resource template of a concrete path (``/orders/ord_1`` -> ``/orders/{order_id}``)."""
    parts = path.strip("/").split("/")
    if parts[:1] == ["orders"] and len(parts) >= 2:
        parts[1] = "{order_id}"
    elif parts[:1] == ["marketdata"] and len(parts) == 2:
        parts[1] = "{symbol}"
    return "/" + "/".join(parts)


def proxy_event(
    method: str,
    path: str,
    *,
    user_arn: str | None,
    body: str | bytes | None = None,
    headers: Mapping[str, str] | Sequence[tuple[str, str]] | None = None,
    query: str = "",
    source_ip: str = "127.0.0.1",
    access_key: str | None = None,
    request_id: str | None = None,
) -> dict[str, Any]:
    """A REST proxy event; ``requestContext.identity`` is what IAM authorization fills in."""
    pairs = list(headers.items()) if isinstance(headers, Mapping) else list(headers or [])
    single: dict[str, str] = {}
    multi: dict[str, list[str]] = {}
    for name, value in pairs:
        single[name] = value
        multi.setdefault(name, []).append(value)
    parsed = parse_qs(query, keep_blank_values=True)
    text = body.decode("utf-8", errors="replace") if isinstance(body, bytes) else body
    resource = route_resource(path)
    path_parameters = None
    if resource != path:
        names = [p.strip("{}") for p in resource.strip("/").split("/") if p.startswith("{")]
        values = [
            v
            for v, r in zip(path.strip("/").split("/"), resource.strip("/").split("/"), strict=False)
            if r.startswith("{")
        ]
        path_parameters = dict(zip(names, values, strict=False))
    request_id = request_id or str(uuid.uuid4())
    return {
        "resource": resource,
        "path": path,
        "httpMethod": method.upper(),
        "headers": single or None,
        "multiValueHeaders": multi or None,
        "queryStringParameters": {k: v[-1] for k, v in parsed.items()} or None,
        "multiValueQueryStringParameters": parsed or None,
        "pathParameters": path_parameters,
        "stageVariables": None,
        "requestContext": {
            "resourceId": "local",
            "resourcePath": resource,
            "httpMethod": method.upper(),
            "extendedRequestId": request_id,
            "requestTime": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime()),
            "path": f"/{STAGE}{path}",
            "accountId": ACCOUNT_ID,
            "protocol": "HTTP/1.1",
            "stage": STAGE,
            "domainPrefix": API_ID,
            "requestTimeEpoch": int(time.time() * 1000),
            "requestId": request_id,
            "identity": {
                "cognitoIdentityPoolId": None,
                "accountId": ACCOUNT_ID if user_arn else None,
                "cognitoIdentityId": None,
                "caller": user_arn.rsplit("/", 1)[-1] if user_arn else None,
                "sourceIp": source_ip,
                "principalOrgId": None,
                "accessKey": access_key,
                "cognitoAuthenticationType": None,
                "cognitoAuthenticationProvider": None,
                "userArn": user_arn,
                "userAgent": single.get("User-Agent", "meridian-local"),
                "user": user_arn.rsplit("/", 1)[-1] if user_arn else None,
            },
            "domainName": f"{API_ID}.execute-api.us-east-1.amazonaws.com",
            "apiId": API_ID,
        },
        "body": text,
        "isBase64Encoded": False,
    }


def json_body(response: Mapping[str, Any]) -> Any:
    body = response.get("body")
    return json.loads(body) if body else None
