"""The client as trading clients get it: a package with a ``meridian`` command."""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

from botocore.credentials import Credentials
from meridian_client import MeridianClient
from meridian_client.cli import EXIT_UNREACHABLE, main
from packaging.requirements import Requirement

CLIENTS = Path(__file__).resolve().parents[3] / "clients"


def test_the_meridian_command_is_installed_and_answers_help() -> None:
    command = Path(sys.executable).parent / "meridian"  # make setup installs the package editable
    done = subprocess.run([str(command), "--help"], capture_output=True, text=True, check=False, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: meridian ")
    for subcommand in ("orders", "positions", "trades", "marketdata"):
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
    assert "invalid choice" in done.stderr or "--side" in done.stderr


def test_an_api_that_does_not_answer_is_reported_in_one_line_with_exit_3() -> None:
    err = io.StringIO()
    code = main(
        ["--url", "http://127.0.0.1:9", "--region", "us-east-1", "positions"],  # port 9: nobody listens
        client_factory=lambda args: MeridianClient(args.url, Credentials("key", "secret"), "us-east-1"),
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
        assert {"meridian_client/cli.py", "meridian_client/api.py", "meridian_client/auth.py",
                "meridian_client/stream.py"} <= set(names)  # fmt: skip
        info = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
        assert "meridian = meridian_client.cli:main" in archive.read(info).decode()
        metadata = archive.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    required = {
        line.split(": ", 1)[1] for line in metadata.splitlines() if line.startswith("Requires-Dist: ")
    }
    declared = tomllib.loads((CLIENTS / "pyproject.toml").read_text())["project"]["dependencies"]
    assert {Requirement(r).name for r in required} == {Requirement(r).name for r in declared}
    # What meridian_client imports beyond the standard library, and nothing else, is declared.
    assert {Requirement(r).name for r in declared} == {"botocore", "requests", "websockets"}
