"""boto3 clients for the local AWS endpoint (moto accepts any credentials; these are fixed)."""

from __future__ import annotations

from typing import Any

import boto3

REGION = "us-east-1"
LOCAL_CREDENTIALS = {"aws_access_key_id": "local", "aws_secret_access_key": "local"}


def aws_client(service: str, endpoint_url: str, region: str = REGION) -> Any:
    make: Any = boto3.client
    return make(service, endpoint_url=endpoint_url, region_name=region, **LOCAL_CREDENTIALS)
