"""Custom::LedgerMigrations: every request gets exactly one response, success or failure."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import psycopg
import pytest
from migrations.cfn_response import Responder
from migrations.resource import handle

from meridian.ledger import latest_version
from meridian_local.delivery.lambda_events import LocalLambdaContext
from meridian_local.delivery.pollers import Handler, load_handler

REPO = Path(__file__).resolve().parents[3]
SAMPLES = REPO / "events" / "migrations"


class CloudFormationEndpoint:
    """Stands in for the pre-signed S3 URL CloudFormation waits on."""

    def __init__(self) -> None:
        self.responses: list[dict[str, Any]] = []
        self.answered = threading.Event()  # set once a response has arrived
        outer = self

        class Receive(BaseHTTPRequestHandler):
            def do_PUT(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.responses.append(json.loads(body))
                outer.answered.set()
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Receive)
        self.url = f"http://127.0.0.1:{self.server.server_port}/response"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def cloudformation() -> Iterator[CloudFormationEndpoint]:
    endpoint = CloudFormationEndpoint()
    yield endpoint
    endpoint.server.shutdown()


@pytest.fixture
def handler() -> Handler:
    return load_handler(REPO / "functions" / "migrations", "app.lambda_handler")


def _sample(name: str, url: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((SAMPLES / f"{name}.json").read_text())
    event["ResponseURL"] = url
    return event


def test_create_update_delete_samples(
    handler: Handler,
    cloudformation: CloudFormationEndpoint,
    fresh_database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DATABASE_URL", fresh_database_url)
    for name in ("create", "update", "delete"):
        handler(_sample(name, cloudformation.url), LocalLambdaContext(timeout_s=60))
    create, update, delete = cloudformation.responses
    assert create["Status"] == update["Status"] == delete["Status"] == "SUCCESS"
    assert create["PhysicalResourceId"] == update["PhysicalResourceId"] == "meridian-ledger-schema"
    assert create["Data"]["SchemaVersion"] == str(latest_version())
    assert create["Data"]["Applied"].startswith("V001__")
    assert update["Data"]["Applied"] == "none"
    assert delete["Data"] == {"SchemaVersion": "unchanged"}
    assert create["RequestId"] == "b1c2d3e4-0001-4a5b-8c7d-9e0f1a2b3c4d"
    with psycopg.connect(fresh_database_url) as conn:  # delete kept the data
        assert conn.execute("SELECT count(*) FROM schema_migrations").fetchone() == (latest_version(),)


def test_a_database_failure_still_answers(
    handler: Handler, cloudformation: CloudFormationEndpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none?connect_timeout=1")
    handler(_sample("create", cloudformation.url), LocalLambdaContext(timeout_s=60))
    [answer] = cloudformation.responses
    assert answer["Status"] == "FAILED"
    assert "OperationalError" in answer["Reason"]


def test_missing_configuration_still_answers(
    handler: Handler, cloudformation: CloudFormationEndpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("DATABASE_URL", "DB_SECRET_ARN", "DB_HOST"):
        monkeypatch.delenv(name, raising=False)
    handler(_sample("update", cloudformation.url), LocalLambdaContext(timeout_s=60))
    assert [r["Status"] for r in cloudformation.responses] == ["FAILED"]


def test_a_template_ahead_of_the_code_fails_the_deploy(cloudformation: CloudFormationEndpoint) -> None:
    event = _sample("create", cloudformation.url)
    event["ResourceProperties"]["SchemaVersion"] = str(latest_version() + 1)
    with pytest.raises(ValueError, match="expects schema version"):
        handle(event, 60_000, lambda: pytest.fail("must not connect"), Responder(event))
    assert cloudformation.responses[0]["Status"] == "FAILED"


def test_the_watchdog_answers_before_the_function_times_out(cloudformation: CloudFormationEndpoint) -> None:
    event = _sample("create", cloudformation.url)
    responder = Responder(event)

    def hang() -> psycopg.Connection[Any]:
        # The database answers only after the watchdog has told CloudFormation: no race on timings.
        assert cloudformation.answered.wait(30), "the watchdog never answered"
        raise TimeoutError("database never answered")

    with pytest.raises(TimeoutError):
        handle(event, remaining_ms=5_300, connect=hang, responder=responder)  # watchdog fires after 0.3 s
    assert [r["Status"] for r in cloudformation.responses] == ["FAILED"]  # the late failure sends nothing
    assert "timed out" in cloudformation.responses[0]["Reason"]


def test_an_unreachable_response_url_does_not_raise() -> None:
    event = _sample("delete", "http://127.0.0.1:1/unreachable")
    assert Responder(event).send("SUCCESS", "x") is True
