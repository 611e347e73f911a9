"""moto in server mode on a loopback port the OS picks, as the AWS endpoint of the pipeline tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

ClientFactory = Callable[[str], Any]


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()  # bound and listening when it returns: no port probed and released first
    _, port = server.get_host_and_port()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def aws(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> ClientFactory:
    """boto3 clients on the moto endpoint; the handlers' own clients find it through the env."""
    for name, value in {
        "AWS_ENDPOINT_URL": moto_endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)

    make: Any = boto3.client  # a service chosen at run time: no per-service overload applies

    def client(service: str) -> Any:
        return make(service, endpoint_url=moto_endpoint, region_name="us-east-1")

    return client
