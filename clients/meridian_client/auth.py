"""SigV4 signing of ``requests`` calls with botocore, as API Gateway's IAM authorization expects."""

from __future__ import annotations

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials, ReadOnlyCredentials
from requests import PreparedRequest
from requests.auth import AuthBase

SERVICE = "execute-api"


class SigV4RequestAuth(AuthBase):
    """Signs the final request (URL, body) for ``execute-api`` in ``region``."""

    def __init__(self, credentials: Credentials | ReadOnlyCredentials, region: str) -> None:
        self.credentials = credentials
        self.region = region

    def __call__(self, request: PreparedRequest) -> PreparedRequest:
        body = request.body or b""
        if isinstance(body, str):
            body = body.encode()
        aws_request = AWSRequest(method=request.method, url=request.url, data=body)
        frozen = (
            self.credentials.get_frozen_credentials()
            if isinstance(self.credentials, Credentials)
            else self.credentials
        )
        signer_credentials = Credentials(str(frozen.access_key), str(frozen.secret_key), frozen.token)
        SigV4Auth(signer_credentials, SERVICE, self.region).add_auth(aws_request)
        for name in ("Authorization", "X-Amz-Date", "X-Amz-Security-Token"):
            if name in aws_request.headers:
                request.headers[name] = aws_request.headers[name]
        return request
