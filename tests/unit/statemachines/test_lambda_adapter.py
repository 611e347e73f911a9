"""The in-process Lambda adapter: template reading, handler resolution, per-thread environments."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from meridian_local.delivery import lambda_adapter
from meridian_local.delivery.lambda_adapter import (
    FunctionSource,
    HandlerNotFoundError,
    HandlerRegistry,
    LambdaContext,
    functions_in,
    run_handler,
)

HANDLERS = """
import os

def echo(event, context):
    return {"event": event, "colour": os.environ.get("COLOUR"), "function": context.function_name}

def fail(event, context):
    raise KeyError("missing")
"""


@pytest.fixture
def code(tmp_path: Path) -> Path:
    folder = tmp_path / "functions" / "demo"
    folder.mkdir(parents=True)
    (folder / "app.py").write_text(HANDLERS)
    return tmp_path


def _template() -> dict[str, Any]:
    return {
        "Globals": {
            "Function": {"Timeout": 7, "Environment": {"Variables": {"SHARED": "yes", "COLOUR": "grey"}}}
        },
        "Resources": {
            "EchoFunction": {
                "Type": "AWS::Serverless::Function",
                "Properties": {
                    "CodeUri": "functions/demo/",
                    "Handler": "app.echo",
                    "Environment": {"Variables": {"COLOUR": "blue"}},
                },
            },
            "FailFunction": {
                "Type": "AWS::Serverless::Function",
                "Properties": {"CodeUri": "functions/demo/", "Handler": "app.fail"},
            },
            "FromS3": {
                "Type": "AWS::Serverless::Function",
                "Properties": {"CodeUri": "s3://bucket/key.zip", "Handler": "app.x"},
            },
            "Image": {"Type": "AWS::Serverless::Function", "Properties": {"PackageType": "Image"}},
            "Table": {"Type": "AWS::DynamoDB::Table", "Properties": {}},
        },
    }


def test_template_functions_merge_globals_and_skip_code_that_is_not_a_local_folder(code: Path) -> None:
    found = functions_in(_template(), code)
    assert set(found) == {"EchoFunction", "FailFunction"}
    echo = found["EchoFunction"]
    assert (echo.handler, echo.code_dir, echo.timeout) == ("app.echo", code / "functions" / "demo", 7)
    assert echo.environment == {"SHARED": "yes", "COLOUR": "blue"}


def test_the_repository_template_declares_the_runbook_functions() -> None:
    found = lambda_adapter.template_functions()
    assert {"OrderIntakeFunction", "RouteApprovedOrderFunction", "RestoreEngineFunction"} <= set(found)
    assert all(source.code_dir.is_dir() for source in found.values())


def test_resolution_prefers_a_binding_then_the_tag_then_names(code: Path) -> None:
    found = functions_in(_template(), code)
    registry = HandlerRegistry(found)
    assert registry.resolve("stack-EchoFunction").logical_id == "EchoFunction"
    assert registry.resolve("EchoFunction").logical_id == "EchoFunction"
    assert (
        registry.resolve("anything", {lambda_adapter.LOGICAL_ID_TAG: "FailFunction"}).logical_id
        == "FailFunction"
    )
    registry.bind("anything", found["EchoFunction"])
    assert (
        registry.resolve("anything", {lambda_adapter.LOGICAL_ID_TAG: "FailFunction"}).logical_id
        == "EchoFunction"
    )
    with pytest.raises(HandlerNotFoundError):
        registry.resolve("unknown")


def test_each_function_gets_its_own_module_instance(code: Path) -> None:
    registry = HandlerRegistry(functions_in(_template(), code))
    source = registry.sources["EchoFunction"]
    first, second = registry.handler("one", source), registry.handler("two", source)
    assert first is not second
    assert registry.handler("one", source) is first


def _context(name: str = "fn") -> LambdaContext:
    return LambdaContext(function_name=name, memory_limit_in_mb=128, invoked_function_arn="arn", timeout_s=3)


def test_a_handler_sees_its_environment_and_an_error_becomes_a_function_error(code: Path) -> None:
    registry = HandlerRegistry(functions_in(_template(), code))
    echo = registry.handler("echo", registry.sources["EchoFunction"])
    payload, errored, logs = run_handler(echo, '{"a": 1}', {"COLOUR": "red"}, _context("echo"))
    assert (json.loads(payload), errored) == ({"event": {"a": 1}, "colour": "red", "function": "echo"}, False)
    assert logs.startswith("START RequestId:")
    fail = registry.handler("fail", registry.sources["FailFunction"])
    payload, errored, logs = run_handler(fail, "{}", {}, _context())
    assert errored
    assert json.loads(payload)["errorType"] == "KeyError"
    assert "KeyError" in logs


def test_environments_of_concurrent_invocations_do_not_mix() -> None:
    environ = lambda_adapter.thread_local_environ()
    seen: dict[str, str | None] = {}
    barrier = threading.Barrier(2)

    def invoke(colour: str) -> None:
        with environ.overlaid({"COLOUR": colour}):
            barrier.wait()
            seen[colour] = os.environ.get("COLOUR")
            barrier.wait()

    threads = [threading.Thread(target=invoke, args=(c,)) for c in ("red", "blue")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert seen == {"red": "red", "blue": "blue"}
    assert "COLOUR" not in os.environ or os.environ["COLOUR"] not in ("red", "blue")


def test_deleting_inside_an_overlay_hides_the_variable_only_there() -> None:
    environ = lambda_adapter.thread_local_environ()
    os.environ["MERIDIAN_ADAPTER_PROBE"] = "outer"
    try:
        with environ.overlaid({}):
            del os.environ["MERIDIAN_ADAPTER_PROBE"]
            assert "MERIDIAN_ADAPTER_PROBE" not in os.environ
        assert os.environ["MERIDIAN_ADAPTER_PROBE"] == "outer"
    finally:
        del os.environ["MERIDIAN_ADAPTER_PROBE"]


@pytest.fixture
def installed(code: Path) -> Iterator[HandlerRegistry]:
    registry = HandlerRegistry(functions_in(_template(), code))
    lambda_adapter.install(registry)
    try:
        yield registry
    finally:
        lambda_adapter.uninstall()


def test_moto_invokes_the_real_handler_with_the_function_environment(installed: HandlerRegistry) -> None:
    with mock_aws():
        client: Any = boto3.client("lambda", region_name="eu-west-1")
        role = lambda_adapter.ensure_lambda_role(boto3.client("iam", region_name="eu-west-1"))
        sources = installed.sources
        lambda_adapter.create_functions(
            client, role, {"echo-fn": (sources["EchoFunction"], {"COLOUR": "green"})}
        )
        answer = client.invoke(FunctionName="echo-fn", Payload=json.dumps({"ping": True}))
        assert "FunctionError" not in answer
        assert json.loads(answer["Payload"].read()) == {
            "event": {"ping": True},
            "colour": "green",
            "function": "echo-fn",
        }


def test_a_function_unknown_to_the_template_fails_as_a_function_error(installed: HandlerRegistry) -> None:
    with mock_aws():
        client: Any = boto3.client("lambda", region_name="eu-west-1")
        role = lambda_adapter.ensure_lambda_role(boto3.client("iam", region_name="eu-west-1"))
        stranger = FunctionSource("Stranger", "app.echo", installed.sources["EchoFunction"].code_dir)
        lambda_adapter.create_functions(client, role, {"not-in-template": (stranger, {})})
        answer = client.invoke(FunctionName="not-in-template", Payload=b"{}")
        assert answer["FunctionError"] == "Handled"
        assert json.loads(answer["Payload"].read())["errorType"] == "HandlerNotFoundError"


IMPORT_TIME = """
import os
import threading
import time

SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME", "service_undefined")  # as Powertools' Logger() reads it
inside = []
most = [0]
lock = threading.Lock()

def service(event, context):
    return SERVICE

def slow(event, context):
    with lock:
        inside.append(1)
        most[0] = max(most[0], len(inside))
    time.sleep(0.05)
    with lock:
        inside.pop()
    return most[0]
"""


def test_a_handler_is_imported_under_its_functions_environment(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(IMPORT_TIME)
    source = FunctionSource("Surveil", "app.service", tmp_path)
    registry = HandlerRegistry()
    handler = registry.handler("surveil-fn", source, {"POWERTOOLS_SERVICE_NAME": "surveillance"})
    assert handler({}, None) == "surveillance"  # not "service_undefined": set before the import


def test_a_function_runs_one_invocation_at_a_time(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(IMPORT_TIME)
    registry = HandlerRegistry()
    handler = registry.handler("slow-fn", FunctionSource("Slow", "app.slow", tmp_path))
    seen: list[Any] = []

    def invoke() -> None:
        with registry.container("slow-fn"):
            seen.append(handler({}, None))

    threads = [threading.Thread(target=invoke) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert max(seen) == 1  # never two invocations of one function in flight (one container)


def test_the_delivery_process_runs_a_function_with_its_environment(tmp_path: Path) -> None:
    from meridian_local.delivery.service import Container  # noqa: PLC0415 - the delivery process's own module

    (tmp_path / "app.py").write_text(IMPORT_TIME)
    lines: list[str] = []
    spec = {
        "logical_id": "Surveil",
        "handler": "app.service",
        "code_dir": str(tmp_path),
        "environment": {"POWERTOOLS_SERVICE_NAME": "surveillance"},
    }
    container = Container("surveil-delivery", spec, "http://127.0.0.1:9", lines.append)
    assert container({"Records": []}) == "surveillance"
    assert lines == []
