"""Fixtures of the order API unit tests: moto in-process, the real matching engine, the handler."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from botocore.credentials import Credentials
from moto import mock_aws
from orders_api import aws, config, services
from orders_api.config import Settings
from orders_api.openapi_export import document

from meridian_client import MeridianClient
from meridian_local.apigateway.apigw import ApiGateway, serve_in_thread, template_access
from meridian_local.apigateway.order_function import load_handler
from meridian_local.apigateway.route_access import RouteAccess
from meridian_local.endpoint import moto_transactions
from tests.orders_api_fixtures import EngineGateway, local_services
from tests.unit.orders_api.harness import (
    ACCESS_KEYS,
    Answer,
    call,
    key_for,
    local_credential,
    new_gateway,
    secret_for,
    seed,
)


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name, value in {
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_METRICS_NAMESPACE": "Meridian",
        "POWERTOOLS_METRICS_DISABLED": "true",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    config.settings.cache_clear()
    aws.reset_clients()
    yield
    config.settings.cache_clear()
    aws.reset_clients()
    services.reset()


@pytest.fixture
def settings(aws_env: None) -> Settings:
    return Settings(large_order_notional=1_000_000, default_max_open_orders=50)


@pytest.fixture
def clients(aws_env: None, settings: Settings) -> Iterator[dict[str, Any]]:
    moto_transactions.install()
    with mock_aws():
        made = {name: aws.client(name) for name in ("dynamodb", "events", "sqs")}
        seed(made, settings)
        yield made


@pytest.fixture
def gateway() -> EngineGateway:
    return new_gateway()


@pytest.fixture
def svc(clients: dict[str, Any], settings: Settings, gateway: EngineGateway) -> services.Services:
    built = local_services(settings, clients, gateway)
    services.use(built)
    return built


@pytest.fixture
def api(svc: services.Services) -> Callable[..., Answer]:
    handler = load_handler()

    def request(method: str, path: str, **kwargs: Any) -> Answer:
        return call(handler, method, path, **kwargs)

    return request


@pytest.fixture(scope="session")
def route_access() -> RouteAccess:
    """Who may invoke which route: the template's roles (environment dev), as the gateway checks."""
    return template_access()


@pytest.fixture
def invoked() -> list[dict[str, Any]]:
    """The events the local gateway handed to the function, in order."""
    return []


@pytest.fixture
def local_api(
    svc: services.Services, route_access: RouteAccess, invoked: list[dict[str, Any]]
) -> Iterator[str]:
    """The order API behind the local API Gateway, over HTTP on a free loopback port."""
    credentials = {key: local_credential(key, who) for key, who in ACCESS_KEYS.items()}
    handler = load_handler()

    def recording(event: dict[str, Any], context: Any) -> dict[str, Any]:
        invoked.append(event)
        return handler(event, context)

    server = serve_in_thread(ApiGateway(recording, credentials, document, route_access))
    yield f"http://127.0.0.1:{server.port}"
    server.shutdown()


@pytest.fixture
def client_for(local_api: str) -> Callable[[str], MeridianClient]:
    def make(principal: str) -> MeridianClient:
        key = key_for(principal)
        return MeridianClient(local_api, Credentials(key, secret_for(key)))

    return make
