"""The local API Gateway and the Python client over real HTTP: SigV4, docs, CLI."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
import requests
from botocore.credentials import Credentials
from meridian_client import ApiError, MeridianClient, SigV4RequestAuth
from meridian_client.cli import main

from meridian_local.sigv4 import LocalCredential, SignatureError, verify
from tests.unit.orders_api.harness import TRADER_A, TRADER_B

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


def test_cli_prints_tables_and_rejects_bad_input(client_for: ClientFor) -> None:
    alice = client_for(TRADER_A)
    out, err = io.StringIO(), io.StringIO()
    code = main(["orders", "submit", "--symbol", "aapl", "--side", "buy", "--qty", "10", "--price", "190.00"],
                lambda _: alice, out, err)  # fmt: skip
    assert code == 0, err.getvalue()
    assert "PENDING_APPROVAL" not in out.getvalue()
    listing = io.StringIO()
    assert main(["orders", "list"], lambda _: alice, listing, err) == 0
    assert listing.getvalue().splitlines()[0].split()[:3] == ["ORDER_ID", "SYMBOL", "SIDE"]
    assert "AAPL" in listing.getvalue()
    submit = ["orders", "submit", "--symbol", "AAPL"]
    for bad in (
        [*submit, "--side", "buy", "--qty", "ten", "--price", "1"],
        [*submit, "--side", "buy", "--qty", "1"],
        [*submit, "--side", "hold", "--qty", "1", "--price", "1"],
        [*submit, "--side", "buy", "--qty", "1", "--price", "1,5"],
    ):
        assert main(bad, lambda _: alice, io.StringIO(), io.StringIO()) == 2, bad
    refused = io.StringIO()
    assert main(["orders", "cancel", "ord_missing"], lambda _: alice, io.StringIO(), refused) == 1
    assert "NOT_FOUND" in refused.getvalue()
    market = io.StringIO()
    assert main(["marketdata", "AAPL"], lambda _: alice, market, err) == 0
    assert "symbol" in market.getvalue()
    json.dumps(alice.positions())  # answers are plain JSON
