"""``meridian stream``: the click command against a gateway on loopback, signed as the other
commands sign (a local platform user, or the AWS environment)."""

from __future__ import annotations

import io
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from meridian.protocol import Fill
from meridian_client.cli import EXIT_REFUSED, EXIT_UNREACHABLE, EXIT_USAGE, main
from meridian_hotpath.marketdata import book_record, trade_record
from tests.gateway_harness import CREDENTIALS, GatewayThread, key_of
from tests.unit.gateway.conftest import StartGateway

T0 = 1_772_461_800_000_000_000


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(autouse=True)
def no_ambient_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                 "MERIDIAN_GATEWAY_URL", "MERIDIAN_API_URL", "MERIDIAN_USER", "MERIDIAN_OUTPUT"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("MERIDIAN_STATE_DIR", str(tmp_path / "state"))


def as_environment(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key_of(name))
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", CREDENTIALS[key_of(name)].secret)


def local_platform_state(directory: Path, gateway: GatewayThread) -> None:
    """What ``make run`` writes: each local user's key, and the endpoints it bound (the gateway's)."""
    directory.mkdir(parents=True, exist_ok=True)
    users = {"alice": {"access_key": key_of("alice"), "secret": CREDENTIALS[key_of("alice")].secret}}
    (directory / "credentials.json").write_text(json.dumps({"users": users}))
    (directory / "endpoints.json").write_text(json.dumps({"gateway": gateway.url}))


def test_a_local_user_streams_the_book_from_the_running_platforms_gateway(
    start_gateway: StartGateway, tmp_path: Path
) -> None:
    gateway = start_gateway(heartbeat_s=3600)
    gateway.feed([book_record("AAPL", 7, 1, ([(19000, 5), (18990, 2)], [(19010, 3)]), 10, T0)])
    local_platform_state(tmp_path / "state", gateway)
    code, out, err = run("--user", "alice", "stream", "book", "aapl", "--count", "3")
    assert code == 0, err
    welcome, subscribed, snapshot = out.splitlines()
    assert welcome.startswith("welcome")
    assert '"account":"ACC-ALICE"' in welcome
    assert subscribed.startswith("subscribed")
    assert '"book.AAPL"' in subscribed
    assert snapshot == "book_snapshot AAPL seq 1: bid 5 @ 190.00 | ask 3 @ 190.10 (2x1 levels)"


@pytest.fixture
def trading(start_gateway: StartGateway) -> Iterator[GatewayThread]:
    """A gateway whose MSFT trades are fed again and again (it sends each once) until the test ends;
    no heartbeat within the test."""
    gateway = start_gateway(heartbeat_s=3600)
    fills = [
        Fill(n, 10 + n, 100 + n, "MSFT", 42000 + n, 5, 1, 1, 2, "a", "b", "x", "y", 0, 0) for n in range(3)
    ]
    done = threading.Event()

    def feed() -> None:
        while not done.wait(0.05):
            gateway.feed([trade_record(f, T0) for f in fills])

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    yield gateway
    done.set()
    feeder.join(5)


def test_json_output_prints_each_message_as_the_gateway_sent_it(
    trading: GatewayThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    as_environment(monkeypatch, "bob")
    code, out, err = run(
        "-o", "json", "stream", "trades", "MSFT", "--gateway-url", trading.url, "--count", "5"
    )
    assert code == 0, err
    messages = [json.loads(line) for line in out.splitlines()]
    assert [m["type"] for m in messages[:2]] == ["welcome", "subscribed"]
    assert [(m["type"], m["trade_id"], m["price"]) for m in messages[2:]] == [
        ("trade", 100, "420.00"), ("trade", 101, "420.01"), ("trade", 102, "420.02")
    ]  # fmt: skip


def test_seconds_ends_a_quiet_stream(start_gateway: StartGateway, monkeypatch: pytest.MonkeyPatch) -> None:
    gateway = start_gateway(heartbeat_s=3600)
    as_environment(monkeypatch, "alice")
    code, out, err = run("stream", "orders", "--gateway-url", gateway.url, "--seconds", "0.5")
    assert code == 0, err
    assert [line.split()[0] for line in out.splitlines()] == ["welcome", "subscribed"]


def test_a_refused_connect_is_exit_1_with_the_gateways_reason(
    start_gateway: StartGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    gateway = start_gateway(heartbeat_s=3600)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key_of("alice"))
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-alices-secret")
    code, out, err = run("stream", "orders", "--gateway-url", gateway.url, "--count", "1")
    assert (code, out) == (EXIT_REFUSED, "")
    assert err.startswith("refused: 401 ")
    assert json.loads(err.removeprefix("refused: 401 "))["code"]


def test_no_gateway_is_exit_3(monkeypatch: pytest.MonkeyPatch) -> None:
    as_environment(monkeypatch, "alice")
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    code, _, err = run("stream", "orders", "--gateway-url", f"ws://127.0.0.1:{port}/stream")
    assert code == EXIT_UNREACHABLE
    assert f"no stream from ws://127.0.0.1:{port}/stream" in err


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["stream", "orders", "AAPL"], "orders takes none"),
        (["stream", "book"], "need a symbol"),
        (["stream", "quotes", "AAPL"], "'quotes' is not one of"),
        (["stream", "trades", "AAPL$"], "not a symbol"),
        (["stream", "trades", "AAPL", "--count", "0"], "--count"),
        (["stream", "trades", "AAPL"], "no AWS credentials found"),
    ],
)
def test_bad_input_is_exit_2_before_any_connect(argv: list[str], says: str) -> None:
    code, out, err = run(*argv, "--gateway-url", "ws://127.0.0.1:9/stream")
    assert (code, out) == (EXIT_USAGE, "")
    assert says in err
