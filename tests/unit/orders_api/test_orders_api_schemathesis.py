"""Schemathesis against the committed OpenAPI document, through the local API Gateway over HTTP.

Every operation gets generated requests (signed as the user type the route is for); no answer may
be a 5xx or break the document (status code, content type, headers, body schema).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests
import schemathesis
from botocore.credentials import Credentials
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from meridian_client import SigV4RequestAuth
from tests.unit.orders_api.harness import COMPLIANCE, OPERATOR, TRADER_A, key_for, secret_for

DOCUMENT = Path(__file__).resolve().parents[3] / "docs" / "api" / "openapi.json"
EXAMPLES_PER_OPERATION = 95
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


# moto's mock answers any `requests` call whose URL looks like an AWS endpoint, whatever its host:
# a generated path such as /orders/lambda.amazonaws.com/fills got moto's 400 "The method is not
# implemented" instead of reaching the local API. Requests to the API go around that mock.
_UNMOCKED_SEND = requests.adapters.HTTPAdapter.send  # taken at import, before any test starts moto


class LoopbackAdapter(requests.adapters.HTTPAdapter):
    def send(self, *args: Any, **kwargs: Any) -> requests.Response:
        return _UNMOCKED_SEND(self, *args, **kwargs)


def loopback_session() -> requests.Session:
    session = requests.Session()
    session.mount("http://", LoopbackAdapter())
    return session


def signer_for(path: str) -> SigV4RequestAuth:
    principal = OPERATOR if path.startswith(("/admin", "/health")) else TRADER_A
    if path.endswith("/approval"):
        principal = COMPLIANCE
    key = key_for(principal)
    return SigV4RequestAuth(Credentials(key, secret_for(key)), "us-east-1")


def test_generated_requests_never_fail_the_server_or_the_schema(
    local_api: str, client_for: Callable[..., Any]
) -> None:
    schema = schemathesis.openapi.from_dict(json.loads(DOCUMENT.read_text()))
    session = loopback_session()
    sent: list[int] = []
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()  # type: ignore[union-attr]
        auth = signer_for(operation.path)

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def exercise(case: Any) -> None:
            response = case.call(base_url=local_api, session=session, auth=auth)  # noqa: B023
            sent.append(response.status_code)
            try:
                case.validate_response(response, checks=CHECKS)
            except Exception as exc:
                failures.append(f"{case.method} {case.formatted_path}: {str(exc)[:400]}")

        exercise()
    assert not failures, "\n".join(failures[:10])
    assert len(sent) >= 1000
    assert not [status for status in sent if status >= 500]
    print(f"schemathesis: {len(sent)} requests, statuses {sorted(set(sent))}")


def test_a_path_that_looks_like_an_aws_endpoint_reaches_the_api_not_the_aws_mock(local_api: str) -> None:
    response = loopback_session().get(f"{local_api}/orders/lambda.amazonaws.com/fills")
    assert response.status_code != 400 or response.text != "The method is not implemented"
    assert response.headers.get("content-type", "").startswith("application/json")  # the API answered
