"""Connects: a signed GetCallerIdentity of a registered person of the platform's roles is let in;
anything else is refused before the upgrade with 401/403 and a machine-readable body."""

from __future__ import annotations

import base64
import json
from datetime import timedelta

import pytest
import requests
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from meridian_client.stream import AUTH_HEADER
from meridian_gateway.identity import AuthError, LocalVerifier, StsVerifier
from tests.gateway_harness import CREDENTIALS, REGION, key_of, now, open_client, receive, token
from tests.unit.gateway.conftest import StartGateway


def refusal(url: str, headers: dict[str, str]) -> tuple[int, dict[str, str]]:
    with pytest.raises(InvalidStatus) as caught, connect(url, additional_headers=headers, open_timeout=10):
        pass
    response = caught.value.response
    return response.status_code, json.loads(response.body or b"{}")


def test_a_registered_trader_connects_and_is_welcomed_with_their_account(start_gateway: StartGateway) -> None:
    gateway = start_gateway()
    with open_client(gateway.url, "alice") as alice:
        (welcome,) = receive(alice)
    assert welcome["type"] == "welcome"
    assert welcome["account"] == "ACC-ALICE"
    assert welcome["principal"].endswith("/meridian-trader-dev/alice")


@pytest.mark.parametrize(
    ("headers", "status", "code"),
    [
        ({}, 401, "MISSING_AUTHENTICATION"),
        ({AUTH_HEADER: "not base64 json!"}, 401, "BAD_TOKEN"),
        ({AUTH_HEADER: base64.urlsafe_b64encode(b"[1, 2]").decode()}, 401, "BAD_TOKEN"),
        ({AUTH_HEADER: "x" * 7000}, 401, "BAD_TOKEN"),
    ],
)
def test_unauthenticated_connects_are_refused_with_a_reason(
    start_gateway: StartGateway, headers: dict[str, str], status: int, code: str
) -> None:
    gateway = start_gateway()
    assert refusal(gateway.url, headers)[0:1] == (status,)
    assert refusal(gateway.url, headers)[1]["code"] == code


def test_a_token_for_another_audience_a_forged_signature_and_a_foreign_session_are_refused(
    start_gateway: StartGateway,
) -> None:
    gateway = start_gateway()
    assert refusal(gateway.url, {AUTH_HEADER: token("alice", audience="other-service")}) == (
        401,
        {"code": "WRONG_AUDIENCE", "message": "the token must sign x-meridian-gateway: meridian-gateway"},
    )
    forged = json.loads(base64.urlsafe_b64decode(token("bob") + "=="))
    signed = forged["headers"]["Authorization"]
    forged["headers"]["Authorization"] = signed.replace(key_of("bob"), key_of("alice"))  # bob's signature
    status, body = refusal(
        gateway.url, {AUTH_HEADER: base64.urlsafe_b64encode(json.dumps(forged).encode()).decode()}
    )
    assert (status, body["code"]) == (401, "INVALID_SIGNATURE")
    # mallory holds a session named alice: the trust policy binds the name to the caller, so no
    status, body = refusal(gateway.url, {AUTH_HEADER: token("alice", key="AKIAMALLORYASALICE00")})
    assert (status, body["code"]) == (403, "ACCESS_DENIED")
    assert "mallory" in body["message"]


def test_health_metrics_and_unknown_paths(start_gateway: StartGateway) -> None:
    gateway = start_gateway()
    assert requests.get(f"{gateway.http}/healthz", timeout=5).json() == {"status": "ok"}
    gateway.gateway.health_checks.append(lambda: False)
    assert requests.get(f"{gateway.http}/healthz", timeout=5).status_code == 503
    refusal(gateway.url, {})
    metrics = requests.get(f"{gateway.http}/metrics", timeout=5).text
    assert 'meridian_gateway_connects_refused_total{code="MISSING_AUTHENTICATION"} 1.0' in metrics
    answer = requests.get(f"{gateway.http}/other", timeout=5)
    assert (answer.status_code, answer.json()["code"]) == (404, "NOT_FOUND")


def test_an_old_token_is_refused_even_with_a_good_signature() -> None:
    verifier = LocalVerifier(CREDENTIALS, REGION, "meridian-gateway")
    signed = token("alice")
    assert verifier.identify(signed).principal.endswith("/alice")
    with pytest.raises(AuthError, match="older than 300 s"):
        verifier.identify(signed, now() + timedelta(minutes=6))


def test_sts_is_asked_only_at_its_own_endpoint_and_never_at_the_tokens_url() -> None:
    verifier = StsVerifier(REGION, "meridian-gateway", endpoint="http://127.0.0.1:9/")
    document = json.loads(base64.urlsafe_b64decode(token("alice") + "=="))
    document["url"] = "http://169.254.169.254/latest/meta-data/"
    evil = base64.urlsafe_b64encode(json.dumps(document).encode()).decode()
    with pytest.raises(AuthError, match="signed POST"):
        verifier.identify(evil)
    with pytest.raises(AuthError) as caught:  # the configured endpoint: nothing listens on port 9
        verifier.identify(token("alice"))
    assert (caught.value.code, caught.value.status) == ("UNAVAILABLE", 503)
