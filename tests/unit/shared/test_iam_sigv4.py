"""SigV4 verification (``meridian.iam.sigv4``): each way a request can fail names its reason."""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from typing import Any

import pytest

from meridian.iam.sigv4 import SignatureError, verify
from meridian_gateway.identity import BODY
from tests.gateway_harness import CREDENTIALS, REGION, key_of, now, token


def signed() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(base64.urlsafe_b64decode(token("alice") + "=="))
    document["headers"] = {k.lower(): v for k, v in document["headers"].items()}
    return document


def check(document: dict[str, Any], service: str = "sts", when: Any = None) -> tuple[str, str]:
    return verify("POST", document["url"], document["headers"], BODY.encode(), CREDENTIALS, REGION,
                  when or now(), service=service)  # fmt: skip


def test_a_good_signature_names_its_key_and_principal() -> None:
    assert check(signed()) == (key_of("alice"), CREDENTIALS[key_of("alice")].principal)


@pytest.mark.parametrize(
    ("change", "code", "text"),
    [
        (lambda d: d["headers"].pop("authorization"), "MISSING_AUTHENTICATION_TOKEN", "Missing"),
        (lambda d: d["headers"].update(authorization="Basic abc"), "INCOMPLETE_SIGNATURE", "not AWS SigV4"),
        (
            lambda d: d["headers"].update(
                authorization=d["headers"]["authorization"].replace(key_of("alice"), "AKIANOBODY0000000000")
            ),
            "UNRECOGNIZED_CLIENT",
            "invalid",
        ),
        (lambda d: d["headers"].update({"x-amz-date": "yesterday"}), "INCOMPLETE_SIGNATURE", "X-Amz-Date"),
        (lambda d: d["headers"].pop("x-meridian-gateway"), "INVALID_SIGNATURE", "signed header is missing"),
        (
            lambda d: d["headers"].update({"x-meridian-gateway": "other"}),
            "INVALID_SIGNATURE",
            "does not match",
        ),
    ],
)
def test_each_broken_request_is_refused_with_its_reason(change: Any, code: str, text: str) -> None:
    document = signed()
    change(document)
    with pytest.raises(SignatureError, match=text) as caught:
        check(document)
    assert caught.value.code == code


def test_a_signature_for_another_service_or_out_of_its_window_is_refused() -> None:
    with pytest.raises(SignatureError, match="scoped to us-east-1/execute-api"):
        check(signed(), service="execute-api")
    with pytest.raises(SignatureError, match="expired"):
        check(signed(), when=now() + timedelta(minutes=16))
