"""The local API Gateway and the Python client over real HTTP: SigV4, per-route IAM, docs, CLI."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from botocore.credentials import Credentials
from orders_api.openapi_export import document

from meridian.iam.sigv4 import LocalCredential, SignatureError, verify
from meridian_client import ApiError, MeridianClient, SigV4RequestAuth
from meridian_local.apigateway.apigw import ApiGateway, serve_in_thread
from meridian_local.apigateway.order_function import load_handler
from tests.unit.orders_api.harness import (
    ACCESS_KEYS,
    ACCOUNT_A,
    OPERATOR,
    TRADER_A,
    TRADER_B,
    key_for,
    local_credential,
    secret_for,
)

ClientFor = Callable[[str], MeridianClient]


def test_client_submits_lists_and_cancels(client_for: ClientFor) -> None:
    alice = client_for(TRADER_A)
    placed = alice.submit_order("AAPL", "buy", 10, "190.00", idempotency_key="cli-1")
    assert placed["status"] == "NEW"
    assert (
        alice.submit_order("AAPL", "buy", 10, "190.00", idempotency_key="cli-1")["order_id"]
        == placed["order_id"]
    )
    assert [o["order_id"] for o in alice.list_orders()["orders"]] == [placed["order_id"]]
    with pytest.raises(ApiError) as hidden:
        client_for(TRADER_B).cancel_order(placed["order_id"])
    assert hidden.value.status == 404
    assert alice.cancel_order(placed["order_id"])["status"] == "CANCELLED"


def test_bad_or_missing_signatures_are_403(local_api: str) -> None:
    assert requests.get(f"{local_api}/orders", timeout=5).json()["error"] == "MISSING_AUTHENTICATION_TOKEN"
    forged = SigV4RequestAuth(Credentials("AKIDTRADERA000000001", "not-the-secret"), "us-east-1")
    answer = requests.get(f"{local_api}/orders", auth=forged, timeout=5)
    assert answer.status_code == 403
    assert answer.json()["error"] == "INVALID_SIGNATURE"
    unknown = SigV4RequestAuth(Credentials("AKIDNOBODY0000000000", "x"), "us-east-1")
    assert (
        requests.get(f"{local_api}/orders", auth=unknown, timeout=5).json()["error"] == "UNRECOGNIZED_CLIENT"
    )


def signed_by(principal: str) -> SigV4RequestAuth:
    key = key_for(principal)
    return SigV4RequestAuth(Credentials(key, secret_for(key)), "us-east-1")


def test_a_route_the_callers_role_may_not_invoke_is_refused_before_the_function(
    local_api: str, invoked: list[dict[str, Any]]
) -> None:
    order: dict[str, Any] = {"symbol": "AAPL", "side": "BUY", "quantity": 10, "price": "190.00"}
    refused = requests.post(f"{local_api}/orders", json=order, auth=signed_by(OPERATOR), timeout=5)
    assert refused.status_code == 403
    assert refused.json() == {
        "error": "ACCESS_DENIED",
        "message": f"User: {OPERATOR} is not authorized to perform: execute-api:Invoke on resource: "
        "arn:aws:execute-api:us-east-1:123456789012:meridianapi/v1/POST/orders",
        "details": [],
        "order_id": None,
    }
    assert invoked == []  # the function never saw it
    placed = requests.post(f"{local_api}/orders", json=order, auth=signed_by(TRADER_A), timeout=5)
    assert placed.status_code == 201, placed.text
    assert [(e["httpMethod"], e["path"]) for e in invoked] == [("POST", "/orders")]
    health = requests.get(f"{local_api}/health", auth=signed_by(OPERATOR), timeout=5)
    assert health.status_code == 200, health.text  # the operator's own route
    trader_health = requests.get(f"{local_api}/health", auth=signed_by(TRADER_A), timeout=5)
    assert trader_health.json()["error"] == "ACCESS_DENIED"
    assert len(invoked) == 2


def test_the_ping_is_answered_by_the_gateway_unsigned_without_the_function(
    local_api: str, invoked: list[dict[str, Any]]
) -> None:
    for auth in (None, signed_by(TRADER_A)):  # API Gateway ignores a signature on an unauthenticated method
        answer = requests.get(f"{local_api}/ping", auth=auth, timeout=5)
        assert answer.status_code == 200, answer.text
        assert answer.headers["Content-Type"] == "application/json"
        assert answer.content == b'{"status":"ok"}'
    assert invoked == []  # no function ran
    other = requests.post(f"{local_api}/ping", timeout=5)  # only GET is the gateway's own
    assert (other.status_code, other.json()["error"]) == (403, "MISSING_AUTHENTICATION_TOKEN")
    assert invoked == []


def test_tampered_body_breaks_the_signature() -> None:
    creds = {"AK": LocalCredential("s3cret", "arn:aws:sts::1:assumed-role/r/s")}
    request = requests.Request("POST", "http://127.0.0.1:3000/orders?limit=5", data=b'{"a":1}').prepare()
    SigV4RequestAuth(Credentials("AK", "s3cret"), "us-east-1")(request)
    headers = {name: str(value) for name, value in request.headers.items()} | {"Host": "127.0.0.1:3000"}
    assert verify("POST", str(request.url), headers, b'{"a":1}', creds, "us-east-1")[0] == "AK"
    with pytest.raises(SignatureError):
        verify("POST", str(request.url), headers, b'{"a":2}', creds, "us-east-1")
    later = datetime.now(UTC) + timedelta(hours=1)
    with pytest.raises(SignatureError, match="expired"):
        verify("POST", str(request.url), headers, b'{"a":1}', creds, "us-east-1", now=later)


def test_docs_and_openapi_are_served(local_api: str) -> None:
    spec = requests.get(f"{local_api}/openapi.json", timeout=5).json()
    assert spec["info"]["title"] == "Meridian Order API"
    page = requests.get(f"{local_api}/docs", timeout=5)
    assert "swagger-ui" in page.text
    assert requests.get(f"{local_api}/docs/swagger-ui-bundle.min.js", timeout=5).status_code == 200


def test_each_answer_says_how_many_aws_round_trips_the_function_waited_for(
    svc: Any, clients: dict[str, Any], route_access: Any
) -> None:
    from orders_api.openapi_export import document  # noqa: PLC0415

    from meridian_local.apigateway.apigw import ROUND_TRIPS_HEADER, ApiGateway, serve_in_thread  # noqa: PLC0415
    from meridian_local.apigateway.aws_round_trips import RoundTripRecorder  # noqa: PLC0415
    from meridian_local.apigateway.order_function import load_handler  # noqa: PLC0415
    from tests.unit.orders_api.harness import ACCESS_KEYS, local_credential  # noqa: PLC0415

    recorder = RoundTripRecorder()
    recorder.attach(*clients.values())
    credentials = {key: local_credential(key, who) for key, who in ACCESS_KEYS.items()}
    server = serve_in_thread(
        ApiGateway(load_handler(), credentials, document, route_access, round_trips=recorder)
    )
    try:
        url = f"http://127.0.0.1:{server.port}"
        order: dict[str, Any] = {
            "symbol": "AAPL",
            "side": "BUY",
            "quantity": 10,
            "price": "190.00",
            "client_order_id": "rt-1",
        }
        placed = requests.post(f"{url}/orders", json=order, auth=signed_by(TRADER_A), timeout=5)
        assert placed.status_code == 201
        assert int(placed.headers[ROUND_TRIPS_HEADER]) >= 3  # the reads, the create, PutEvents, the record
        read = requests.get(f"{url}/orders/{placed.json()['order_id']}", auth=signed_by(TRADER_A), timeout=5)
        assert read.headers[ROUND_TRIPS_HEADER] == "1"  # the principal is cached: the order's read alone
    finally:
        server.shutdown()


def test_a_session_named_after_someone_else_is_refused_before_the_function(
    svc: Any, route_access: Any
) -> None:
    # Mallory, an IAM user allowed to assume the trader role, names her session "alice". AWS never
    # issues it (the trust policy binds the session name to the caller's user name); the local
    # gateway refuses it the same way, so the order API never takes her for alice.
    from orders_api.openapi_export import document  # noqa: PLC0415

    from meridian_local.apigateway.apigw import ApiGateway, serve_in_thread  # noqa: PLC0415
    from tests.unit.orders_api.harness import local_credential  # noqa: PLC0415

    invoked: list[dict[str, Any]] = []
    credentials = {
        "AKIDALICE00000000001": local_credential("AKIDALICE00000000001", TRADER_A),
        "AKIDMALLORY000000001": local_credential("AKIDMALLORY000000001", TRADER_A, user="mallory"),
    }

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        invoked.append(event)
        return {"statusCode": 200, "body": "{}"}

    server = serve_in_thread(ApiGateway(handler, credentials, document, route_access))
    try:
        url = f"http://127.0.0.1:{server.port}/orders"
        impostor = SigV4RequestAuth(
            Credentials("AKIDMALLORY000000001", secret_for("AKIDMALLORY000000001")), "us-east-1"
        )
        refused = requests.get(url, auth=impostor, timeout=5)
        assert refused.status_code == 403
        assert refused.json()["error"] == "ACCESS_DENIED"
        assert "session name" in refused.json()["message"]
        assert invoked == []
        alice = SigV4RequestAuth(
            Credentials("AKIDALICE00000000001", secret_for("AKIDALICE00000000001")), "us-east-1"
        )
        assert requests.get(url, auth=alice, timeout=5).status_code != 403
        assert len(invoked) == 1
    finally:
        server.shutdown()


@pytest.fixture
def signing_api(svc: Any, route_access: Any) -> Iterator[str]:
    """The local gateway as ``make run`` serves it: Swagger UI may call as a local user."""
    credentials = {key: local_credential(key, who) for key, who in ACCESS_KEYS.items()}
    gateway = ApiGateway(load_handler(), credentials, document, route_access, local_signing=True)
    server = serve_in_thread(gateway)
    yield f"http://127.0.0.1:{server.port}"
    server.shutdown()


def test_swagger_ui_calls_as_a_picked_local_user_and_iam_still_applies(
    signing_api: str, local_api: str
) -> None:
    page = requests.get(f"{signing_api}/docs", timeout=5).text
    assert "<select id='meridian-user'>" in page
    assert "<option value='alice'>alice</option>" in page
    assert "requestInterceptor" in page
    body: dict[str, Any] = {"symbol": "AAPL", "side": "BUY", "quantity": 1, "price": "190.00"}
    placed = requests.post(f"{signing_api}/as/alice/orders", json=body, timeout=10)
    assert placed.status_code == 201, placed.text
    assert placed.json()["account"] == ACCOUNT_A
    mine = requests.get(f"{signing_api}/as/alice/orders", timeout=10).json()["orders"]
    assert [o["order_id"] for o in mine] == [placed.json()["order_id"]]
    denied = requests.post(f"{signing_api}/as/alice/admin/halt", json={}, timeout=10)  # a trader may not
    assert (denied.status_code, denied.json()["error"]) == (403, "ACCESS_DENIED")
    unknown = requests.get(f"{signing_api}/as/mallory/orders", timeout=10)
    assert (unknown.status_code, unknown.json()["error"]) == (403, "UNRECOGNIZED_CLIENT")
    # Without the signing mode (tests, benchmarks, AWS) there is no such path: it needs a signature.
    refused = requests.get(f"{local_api}/as/alice/orders", timeout=10)
    assert (refused.status_code, refused.json()["error"]) == (403, "MISSING_AUTHENTICATION_TOKEN")
    assert "meridian-user" not in requests.get(f"{local_api}/docs", timeout=5).text
