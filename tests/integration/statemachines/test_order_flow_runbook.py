"""The order-flow state machine end to end on moto server, with a live matching node.

Orders are written to the Orders table the way the order API writes them (its own serialiser), the
execution starts from the ``order.pending_approval.v1`` event, and the compliance decision arrives
through ``meridian.approvals.submit_decision``, the function the API's approval route calls.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from meridian.approvals import ApprovalExpiredError, Decision, DynamoApprovalStore, submit_decision
from meridian.client import HotpathClient
from meridian.domain import Side
from meridian.events import parse_eventbridge_event
from meridian.executions import order_id_for
from meridian.orders.items import item_to_record, record_to_item
from meridian.orders.record import OrderRecord
from meridian.protocol import Ack
from meridian_local.cloud.runbook_stack import RunbookStack, build
from tests.integration.statemachines.conftest import Node, tap_bus, tap_topic

pytestmark = pytest.mark.integration
ORDER_FLOW = "OrderFlowStateMachine"


def _stack(moto: Any, node: Node, timeout_seconds: int = 30) -> RunbookStack:
    routes = {"MERIDIAN_ROUTES_PARAMETER": "", "MERIDIAN_ROUTES": node.routes()}
    return build(
        moto,
        parameters={
            "ApprovalTimeoutSeconds": str(timeout_seconds),
            "ApprovalHeartbeatSeconds": str(timeout_seconds),
        },
        environment={"RouteApprovedOrderFunction": routes},
    )


def _record(
    account: str, client_order_id: str, side: str, quantity: int, price: int, status: str
) -> OrderRecord:
    now = datetime.now(UTC)
    return OrderRecord(
        order_id=order_id_for(account, client_order_id),
        account=account,
        client_order_id=client_order_id,
        symbol="AAPL",
        side=side,  # type: ignore[arg-type]
        type="LIMIT",
        time_in_force="GTC",
        quantity=quantity,
        price_ticks=price,
        status=status,  # type: ignore[arg-type]
        created_at=now,
        updated_at=now,
        leaves_quantity=quantity,
        submitted_by=f"trader-{account}",
    )


def _put(stack: RunbookStack, record: OrderRecord) -> None:
    stack.client("dynamodb").put_item(TableName=stack.refs["OrdersTable"], Item=record_to_item(record))


def _exposure(stack: RunbookStack, account: str) -> dict[str, Any]:
    item = (
        stack.client("dynamodb")
        .get_item(TableName=stack.refs["ExposureTable"], Key={"account": {"S": account}}, ConsistentRead=True)
        .get("Item", {})
    )
    numbers = {name: Decimal(value["N"]) for name, value in item.items() if "N" in value}
    return {
        name: int(n) if n == n.to_integral_value() and "notional" not in name else n
        for name, n in numbers.items()
        if n
    }


def _get(stack: RunbookStack, order_id: str) -> OrderRecord:
    item = stack.client("dynamodb").get_item(
        TableName=stack.refs["OrdersTable"], Key={"order_id": {"S": order_id}}
    )
    return item_to_record(item["Item"])


def _held_event(record: OrderRecord) -> dict[str, Any]:
    return {
        "source": "meridian.trading",
        "detail-type": "order.pending_approval.v1",
        "detail": {
            "event_id": f"{record.order_id}:pending_approval",
            "reason": "notional above the large-order threshold",
        },
    }


def _wait_for_pending(stack: RunbookStack, order_id: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    table = stack.refs["OrderApprovalsTable"]
    while time.monotonic() < deadline:
        item = (
            stack.client("dynamodb").get_item(TableName=table, Key={"order_id": {"S": order_id}}).get("Item")
        )
        if item and item["status"]["S"] == "PENDING":
            return
        time.sleep(0.05)
    raise TimeoutError(f"no pending approval for {order_id}")


def _decide(stack: RunbookStack, order_id: str, decision: Decision) -> None:
    store = DynamoApprovalStore(stack.client("dynamodb"), stack.refs["OrderApprovalsTable"])
    sfn = stack.client("stepfunctions")
    submit_decision(order_id, decision, "compliance-officer-1", "checked", store=store, sfn=sfn)


@pytest.fixture
def node(tmp_path: Path, start_node: Any) -> Node:
    started: Node = start_node(tmp_path / "node", open_port=True)
    return started


def test_an_approved_order_is_routed_recorded_and_announced(moto: Any, node: Node) -> None:
    stack = _stack(moto, node)
    notices = tap_topic(stack, stack.refs["ComplianceApprovalsTopic"])
    routed = tap_topic(stack, stack.refs["OrderFlowNotificationsTopic"])
    lifecycle = tap_bus(stack, {"source": ["meridian.trading"]})
    resting = _record("mm1", "rest-1", "SELL", 100, 19000, "NEW")
    ack = (
        HotpathClient("127.0.0.1", node.port)
        .submit("rest-1", "mm1", "AAPL", Side.SELL, 100, 19000)
        .messages[0]
    )
    assert isinstance(ack, Ack)
    _put(stack, resting.evolve(node=node.address, node_order_id=ack.order_id, last_seq=ack.seq))
    held = _record("fund1", "big-1", "BUY", 60, 19000, "PENDING_APPROVAL")
    _put(stack, held)

    execution = stack.start(ORDER_FLOW, _held_event(held))
    _wait_for_pending(stack, held.order_id)
    notice = notices.messages()[0]
    assert held.order_id in notice["Message"]
    approvals = DynamoApprovalStore(stack.client("dynamodb"), stack.refs["OrderApprovalsTable"])
    pending = approvals.get(held.order_id)
    assert pending is not None
    assert pending.task_token not in notice["Message"]  # the token stays in the table
    _decide(stack, held.order_id, "APPROVE")
    result = stack.wait(execution)

    assert result["status"] == "SUCCEEDED", result.get("cause")
    output = json.loads(result["output"])
    assert (output["status"], output["filled_quantity"], output["trades"]) == ("FILLED", 60, 1)
    assert output["approval"]["reviewer"] == "compliance-officer-1"
    stored = _get(stack, held.order_id)
    assert (stored.status, stored.filled_quantity, stored.leaves_quantity) == ("FILLED", 60, 0)
    assert (stored.node, stored.node_order_id) == (node.address, output["node_order_id"])
    counterparty = _get(stack, resting.order_id)
    assert (counterparty.status, counterparty.leaves_quantity) == ("PARTIALLY_FILLED", 40)
    # Each account's exposure moved with its order, in the same transactions (the records were put
    # here directly, without the reservation the order API makes: these are the changes alone).
    assert _exposure(stack, "fund1") == {
        "open_orders": -1,
        "open_notional": Decimal("-11400"),
        "short:AAPL": -60,
    }
    assert _exposure(stack, "mm1") == {"open_notional": Decimal("-11400"), "long:AAPL": -60}
    # Published by the finished execution; the trade's event comes from the node's drop copy.
    events = [parse_eventbridge_event(m) for m in lifecycle.messages()]
    assert [e.detail_type for e in events] == ["order.accepted.v1"]
    assert routed.messages()[0]["Subject"].startswith(f"Order {held.order_id} approved and routed")


def test_a_rejected_order_ends_rejected_with_an_event(moto: Any, node: Node) -> None:
    stack = _stack(moto, node)
    lifecycle = tap_bus(stack, {"detail-type": ["order.rejected.v1"]})
    held = _record("fund2", "big-2", "BUY", 60, 19000, "PENDING_APPROVAL")
    _put(stack, held)

    execution = stack.start(ORDER_FLOW, {"order_id": held.order_id})
    _wait_for_pending(stack, held.order_id)
    _decide(stack, held.order_id, "REJECT")
    result = stack.wait(execution)

    assert (result["status"], result["error"]) == ("FAILED", "ComplianceRejected")
    history = stack.client("stepfunctions").get_execution_history(executionArn=execution)["events"]
    print(
        json.dumps(
            [e for e in history if e["type"] in ("ExecutionFailed", "TaskFailed", "PassStateExited")][-4:],
            default=str,
            indent=1,
        )
    )
    assert "compliance-officer-1" in result["cause"]
    stored = _get(stack, held.order_id)
    assert (stored.status, stored.reject_reason) == ("REJECTED", "COMPLIANCE_REJECTED")
    # The reservation the order API made when it held the order is given back with the REJECTED record.
    assert _exposure(stack, "fund2") == {
        "open_orders": -1,
        "open_notional": Decimal("-11400"),
        "long:AAPL": -60,
    }
    rejected = parse_eventbridge_event(lifecycle.messages()[0])
    assert rejected.model_dump()["reason"] == "COMPLIANCE_REJECTED"
    assert "RouteToMatchingNode" not in stack.states_entered(execution)


def test_no_decision_in_time_rejects_the_order(moto: Any, node: Node) -> None:
    stack = _stack(moto, node, timeout_seconds=2)
    held = _record("fund3", "big-3", "BUY", 60, 19000, "PENDING_APPROVAL")
    _put(stack, held)

    result = stack.run(ORDER_FLOW, _held_event(held), timeout=20)

    assert (result["status"], result["error"]) == ("FAILED", "ApprovalTimedOut")
    stored = _get(stack, held.order_id)
    assert (stored.status, stored.reject_reason) == ("REJECTED", "APPROVAL_TIMEOUT")
    approvals = stack.client("dynamodb").get_item(
        TableName=stack.refs["OrderApprovalsTable"], Key={"order_id": {"S": held.order_id}}
    )["Item"]
    assert approvals["status"]["S"] == "EXPIRED"
    with pytest.raises(ApprovalExpiredError):
        _decide(stack, held.order_id, "APPROVE")


def test_an_approved_order_is_not_sent_while_trading_is_halted(moto: Any, node: Node) -> None:
    stack = _stack(moto, node)
    held = _record("fund4", "big-4", "BUY", 60, 19000, "PENDING_APPROVAL")
    _put(stack, held)
    execution = stack.start(ORDER_FLOW, _held_event(held))
    _wait_for_pending(stack, held.order_id)
    stack.client("dynamodb").put_item(
        TableName=stack.refs["TradingControlsTable"],
        Item={"scope": {"S": "GLOBAL"}, "halted": {"BOOL": True}},
    )
    _decide(stack, held.order_id, "APPROVE")
    result = stack.wait(execution)

    assert (result["status"], result["error"]) == ("FAILED", "TradingHalted")
    assert _get(stack, held.order_id).reject_reason == "TRADING_HALTED"
    assert HotpathClient("127.0.0.1", node.port).snapshot("AAPL").seq == 0  # nothing reached the node
