"""boto3 clients for the Lambdas, one per service, region and endpoint: reused across warm invocations."""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Any

import boto3

# What the functions' Tracer patches (Tracer(patch_modules=TRACED_MODULES)): the AWS SDK is the only
# library they call out with; Powertools' default patch_all also wraps httplib, requests and sqlite3.
TRACED_MODULES: tuple[str, ...] = ("botocore",)


@lru_cache(maxsize=32)
def _client(service: str, region: str | None, endpoint_url: str | None) -> Any:
    make: Any = boto3.client
    return make(service, region_name=region, endpoint_url=endpoint_url)


def client(service: str) -> Any:
    """The client for ``service`` in this function's region (``AWS_ENDPOINT_URL`` when set locally)."""
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    return _client(service, region, os.environ.get("AWS_ENDPOINT_URL") or None)
