"""The order-flow steps' logic: intake, risk, the approval protocol, and what a node's answer means."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from order_flow import intake, risk, routing
from order_flow.models import FlowOrder

from meridian.approvals import approval
from meridian.approvals.approval import (
    ApprovalAlreadyDecidedError,
    ApprovalAlreadyRequestedError,
    ApprovalExpiredError,
    ApprovalNotFoundError,
    SelfApprovalError,
)
from meridian.approvals.models import PENDING, PendingApproval
from meridian.approvals.store import DynamoApprovalStore
from meridian.domain import CancelReason, OrderStatus, RejectReason, Side
from meridian.events import OrderAccepted, parse_detail
from meridian.executions import order_id_for
from meridian.orders.answers import resting_changes
from meridian.orders.record import OrderRecord, SideName
from meridian.protocol import Ack, CancelAck, Fill, Reject
from meridian.resting_orders import CONDITION, transact_items

AT = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
TOKEN = "AQCEAAAAKgAAAAMAAAAAAAAAAf-approval-token-of-exec-1"


def _order(**changes: Any) -> FlowOrder:
    values: dict[str, Any] = {
        "order_id": order_id_for("fund1", "big-1"),
        "client_order_id": "big-1",
        "account": "fund1",
        "symbol": "AAPL",
        "side": "BUY",
        "quantity": 100,
        "price_ticks": 19000,
        "submitted_by": "trader-1",
    }
    values.update(changes)
    return FlowOrder.model_validate(values)


def _stored(account: str, client_order_id: str, side: SideName, price_ticks: int) -> OrderRecord:
    """A resting order of another request, as the Orders table holds it."""
    return OrderRecord(
        order_id=order_id_for(account, client_order_id),
        account=account,
        client_order_id=client_order_id,
        symbol="AAPL",
        side=side,
        type="LIMIT",
        time_in_force="GTC",
        quantity=100,
        price_ticks=price_ticks,
        status="NEW",
        created_at=AT,
        updated_at=AT,
    )


# ---- intake ----------------------------------------------------------------------------------------


class Orders:
    def __init__(self, *orders: FlowOrder) -> None:
        self.items = {o.order_id: o.model_dump() for o in orders}

    def get(self, order_id: str) -> dict[str, Any] | None:
        return self.items.get(order_id)


def test_the_order_id_comes_from_a_direct_start_or_the_pending_approval_event() -> None:
    assert intake.order_id_of({"order_id": "ord_1"}) == "ord_1"
    assert intake.order_id_of({"detail": {"event_id": "ord_2:pending_approval"}}) == "ord_2"
    assert intake.order_id_of({"detail": {"order_id": "ord_3", "event_id": "x"}}) == "ord_3"
    with pytest.raises(intake.OrderInvalidError):
        intake.order_id_of({"detail": {"event_id": "ord_2:accepted"}})


def test_intake_answers_the_stored_order_and_whether_it_can_be_routed() -> None:
    good, off_grid = _order(), _order(order_id="ord_x", symbol="ESZ6", price_ticks=600010)
    orders = Orders(good, off_grid)
    taken = intake.intake({"order_id": good.order_id}, orders, "exposure")
    assert taken["valid"]
    # What the order API reserved when it held the order (100 AAPL at 190.00), given back if rejected.
    release = taken["release"]["Update"]
    assert release["ExpressionAttributeNames"] == {
        "#a0": "open_orders",
        "#a1": "open_notional",
        "#a2": "long:AAPL",
    }
    assert [v["N"] for v in release["ExpressionAttributeValues"].values()] == ["-1", "-19000.00", "-100"]
    refused = intake.intake({"order_id": "ord_x"}, orders, "exposure")
    assert (refused["valid"], refused["reason"]) == (False, "TICK_SIZE")
    with pytest.raises(intake.OrderNotFoundError):
        intake.intake({"order_id": "ord_missing"}, orders, "exposure")
    orders.items[good.order_id]["status"] = "CANCELLED"
    with pytest.raises(intake.OrderNotPendingError):
        intake.intake({"order_id": good.order_id}, orders, "exposure")


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"symbol": "NOPE"}, "UNKNOWN_SYMBOL"),
        ({"symbol": "BTCUSD", "quantity": 15, "price_ticks": 9500000}, "LOT_SIZE"),
        ({"price_ticks": None}, "INVALID_PRICE"),
        ({"price_ticks": 25000}, "PRICE_BAND"),
    ],
)
def test_instrument_rules(changes: dict[str, Any], reason: str) -> None:
    with pytest.raises(intake.OrderInvalidError) as refused:
        intake.check_instrument_rules(_order(**changes))
    assert refused.value.reason == reason


# ---- risk ------------------------------------------------------------------------------------------


def test_risk_states_why_the_order_waits_and_refuses_what_no_approval_lifts() -> None:
    big = risk.assess(_order(quantity=10_000), Decimal(1_000_000), Decimal(50_000_000), {"AAPL"}, "held")
    assert big.notional == Decimal("1900000.00")
    assert [r.split(":")[0] for r in big.reasons] == [
        "LARGE_NOTIONAL",
        "RESTRICTED_SYMBOL",
        "HELD_BY_ORDER_API",
    ]
    small = risk.assess(_order(), Decimal(1_000_000), Decimal(50_000_000))
    assert small.reasons == ["HELD_BY_ORDER_API: approval required"]
    market = risk.assess(_order(type="MARKET", price_ticks=None), Decimal(1_000_000), Decimal(50_000_000))
    assert market.notional == Decimal("19000.00")
    with pytest.raises(risk.RiskLimitBreachedError) as breached:
        risk.assess(_order(quantity=300_000), Decimal(1_000_000), Decimal(50_000_000))
    assert breached.value.reason == "MAX_NOTIONAL"
    assert risk.held_for({"detail": {"reason": "large"}}) == "large"
    assert risk.held_for({"order_id": "x"}) == ""


# ---- routing ---------------------------------------------------------------------------------------


def _fill(seq: int, trade_id: int, quantity: int, buy_leaves: int, sell_leaves: int) -> Fill:
    return Fill(
        0,
        seq,
        trade_id,
        "AAPL",
        19000,
        quantity,
        int(Side.BUY),
        7,
        3,
        "fund1",
        "mm1",
        "big-1",
        "rest-1",
        buy_leaves,
        sell_leaves,
    )


def test_an_answer_with_fills_becomes_the_record_the_counterparties_and_the_events() -> None:
    ack = Ack(0, 10, 7, "big-1", "fund1", "AAPL", int(Side.BUY), int(OrderStatus.NEW), 100, 100, 0, 19000)
    messages = [ack, _fill(10, 4, 60, 40, 0), _fill(10, 5, 40, 0, 20)]
    result = routing.interpret_answer(_order(), "10.0.0.1:9001", messages, AT)
    record = result.record
    assert (record.status, record.filled_quantity, record.leaves_quantity, record.is_open) == (
        "FILLED",
        100,
        0,
        False,
    )
    assert [(c.status, c.leaves_before, c.leaves_after) for c in result.others] == [
        ("FILLED", 60, 0),
        ("PARTIALLY_FILLED", 60, 20),
    ]
    assert [c.order_id for c in result.others] == [order_id_for("mm1", "rest-1")] * 2
    # The order's lifecycle only: trade.executed.v1 comes from the node's drop copy.
    events = [parse_detail(e.detail_type, e.model_dump(mode="json")) for e in result.events]
    assert [type(e) for e in events] == [OrderAccepted]
    assert result.trades == 2
    order_write, exposure_write = routing.record_items(_order(), record, "orders", "exposure")
    assert order_write["Update"]["ConditionExpression"] == "#s = :pending"
    # Filled: the open order and its notional are given back; 100 held long, as position now.
    names = exposure_write["Update"]["ExpressionAttributeNames"]
    values = exposure_write["Update"]["ExpressionAttributeValues"]
    assert {names[n]: values[v]["N"] for n, v in zip(names, values, strict=True)} == {
        "open_orders": "-1",
        "open_notional": "-19000.00",
        "short:AAPL": "-100",
    }


def test_an_open_order_keeps_its_reservation_and_a_remainder_cancel_gives_it_back() -> None:
    ack = Ack(0, 3, 7, "big-1", "fund1", "AAPL", int(Side.BUY), int(OrderStatus.NEW), 100, 100, 0, 19000)
    open_result = routing.interpret_answer(_order(), "n:1", [ack], AT)
    assert open_result.record.is_open
    assert len(routing.record_items(_order(), open_result.record, "orders", "exposure")) == 1
    cancel = CancelAck(0, 3, 7, "big-1", "fund1", "AAPL", int(CancelReason.IOC_REMAINDER), 100)
    closed = routing.interpret_answer(_order(time_in_force="IOC"), "n:1", [ack, cancel], AT)
    assert (closed.record.status, closed.record.is_open) == ("CANCELLED", False)
    released = closed.record.exposure(intake.INSTRUMENTS["AAPL"]) - intake.held_exposure(_order())
    assert (released.open_orders, released.notional, dict(released.long)) == (
        -1,
        Decimal("-19000.00"),
        {"AAPL": -100},
    )


def test_a_node_reject_is_an_answer_of_its_own() -> None:
    reject = Reject(0, 9, 0, "big-1", "AAPL", int(RejectReason.TRADING_HALTED))
    with pytest.raises(routing.NodeRejectedError) as refused:
        routing.interpret_answer(_order(), "n:1", [reject], AT)
    answer = routing.rejected_answer(refused.value)
    assert (answer["rejected"], answer["reason"], answer["event_batches"]) == (True, "TRADING_HALTED", [])


def test_counterparty_writes_are_the_order_apis_with_their_exposure() -> None:
    ack = Ack(0, 10, 7, "big-1", "fund1", "AAPL", int(Side.BUY), int(OrderStatus.NEW), 100, 100, 0, 19000)
    result = routing.interpret_answer(_order(), "n:1", [ack, _fill(10, 4, 60, 40, 0)], AT)
    (change,) = resting_changes(result, {}, intake.INSTRUMENTS)
    order_write, exposure_write = transact_items("orders", "exposure", change)
    assert order_write["Update"]["ConditionExpression"] == CONDITION  # the order API's own condition
    assert order_write["Update"]["ExpressionAttributeValues"][":before"] == {"N": "60"}
    assert exposure_write["Update"]["Key"] == {"account": {"S": "mm1"}}


def test_a_self_trade_cancel_of_a_resting_order_is_completed_from_the_stored_order() -> None:
    ack = Ack(0, 3, 7, "big-1", "fund1", "AAPL", int(Side.BUY), int(OrderStatus.NEW), 100, 100, 0, 19000)
    stp = CancelAck(0, 4, 2, "rest-9", "fund1", "AAPL", int(CancelReason.SELF_TRADE), 30)
    result = routing.interpret_answer(_order(), "n:1", [ack, stp], AT)
    resting_id = order_id_for("fund1", "rest-9")
    stored = {resting_id: _stored("fund1", "rest-9", "SELL", 18990)}
    (change,) = resting_changes(result, stored, intake.INSTRUMENTS)
    assert (change.cancelled, change.side, change.price, change.leaves_before) == (
        True,
        "SELL",
        Decimal("189.90"),
        30,
    )
    assert resting_changes(result, {}, intake.INSTRUMENTS) == []  # not an order of the API


def test_a_stop_order_firing_in_the_answer_is_another_order_not_this_one() -> None:
    """The node answers a trade that triggers a waiting stop with the stop's Ack and fills in the
    same answer: the order flow's own order keeps its figures; the stop is recorded apart, valued
    at its stored price, its trigger and its fill in one change."""
    ack = Ack(0, 10, 7, "big-1", "fund1", "AAPL", int(Side.BUY), int(OrderStatus.NEW), 100, 100, 0, 19000)
    own_fill = _fill(10, 4, 60, 40, 0)  # fund1 buys 60 of mm1's resting sell (order 3)
    fired = Ack(0, 10, 8, "stop-1", "mm2", "AAPL", int(Side.BUY), int(OrderStatus.NEW), 10, 10, 0, 19100)
    stop_fill = Fill(0, 10, 6, "AAPL", 19050, 10, int(Side.BUY), 8, 9, "mm2", "mm3", "stop-1", "rest-2", 0, 5)
    result = routing.interpret_answer(_order(), "n:1", [ack, own_fill, fired, stop_fill], AT)
    assert (result.record.node_order_id, result.record.filled_quantity, result.record.leaves_quantity) == (
        7,
        60,
        40,
    )
    assert len(result.events) == 1  # one order.accepted.v1, the flow's own order's
    stop_id = order_id_for("mm2", "stop-1")
    stored = {stop_id: _stored("mm2", "stop-1", "BUY", 19100)}
    changes = {c.order_id: c for c in resting_changes(result, stored, intake.INSTRUMENTS)}
    stop = changes[stop_id]
    assert (stop.status, stop.filled, stop.price, stop.notional_ticks) == (
        "FILLED",
        10,
        Decimal("191.00"),
        190500,
    )
    assert set(changes) == {stop_id, order_id_for("mm1", "rest-1"), order_id_for("mm3", "rest-2")}


# ---- approval --------------------------------------------------------------------------------------


class Store:
    def __init__(self) -> None:
        self.items: dict[str, PendingApproval] = {}

    def create_pending(self, pending: PendingApproval, summary: dict[str, Any]) -> bool:
        existing = self.items.get(pending.order_id)
        if existing and existing.execution_id != pending.execution_id:
            return False
        self.items[pending.order_id] = pending
        return True

    def get(self, order_id: str) -> PendingApproval | None:
        return self.items.get(order_id)

    def decide(self, order_id: str, status: str, reviewer: str, comment: str, at: datetime) -> bool:
        item = self.items[order_id]
        if item.status != PENDING and status != "EXPIRED":
            return False
        self.items[order_id] = replace(item, status=status)
        return True


class Notices:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    def publish(self, subject: str, message: str, attributes: dict[str, str]) -> None:
        self.sent.append((subject, message))


class StepFunctions:
    def __init__(self, gone: bool = False) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.gone = gone

    def _call(self, name: str, **kwargs: Any) -> None:
        if self.gone:
            raise ClientError({"Error": {"Code": "TaskTimedOut", "Message": "late"}}, name)
        self.calls.append((name, kwargs))

    def send_task_success(self, **kwargs: Any) -> None:
        self._call("success", **kwargs)

    def send_task_failure(self, **kwargs: Any) -> None:
        self._call("failure", **kwargs)

    def send_task_heartbeat(self, **kwargs: Any) -> None:
        self._call("heartbeat", **kwargs)


def _request(store: Store, notices: Notices, execution: str = "exec-1") -> None:
    request = {
        "order": _order().model_dump(),
        "task_token": TOKEN,
        "execution_id": execution,
        "timeout_seconds": 60,
        "reasons": ["LARGE_NOTIONAL"],
    }
    approval.request_approval(request, store, notices, "https://api.example.com/v1", now=AT)


def test_the_request_records_the_token_and_notifies_without_it() -> None:
    store, notices = Store(), Notices()
    _request(store, notices)
    order_id = _order().order_id
    assert store.items[order_id].task_token == TOKEN
    subject, message = notices.sent[0]
    assert order_id in subject
    # Whoever holds the token (and states:SendTaskSuccess) could approve: it stays in the table.
    assert TOKEN not in subject
    assert TOKEN not in message
    assert TOKEN[:12] not in message
    assert f"https://api.example.com/v1/orders/{order_id}/approval" in message
    _request(store, notices)  # a retry of the same execution's step is fine
    with pytest.raises(ApprovalAlreadyRequestedError):
        _request(store, notices, execution="exec-2")


def test_a_decision_answers_the_waiting_step_exactly_once() -> None:
    store, notices, sfn = Store(), Notices(), StepFunctions()
    _request(store, notices)
    order_id = _order().order_id
    with pytest.raises(SelfApprovalError):
        approval.submit_decision(order_id, "APPROVE", "trader-1", store=store, sfn=sfn)
    outcome = approval.submit_decision(order_id, "APPROVE", "officer", "fine", store=store, sfn=sfn, now=AT)
    assert (outcome.decision, outcome.reviewer) == ("APPROVE", "officer")
    assert sfn.calls[0][0] == "success"
    assert sfn.calls[0][1]["taskToken"] == TOKEN
    with pytest.raises(ApprovalAlreadyDecidedError):
        approval.submit_decision(order_id, "REJECT", "officer", store=store, sfn=sfn)
    with pytest.raises(ApprovalNotFoundError):
        approval.submit_decision("ord_unknown", "APPROVE", "officer", store=store, sfn=sfn)


def test_the_same_person_in_another_role_cannot_decide() -> None:
    store, notices, sfn = Store(), Notices(), StepFunctions()
    trader = "arn:aws:sts::123456789012:assumed-role/meridian-trader-prod/alice"
    order = _order(submitted_by=trader)
    request = {"order": order.model_dump(), "task_token": TOKEN, "execution_id": "e", "timeout_seconds": 60}
    approval.request_approval(request, store, notices, now=AT)
    officer = "arn:aws:sts::123456789012:assumed-role/meridian-compliance-officer-prod/alice"
    with pytest.raises(SelfApprovalError):
        approval.submit_decision(order.order_id, "APPROVE", officer, store=store, sfn=sfn)
    assert sfn.calls == []


def test_a_rejection_fails_the_waiting_step_with_its_reason() -> None:
    store, notices, sfn = Store(), Notices(), StepFunctions()
    _request(store, notices)
    approval.submit_decision(_order().order_id, "REJECT", "officer", "too large", store=store, sfn=sfn)
    name, call = sfn.calls[0]
    assert (name, call["error"]) == ("failure", "ComplianceRejected")
    assert "too large" in call["cause"]


def test_a_decision_after_the_deadline_expires_the_request() -> None:
    store, notices = Store(), Notices()
    _request(store, notices)
    with pytest.raises(ApprovalExpiredError):
        approval.submit_decision(
            _order().order_id, "APPROVE", "officer", store=store, sfn=StepFunctions(gone=True)
        )
    assert store.items[_order().order_id].status == "EXPIRED"
    with pytest.raises(ApprovalExpiredError):
        approval.extend_review(_order().order_id, store=store, sfn=StepFunctions())


def test_a_reviewer_keeps_the_request_alive_with_heartbeats() -> None:
    store, notices, sfn = Store(), Notices(), StepFunctions()
    _request(store, notices)
    approval.extend_review(_order().order_id, store=store, sfn=sfn)
    assert sfn.calls == [("heartbeat", {"taskToken": TOKEN})]


@pytest.fixture
def table() -> Iterator[DynamoApprovalStore]:
    with mock_aws():
        client: Any = boto3.client("dynamodb", region_name="us-east-1")
        client.create_table(
            TableName="approvals",
            KeySchema=[{"AttributeName": "order_id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "order_id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        yield DynamoApprovalStore(client, "approvals")


def test_the_dynamodb_store_decides_once_and_refuses_a_second_execution(table: DynamoApprovalStore) -> None:
    pending = PendingApproval("ord_1", "tok", PENDING, "exec-1", "fund1", "trader-1", AT.isoformat())
    assert table.create_pending(pending, {"symbol": "AAPL"})
    assert table.create_pending(pending, {"symbol": "AAPL"})
    assert not table.create_pending(replace(pending, task_token="tok2", execution_id="exec-2"), {})
    stored = table.get("ord_1")
    assert stored is not None
    assert (stored.task_token, stored.submitted_by) == ("tok", "trader-1")
    assert table.decide("ord_1", "APPROVED", "officer", "ok", AT)
    assert not table.decide("ord_1", "REJECTED", "officer", "no", AT)
    assert table.decide("ord_1", "EXPIRED", "officer", "late", AT)
    assert table.get("missing") is None
