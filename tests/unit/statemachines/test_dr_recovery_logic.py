"""The failover's recovery report and its reconciliation: the clock from the first failed probe to the
first order, each step from the execution's history, what the primary acknowledged beyond the
restored engine, and the replicated market data against the restored engine."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from runbook_tasks import integrity, market_check, reconcile, timeline

T0 = datetime(2026, 11, 25, 9, 40, 52, tzinfo=UTC)


def _at(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


def _history(*entered: tuple[str, float]) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = [{"timestamp": T0 + timedelta(seconds=9), "type": "ExecutionStarted"}]
    for name, seconds in entered:
        events.append(
            {"timestamp": T0 + timedelta(seconds=seconds), "stateEnteredEventDetails": {"name": name}}
        )
    return events


PAYLOAD = {
    "runbook": "dr-failover",
    "execution_arn": "arn:aws:states:us-west-2:123456789012:execution:meridian-dr-failover-dr:x",
    "execution_started_at": _at(9),
    "clock": {"started_at": _at(0), "started_by": "first failed health probe"},
    "trigger": {"signalled_at": _at(6)},
    "halted_at": _at(9.5),
    "resumed_at": _at(20),
    "first_order": {"accepted_at": _at(21.25), "client_order_id": "c-1"},
}
HISTORY = _history(
    ("Begin", 9.0),
    ("HaltTrading", 9.2),
    ("AnnounceHalt", 9.6),
    ("CheckReplica", 10.0),
    ("RestoreMatchingEngine", 11.0),
    ("PromoteReplica", 13.0),
    ("ActivateStandbyNodes", 15.0),
    ("IsDnsManaged", 17.0),
    ("ValidateIntegrity", 18.0),
    ("WatchFirstOrder", 19.5),
    ("AwaitFirstOrder", 20.1),
    ("ReceiveFirstOrder", 20.2),
    ("ReceiveFirstOrder", 21.3),
)


def test_the_recovery_time_runs_from_the_first_failed_probe_to_the_first_order_accepted() -> None:
    report = timeline.measure(PAYLOAD, HISTORY, "dr", 30)
    assert (report["seconds"], report["within_target"]) == (21.25, True)
    assert report["halt_to_resume_seconds"] == 10.5
    steps = {s["step"]: s["seconds"] for s in report["steps"]}
    assert steps == {
        "detection": 6.0,
        "trigger (unhealthy-for wait, guards)": 3.0,
        "runbook start": 0.2,
        "halt order entry": 0.8,
        "confirm replication": 1.0,
        "restore engine (verified)": 2.0,
        "promote ledger replica": 2.0,
        "activate standby nodes": 2.0,
        "switch traffic": 1.0,
        "validate integrity": 1.5,
        "resume order entry": 0.6,
        "first order accepted": 1.15,
    }
    assert round(sum(steps.values()), 3) == report["seconds"]  # the steps add up to the recovery time


def test_steps_shorter_than_a_millisecond_still_add_up_to_the_rounded_total() -> None:
    starts = [("runbook start", T0), ("halt order entry", T0 + timedelta(microseconds=400))]
    starts.append(("confirm replication", T0 + timedelta(microseconds=800)))
    measured = timeline.steps(starts, T0 + timedelta(microseconds=1200))
    # Durations rounded one by one would give 0 + 0 + 0 against a total of 0.001.
    assert [step.seconds for step in measured] == [0.0, 0.001, 0.0]


def test_over_the_target_is_reported_as_such_and_every_step_is_a_metric() -> None:
    late = {**PAYLOAD, "first_order": {"accepted_at": _at(31.5)}}
    report = timeline.measure(late, HISTORY, "dr", 30)
    assert (report["seconds"], report["within_target"]) == (31.5, False)
    datums = report["metric_data"]
    rto = next(d for d in datums if d["MetricName"] == "RecoveryTimeSeconds")
    assert rto["Value"] == 31.5
    assert {"Name": "Runbook", "Value": "dr-failover"} in rto["Dimensions"]
    assert {"Name": "Environment", "Value": "dr"} in rto["Dimensions"]
    steps = [d for d in datums if d["MetricName"] == "RecoveryStepSeconds"]
    assert len(steps) == len(report["steps"])
    promote = [d for d in steps if {"Name": "Step", "Value": "promote ledger replica"} in d["Dimensions"]]
    assert [d["Value"] for d in promote] == [2.0]


def test_without_an_order_the_recovery_time_is_not_measured_but_the_steps_are() -> None:
    quiet = {**PAYLOAD, "first_order": {"accepted_at": None, "reason": "no order was accepted"}}
    report = timeline.measure(quiet, HISTORY, "dr", 30)
    assert report["seconds"] is None
    assert report["not_measured"] == "no order was accepted"
    assert "RecoveryTimeSeconds" not in {d["MetricName"] for d in report["metric_data"]}
    assert report["steps"]


def test_a_manual_start_clocks_from_the_runbooks_own_start() -> None:
    manual = {**PAYLOAD, "clock": {"started_at": _at(9), "started_by": "runbook start"}, "trigger": None}
    report = timeline.measure(manual, HISTORY, "dr", 30)
    assert report["seconds"] == 12.25
    assert report["steps"][0]["step"] == "runbook start"


# ---- acknowledged orders ---------------------------------------------------------------------------


def _order(client_order_id: str, last_seq: int, status: str = "NEW", symbol: str = "AAPL") -> dict[str, Any]:
    return {
        "client_order_id": client_order_id,
        "order_id": f"o-{client_order_id}",
        "account": "ACC-ALICE",
        "symbol": symbol,
        "status": status,
        "last_seq": last_seq,
    }


def test_orders_beyond_the_restored_engine_or_unanswered_are_listed_with_their_client_order_ids() -> None:
    orders = [
        _order("c1", 10),
        _order("c2", 12, "FILLED"),
        _order("c3", 13),  # acked after the last archived record
        _order("c4", 14, "CANCELLED"),  # cancelled after it: the restored book still holds it
        _order("c5", 0, "UNCONFIRMED"),
        _order("c6", 3, symbol="MSFT"),  # no restored node holds MSFT
    ]
    present, listed = reconcile.orders_to_reconcile(orders, {"AAPL": 12})
    assert present == 2
    assert [o["client_order_id"] for o in listed] == ["c5", "c3", "c4", "c6"]
    assert listed[0]["why"].startswith("sent, never answered")
    assert all(o["account"] == "ACC-ALICE" for o in listed)


RESTORED = {"nodes": [{"seq": 12, "book_checksums": {"AAPL": "00000000000000aa"}}], "book_checksums": {}}


def _validate(accept: bool, **sources: Any) -> integrity.IntegrityReport:
    return integrity.validate(RESTORED, lambda: (7, 14), None, {}, {}, accept, integrity.Sources(**sources))


def _beyond(seq: int) -> list[dict[str, Any]]:
    return [
        {
            "execution_id": "1-9",
            "symbol": "AAPL",
            "node_seq": 14,
            "buy_account": "ACC-A",
            "buy_client_order_id": "c3",
            "sell_account": "ACC-B",
            "sell_client_order_id": "c0",
        }
    ]


def test_a_ledger_ahead_lists_its_trades_and_passes_only_when_data_loss_is_accepted() -> None:
    refused = _validate(False, trades_beyond=_beyond)
    assert not refused.ok
    assert refused.reconcile["trades"][0]["buy_client_order_id"] == "c3"
    assert "c3/c0" in integrity.reconcile_summary(refused)
    accepted = _validate(True, trades_beyond=_beyond)
    assert accepted.ok
    check = next(c for c in accepted.checks if c.name == "ledger_within_engine")
    assert "1 trade(s) listed for reconciliation (accepted)" in check.detail


def test_acknowledged_orders_are_present_or_listed_and_the_runbook_stops_unless_accepted() -> None:
    orders = [_order("c1", 12), _order("c3", 13)]
    refused = _validate(False, orders=orders, trades_beyond=_beyond)
    check = next(c for c in refused.checks if c.name == "acknowledged_orders")
    assert (check.ok, check.detail) == (
        False,
        "1 acknowledged order(s) in the restored engine, 1 listed for reconciliation",
    )
    assert "c3 (ACC-ALICE, NEW)" in integrity.reconcile_summary(refused)
    assert refused.as_dict()["reconcile"]["orders"][0]["client_order_id"] == "c3"
    assert _validate(True, orders=orders, trades_beyond=_beyond).ok
    nothing_lost = integrity.validate(
        RESTORED, lambda: (7, 12), None, {}, {}, False, integrity.Sources(orders=[_order("c1", 12)])
    )
    assert nothing_lost.ok
    assert nothing_lost.reconcile["orders"] == []


def test_ledger_checksums_compare_with_the_old_primary_when_it_answers() -> None:
    here = lambda seq: (7, "ab" * 32)  # noqa: E731
    same = integrity.checksum_check(here, lambda seq: (7, "ab" * 32), [12])
    assert (same.ok, same.skipped) == (True, False)
    assert "trades up to seq 12" in same.detail
    differs = integrity.checksum_check(here, lambda seq: (7, "cd" * 32), [12])
    assert not differs.ok

    def gone(seq: int | None) -> tuple[int, str]:
        raise OSError("no route to host")

    assert integrity.checksum_check(here, gone, [12]).skipped


# ---- market data -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("book_seq", "trade_seq", "accept", "ok"),
    [(12, 11, False, True), (13, 11, False, False), (10, 14, False, False), (13, 11, True, True)],
)
def test_replicated_market_data_may_not_be_ahead_of_the_restored_engine(
    book_seq: int, trade_seq: int, accept: bool, ok: bool
) -> None:
    book = {"node_seq": book_seq, "bids": [["190.00", 10]], "asks": [], "bid_price": "190.00"}
    passed, skipped, detail = market_check.check_symbol(book, trade_seq, 12, accept)
    assert (passed, skipped) == (ok, False)
    assert f"book at seq {book_seq}, newest trade at seq {trade_seq}" in detail
    assert f"book {market_check.book_digest(book)}" in detail


def test_a_symbol_without_replicated_market_data_is_skipped() -> None:
    assert market_check.check_symbol(None, None, 12, False)[:2] == (True, True)
