"""The client as trading clients get it: a package with a ``meridian`` command."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

from botocore.credentials import Credentials
from packaging.requirements import Requirement

from meridian_client import MeridianClient
from meridian_client.cli import EXIT_UNREACHABLE, main

CLIENTS = Path(__file__).resolve().parents[3] / "clients"


def test_the_meridian_command_is_installed_and_answers_help() -> None:
    command = Path(sys.executable).parent / "meridian"  # make setup installs the package editable
    done = subprocess.run([str(command), "--help"], capture_output=True, text=True, check=False, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Usage: meridian ")
    for subcommand in ("orders", "positions", "trades", "marketdata", "halt", "resume"):
        assert subcommand in done.stdout


def test_bad_input_exits_2_without_calling_the_api() -> None:
    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "meridian"),
            "orders",
            "submit",
            "--symbol",
            "AAPL",
            "--side",
            "hold",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 2
    assert "Invalid value for '--side'" in done.stderr


def test_an_api_that_does_not_answer_is_reported_in_one_line_with_exit_3() -> None:
    err = io.StringIO()
    code = main(
        ["--url", "http://127.0.0.1:9", "--region", "us-east-1", "positions"],  # port 9: nobody listens
        client_factory=lambda identity, region: MeridianClient(
            identity.url, Credentials("key", "secret"), region
        ),
        out=io.StringIO(),
        err=err,
    )
    assert code == EXIT_UNREACHABLE
    assert err.getvalue().startswith("error: no answer from the Meridian API at http://127.0.0.1:9")
    assert "Traceback" not in err.getvalue()


def test_the_wheel_carries_the_library_the_command_and_its_dependencies(tmp_path: Path) -> None:
    source = tmp_path / "clients"  # setuptools writes build/ and egg-info next to the sources
    shutil.copytree(CLIENTS, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--wheel-dir",
            str(tmp_path / "dist"),
            str(source),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = (tmp_path / "dist").glob("meridian_client-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        modules = ("cli", "cli_orders", "cli_reads", "cli_stream", "stream", "api", "auth", "models", "base",
                   "output", "profiles")  # fmt: skip
        assert {f"meridian_client/{m}.py" for m in modules} <= set(names)
        info = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
        assert "meridian = meridian_client.cli:main" in archive.read(info).decode()
        metadata = archive.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    required = {
        line.split(": ", 1)[1] for line in metadata.splitlines() if line.startswith("Requires-Dist: ")
    }
    declared = tomllib.loads((CLIENTS / "pyproject.toml").read_text())["project"]["dependencies"]
    assert {Requirement(r).name for r in required} == {Requirement(r).name for r in declared}
    # What meridian_client imports beyond the standard library, and nothing else, is declared.
    assert {Requirement(r).name for r in declared} == {
        "botocore", "requests", "pydantic", "click", "rich", "websockets"
    }  # fmt: skip


def test_the_sdk_models_are_what_the_api_contract_generates() -> None:
    """``make openapi`` regenerates docs/api/openapi.json and the models from it: both committed."""
    done = subprocess.run(
        [sys.executable, "-m", "tools.sdk_models", "--check"],
        cwd=CLIENTS.parent,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr


def test_every_route_of_the_contract_has_a_client_method() -> None:
    contract = json.loads((CLIENTS.parent / "docs" / "api" / "openapi.json").read_text())
    routes = {(method.upper(), path) for path, ops in contract["paths"].items() for method in ops}
    covered = {
        ("POST", "/orders"): MeridianClient.submit_order,
        ("GET", "/orders"): MeridianClient.list_orders,
        ("GET", "/orders/{order_id}"): MeridianClient.get_order,
        ("GET", "/orders/{order_id}/fills"): MeridianClient.order_fills,
        ("DELETE", "/orders/{order_id}"): MeridianClient.cancel_order,
        ("PATCH", "/orders/{order_id}"): MeridianClient.replace_order,
        ("POST", "/orders/{order_id}/approval"): MeridianClient.decide_approval,
        ("GET", "/positions"): MeridianClient.positions,
        ("GET", "/trades"): MeridianClient.trades,
        ("GET", "/marketdata/{symbol}"): MeridianClient.market_data,
        ("GET", "/health"): MeridianClient.health,
        ("POST", "/admin/halt"): MeridianClient.halt,
        ("POST", "/admin/resume"): MeridianClient.resume,
    }
    assert routes == set(covered)
