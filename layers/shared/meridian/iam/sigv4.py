"""SigV4 verification the way AWS does it, where the secret is known: the local API, local STS.

The local API Gateway verifies requests signed for ``execute-api``; the streaming gateway, run
locally, verifies the ``sts:GetCallerIdentity`` request a client signs to connect (in AWS, STS
itself verifies that one: ``meridian_gateway.identity``).

The request is re-signed with botocore's ``SigV4Auth`` using the secret that the local credentials
file holds for the request's access key, over exactly the headers the client signed; signatures
are compared in constant time. The credentials file (JSON)::

    {"access_keys": {"AKIA...": {"secret": "...", "principal": "arn:aws:sts::...:assumed-role/r/s",
                                 "user": "s"}}}

``user`` is who the session was issued to (the IAM user whose name STS checked it against).
"""

from __future__ import annotations

import hmac
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

SERVICE = "execute-api"
MAX_SKEW = timedelta(minutes=15)
_AUTHORIZATION = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/(?P<service>[^/]+)"
    r"/aws4_request,"
    r"\s*SignedHeaders=(?P<headers>[a-z0-9;-]+),\s*Signature=(?P<signature>[0-9a-f]{64})$"
)


@dataclass(frozen=True, slots=True)
class LocalCredential:
    secret: str
    principal: str
    user: str | None = None


class SignatureError(Exception):
    """A request API Gateway would refuse with 403; ``code`` is API Gateway's response type."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def load_credentials(path: Path) -> dict[str, LocalCredential]:
    raw = json.loads(path.read_text(encoding="utf-8"))
    return {
        key: LocalCredential(
            secret=str(value["secret"]),
            principal=str(value["principal"]),
            user=str(value["user"]) if value.get("user") else None,
        )
        for key, value in raw.get("access_keys", {}).items()
    }


def verify(
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    credentials: Mapping[str, LocalCredential],
    region: str,
    now: datetime | None = None,
    service: str = SERVICE,
) -> tuple[str, str]:
    """The (access key, principal ARN) that signed this request; SignatureError otherwise."""
    lowered = {name.lower(): value for name, value in headers.items()}
    authorization = lowered.get("authorization")
    if not authorization:
        raise SignatureError("MISSING_AUTHENTICATION_TOKEN", "Missing Authentication Token")
    match = _AUTHORIZATION.match(authorization.strip())
    if match is None:
        raise SignatureError("INCOMPLETE_SIGNATURE", "Authorization header is not AWS SigV4")
    credential = credentials.get(match["key"])
    if credential is None:
        raise SignatureError("UNRECOGNIZED_CLIENT", "The security token included in the request is invalid")
    if match["service"] != service or match["region"] != region:
        raise SignatureError("INVALID_SIGNATURE", f"Credential should be scoped to {region}/{service}")
    stamp = lowered.get("x-amz-date", "")
    try:
        signed_at = datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        raise SignatureError("INCOMPLETE_SIGNATURE", "X-Amz-Date is missing or malformed") from None
    if abs((now or datetime.now(UTC)) - signed_at) > MAX_SKEW or stamp[:8] != match["date"]:
        raise SignatureError("INVALID_SIGNATURE", "Signature expired or not yet valid")
    signed = match["headers"].split(";")
    if "host" not in signed or any(name not in lowered for name in signed):
        raise SignatureError("INVALID_SIGNATURE", "A signed header is missing from the request")
    request = AWSRequest(method=method.upper(), url=url, data=body, headers={n: lowered[n] for n in signed})
    request.context["timestamp"] = stamp
    signer = SigV4Auth(Credentials(match["key"], credential.secret), service, region)
    canonical = signer.canonical_request(request)
    expected = signer.signature(signer.string_to_sign(request, canonical), request)
    if not hmac.compare_digest(expected, match["signature"]):
        raise SignatureError(
            "INVALID_SIGNATURE",
            "The request signature we calculated does not match the signature you provided",
        )
    return match["key"], credential.principal
