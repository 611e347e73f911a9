"""S3 for tests: moto's in-process S3 with one empty bucket, ``S3_BUCKET``, per test.

Register with ``pytest_plugins = ["tests.s3"]`` in the root conftest; a test asks for ``s3`` (the
client) and names the bucket ``S3_BUCKET``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

S3_BUCKET = "meridian-test-archive"


@pytest.fixture
def s3() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=S3_BUCKET)
        yield client
