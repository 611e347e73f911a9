"""Who is connecting: a signed ``sts:GetCallerIdentity`` request, verified, gives the caller's ARN.

Only AWS can verify a SigV4 signature made with an IAM secret, so a client proves who it is the way
Vault's and EKS's IAM authentication do: it signs a ``GetCallerIdentity`` request for STS with its
own credentials (the same ones it signs REST calls with) and sends that signed request, not a
secret, in the connect request's ``X-Meridian-Auth`` header (base64url of a JSON object: method,
url, headers, body). The gateway checks its shape (STS's URL for the region, the exact body, a
signed ``x-meridian-gateway`` header naming this gateway, so a token made for another service is
useless here) and then:

* in AWS (``StsVerifier``) forwards it to STS, which verifies the signature and answers with the
  caller's ARN; nothing is sent anywhere but the configured STS endpoint;
* locally (``LocalVerifier``) verifies the signature with the local credentials file, with the
  same code the local API Gateway uses (``meridian.iam.sigv4``).

A signature is valid for 15 minutes (STS's window); a token is also refused once it is older than
``max_age`` (5 minutes by default).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from meridian.iam.sigv4 import LocalCredential, SignatureError, verify

HEADER = "X-Meridian-Auth"
AUDIENCE_HEADER = "x-meridian-gateway"
BODY = "Action=GetCallerIdentity&Version=2011-06-15"
MAX_TOKEN_BYTES = 6144  # a token with a session token is about 2.5 KB; a header line may be 8 KB
DEFAULT_MAX_AGE = timedelta(minutes=5)
_ARN = re.compile(r"<Arn>([^<]+)</Arn>")


class AuthError(Exception):
    """A connect the gateway refuses; ``status`` is the HTTP status of the refusal (401 or 403)."""

    def __init__(self, code: str, message: str, status: int = 401) -> None:
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


@dataclass(frozen=True, slots=True)
class SignedRequest:
    method: str
    url: str
    headers: dict[str, str]
    body: str


@dataclass(frozen=True, slots=True)
class Identity:
    principal: str  # the caller's ARN (an assumed-role session)
    user: str | None = None  # the IAM user the session was issued to, where known (local)


def sts_url(region: str) -> str:
    return f"https://sts.{region}.amazonaws.com/"


def decode_token(token: str) -> SignedRequest:
    """The signed request in a connect token; AuthError when it is not one."""
    if not token:
        raise AuthError("MISSING_AUTHENTICATION", f"the connect request has no {HEADER} header")
    if len(token) > MAX_TOKEN_BYTES:
        raise AuthError("BAD_TOKEN", f"{HEADER} is over {MAX_TOKEN_BYTES} bytes")
    try:
        raw = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (ValueError, binascii.Error):
        raise AuthError("BAD_TOKEN", f"{HEADER} is not base64url JSON") from None
    if not isinstance(raw, dict):
        raise AuthError("BAD_TOKEN", f"{HEADER} is not a JSON object")
    method, url, headers, body = raw.get("method"), raw.get("url"), raw.get("headers"), raw.get("body")
    if not (
        isinstance(method, str)
        and isinstance(url, str)
        and isinstance(body, str)
        and isinstance(headers, dict)
        and all(isinstance(k, str) and isinstance(v, str) for k, v in headers.items())
    ):
        raise AuthError("BAD_TOKEN", f"{HEADER} needs method, url, body (strings) and headers (strings)")
    return SignedRequest(method, url, {k.lower(): v for k, v in headers.items()}, body)


def check_shape(
    request: SignedRequest, region: str, audience: str, now: datetime, max_age: timedelta
) -> None:
    """The request is a GetCallerIdentity for STS of ``region``, bound to this gateway, and recent."""
    if request.method != "POST" or request.url != sts_url(region) or request.body != BODY:
        raise AuthError("BAD_TOKEN", f"the token must be a signed POST {BODY} to {sts_url(region)}")
    signed = request.headers.get("authorization", "")
    if request.headers.get(AUDIENCE_HEADER) != audience or AUDIENCE_HEADER not in signed:
        raise AuthError("WRONG_AUDIENCE", f"the token must sign {AUDIENCE_HEADER}: {audience}")
    try:
        stamp = datetime.strptime(request.headers.get("x-amz-date", ""), "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        raise AuthError("BAD_TOKEN", "the token has no valid x-amz-date") from None
    if abs(now - stamp) > max_age:
        raise AuthError(
            "EXPIRED", f"the token is older than {int(max_age.total_seconds())} s: sign a new one"
        )


class LocalVerifier:
    """Verifies the signature with the local credentials (``make run`` writes them)."""

    def __init__(self, credentials: Mapping[str, LocalCredential], region: str, audience: str) -> None:
        self.credentials, self.region, self.audience = credentials, region, audience

    def identify(self, token: str, now: datetime | None = None) -> Identity:
        now = now or datetime.now(UTC)
        request = decode_token(token)
        check_shape(request, self.region, self.audience, now, DEFAULT_MAX_AGE)
        try:
            key, principal = verify(
                request.method,
                request.url,
                request.headers,
                request.body.encode(),
                self.credentials,
                self.region,
                now,
                service="sts",
            )
        except SignatureError as exc:
            raise AuthError(exc.code, exc.message) from None
        return Identity(principal, self.credentials[key].user)


class StsVerifier:
    """Forwards the signed request to STS, which verifies it and names the caller (AWS)."""

    def __init__(self, region: str, audience: str, endpoint: str | None = None, timeout: float = 5.0) -> None:
        self.region, self.audience, self.timeout = region, audience, timeout
        self.endpoint = endpoint or sts_url(region)  # a VPC endpoint's URL, if STS is reached through one

    def identify(self, token: str, now: datetime | None = None) -> Identity:
        request = decode_token(token)
        check_shape(request, self.region, self.audience, now or datetime.now(UTC), DEFAULT_MAX_AGE)
        headers = dict(request.headers)
        headers.setdefault("content-type", "application/x-www-form-urlencoded; charset=utf-8")
        forwarded = urllib.request.Request(  # noqa: S310 - the configured STS endpoint, never the token's URL
            self.endpoint, data=request.body.encode(), headers=headers, method="POST"
        )
        try:
            with urllib.request.urlopen(forwarded, timeout=self.timeout) as answer:  # noqa: S310
                text = answer.read(65536).decode("utf-8", "replace")
        except urllib.error.HTTPError as exc:
            if exc.code in (400, 403):
                raise AuthError("INVALID_SIGNATURE", "STS refused the signed request") from None
            raise AuthError("UNAVAILABLE", f"STS answered {exc.code}", status=503) from None
        except OSError as exc:
            raise AuthError("UNAVAILABLE", f"STS could not be reached: {exc}", status=503) from None
        match = _ARN.search(text)
        if match is None:
            raise AuthError("UNAVAILABLE", "STS's answer names no caller", status=503)
        return Identity(match[1])
