"""The ``meridian`` command against the local API Gateway and the real handler, over HTTP."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from orders_api.services import Services

from meridian_client import MeridianClient
from meridian_client.cli import EXIT_REFUSED, EXIT_USAGE, main
from tests.unit.orders_api.harness import (
    ACCOUNT_A,
    COMPLIANCE,
    OPERATOR,
    RISK,
    TRADER_A,
    TRADER_B,
    await_approval,
    key_for,
    secret_for,
)

ClientFor = Callable[[str], MeridianClient]
SUBMIT = ["orders", "submit", "--symbol", "AAPL"]


def run(client: MeridianClient, *argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), lambda *_: client, out, err)
    return code, out.getvalue(), err.getvalue()


def ok(client: MeridianClient, *argv: str) -> str:
    code, out, err = run(client, *argv)
    assert code == 0, err
    return out


def as_json(client: MeridianClient, *argv: str) -> Any:
    return json.loads(ok(client, "--output", "json", *argv))


def test_submit_and_list_print_tables_or_the_apis_json(client_for: ClientFor) -> None:
    alice = client_for(TRADER_A)
    table = ok(alice, *SUBMIT, "--side", "buy", "--qty", "10", "--price", "190")
    assert "status" in table
    assert "NEW" in table
    assert "190.00" in table
    order = as_json(alice, *SUBMIT, "--side", "buy", "--qty", "5", "--price", "189.50")
    assert (order["status"], order["price"], order["cancel_reason"]) == ("NEW", "189.50", None)
    listing = ok(alice, "orders", "list")
    header = next(line for line in listing.splitlines() if line.strip())
    assert header.split()[:3] == ["ORDER_ID", "SYMBOL", "SIDE"]
    assert next(o["order_id"] for o in as_json(alice, "orders", "list")["orders"]) == order["order_id"]
    shown = as_json(alice, "orders", "show", order["order_id"])
    assert shown["order_id"] == order["order_id"]


@pytest.mark.parametrize(
    "bad",
    [
        [*SUBMIT, "--side", "buy", "--qty", "ten", "--price", "1"],
        [*SUBMIT, "--side", "buy", "--qty", "1"],  # a limit order needs a price
        [*SUBMIT, "--side", "hold", "--qty", "1", "--price", "1"],
        [*SUBMIT, "--side", "buy", "--qty", "1", "--price", "1,5"],
        [*SUBMIT, "--side", "buy", "--qty", "1", "--type", "market", "--price", "1"],
        [*SUBMIT, "--side", "buy", "--qty", "1", "--type", "stop"],  # no stop price
        [*SUBMIT, "--side", "buy", "--qty", "1", "--price", "1", "--stp", "sometimes"],
        ["orders", "replace", "ord_x"],
        ["orders", "list", "--limit", "0"],
        ["nonsense"],
    ],
)
def test_bad_input_exits_2_before_any_call(client_for: ClientFor, bad: list[str]) -> None:
    alice = client_for(TRADER_A)
    code, _, err = run(alice, *bad)
    assert code == EXIT_USAGE, err
    assert "Traceback" not in err


def test_a_refusal_prints_the_code_and_each_field_it_names(client_for: ClientFor) -> None:
    alice = client_for(TRADER_A)
    code, _, err = run(alice, *SUBMIT, "--side", "buy", "--qty", "10", "--price", "190.005")
    assert code == EXIT_REFUSED
    lines = err.splitlines()
    assert lines[0].startswith("refused: 422 TICK_SIZE: ")
    assert lines[1].strip().startswith("body.price:")
    code, _, err = run(alice, "--output", "json", "orders", "cancel", "ord_missing")
    assert code == EXIT_REFUSED
    assert json.loads(err.split("\n", 1)[1])["error"] == "NOT_FOUND"  # the body, after the line


def test_post_only_stp_and_stop_options_reach_the_api(client_for: ClientFor) -> None:
    alice = client_for(TRADER_A)
    resting = as_json(alice, *SUBMIT, "--side", "sell", "--qty", "5", "--price", "190.00")
    code, _, err = run(alice, *SUBMIT, "--side", "buy", "--qty", "5", "--price", "190.00", "--post-only")
    assert (code, err.split(":")[1].split()[-1]) == (EXIT_REFUSED, "POST_ONLY_WOULD_CROSS")
    ok(alice, *SUBMIT, "--side", "buy", "--qty", "5", "--price", "190.00", "--stp", "cancel_oldest")
    gone = as_json(alice, "orders", "show", resting["order_id"])
    assert (gone["status"], gone["cancel_reason"]) == ("CANCELLED", "SELF_TRADE")
    stop = as_json(alice, *SUBMIT, "--side", "buy", "--qty", "2", "--type", "stop", "--stop-price", "195.00")
    assert (stop["type"], stop["status"], stop["stop_price"]) == ("STOP", "PENDING_TRIGGER", "195.00")


def test_paging_by_token_or_all(client_for: ClientFor) -> None:
    alice = client_for(TRADER_A)
    for price in ("189.00", "189.10", "189.20"):
        ok(alice, *SUBMIT, "--side", "buy", "--qty", "1", "--price", price)
    first = ok(alice, "orders", "list", "--limit", "2")
    token = first.strip().splitlines()[-1].split("--next-token ")[1].split()[0]
    rest = as_json(alice, "orders", "list", "--limit", "2", "--next-token", token)
    assert len(rest["orders"]) == 1
    assert rest["next_token"] is None
    every = as_json(alice, "orders", "list", "--limit", "1", "--all")
    assert [o["price"] for o in every["orders"]] == ["189.20", "189.10", "189.00"]


def test_officers_halt_resume_decide_and_read_other_accounts(
    client_for: ClientFor, svc: Services, clients: dict[str, Any]
) -> None:
    alice, otto = client_for(TRADER_A), client_for(OPERATOR)
    assert as_json(otto, "halt", "--symbol", "AAPL", "--reason", "news")["halted"] is True
    code, _, err = run(alice, *SUBMIT, "--side", "buy", "--qty", "1", "--price", "190.00")
    assert (code, "TRADING_HALTED" in err) == (EXIT_REFUSED, True)
    assert as_json(otto, "resume", "--symbol", "AAPL")["halted"] is False
    held = as_json(alice, *SUBMIT, "--side", "buy", "--qty", "6000", "--price", "190.00")
    assert held["status"] == "PENDING_APPROVAL"
    await_approval(svc, clients["dynamodb"], held["order_id"])
    decided = as_json(client_for(COMPLIANCE), "orders", "reject", held["order_id"], "--comment", "too big")
    assert (decided["status"], decided["approval"]["decision"]) == ("REJECTED", "REJECT")
    theirs = as_json(client_for(RISK), "orders", "list", "--account", ACCOUNT_A)["orders"]
    assert {o["account"] for o in theirs} == {ACCOUNT_A}
    code, _, err = run(client_for(TRADER_B), "orders", "list", "--account", ACCOUNT_A)
    assert code == EXIT_REFUSED


def _state(tmp_path: Path, url: str, users: Sequence[tuple[str, str]]) -> Path:
    document = {
        "users": {name: {"access_key": key_for(p), "secret": secret_for(key_for(p))} for name, p in users}
    }
    (tmp_path / "credentials.json").write_text(json.dumps(document))
    (tmp_path / "endpoints.json").write_text(json.dumps({"api": url}))
    return tmp_path


def test_user_signs_as_a_local_platform_user_at_its_endpoint(local_api: str, tmp_path: Path) -> None:
    state = _state(tmp_path, local_api, [("alice", TRADER_A), ("otto", OPERATOR)])
    out, err = io.StringIO(), io.StringIO()
    argv = ["--user", "alice", "--state-dir", str(state), "-o", "json", *SUBMIT, "--side", "buy"]
    assert main([*argv, "--qty", "1", "--price", "190.00"], out=out, err=err) == 0, err.getvalue()
    assert json.loads(out.getvalue())["account"] == ACCOUNT_A
    err = io.StringIO()
    assert main(["--user", "mallory", "--state-dir", str(state), "health"], out=io.StringIO(), err=err) == 2
    assert "no local user 'mallory'" in err.getvalue()
    assert "alice, otto" in err.getvalue()
    err = io.StringIO()
    assert main(["--user", "alice", "--state-dir", str(tmp_path / "none"), "health"], err=err) == 2
    assert "make run" in err.getvalue()


def test_version_is_the_packages(client_for: ClientFor) -> None:
    code, out, _ = run(client_for(TRADER_A), "--version")
    assert (code, out.strip()) == (0, "meridian, version 0.1.0")
