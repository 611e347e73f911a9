"""EventBridge detail schemas: versioned, strict, and parsed by detail-type."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from pydantic import ValidationError

from meridian import events

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def trade(**overrides: object) -> events.TradeExecuted:
    fields: dict[str, object] = {
        "event_id": "trade-n1-7",
        "occurred_at": NOW,
        "execution_id": "n1-7",
        "symbol": "AAPL",
        "price": Decimal("190.05"),
        "quantity": 10,
        "aggressor_side": "BUY",
        "buy_order_id": "11",
        "sell_order_id": "9",
        "buy_account": "ACC1",
        "sell_account": "ACC2",
        "buy_client_order_id": "b-1",
        "sell_client_order_id": "s-1",
        "node_seq": 42,
    }
    fields.update(overrides)
    return events.TradeExecuted.model_validate(fields)


def test_put_events_entry_round_trips_through_an_eventbridge_envelope() -> None:
    detail = trade()
    entry = events.put_events_entry(detail, "meridian-trading-dev", trace_header="Root=1-abc")
    assert entry["DetailType"] == "trade.executed.v1"
    assert entry["Source"] == events.EXECUTIONS_SOURCE == "meridian.executions"
    assert entry["TraceHeader"] == "Root=1-abc"
    delivered = {
        "detail-type": entry["DetailType"],
        "source": entry["Source"],
        "detail": json.loads(entry["Detail"]),
    }
    parsed = events.parse_eventbridge_event(json.dumps(delivered))
    assert parsed == detail
    assert isinstance(parsed, events.TradeExecuted)
    assert parsed.price == Decimal("190.05")


def test_every_detail_type_is_versioned_and_unique() -> None:
    assert len(events.EVENT_TYPES) == 7
    for detail_type, cls in events.EVENT_TYPES.items():
        assert detail_type.rsplit(".", 1)[1] == "v1"
        assert cls.detail_type == detail_type


@pytest.mark.parametrize(
    "event",
    [
        "not json",
        json.dumps({"detail": {}}),
        json.dumps({"detail-type": "trade.executed.v9", "detail": {}}),
        json.dumps({"detail-type": "order.teleported.v1", "detail": {}}),
    ],
)
def test_unknown_or_foreign_events_are_refused(event: str) -> None:
    with pytest.raises(events.UnknownEventError):
        events.parse_eventbridge_event(event)


def test_schema_violations_are_validation_errors() -> None:
    body = json.loads(trade().model_dump_json())
    with pytest.raises(ValidationError):
        events.parse_detail("trade.executed.v1", {**body, "quantity": 0})
    with pytest.raises(ValidationError):
        events.parse_detail("trade.executed.v1", {**body, "unexpected": 1})
    with pytest.raises(ValidationError):
        events.parse_detail("trade.executed.v1", {**body, "aggressor_side": "SIDEWAYS"})


def test_only_trades_carry_the_executions_source() -> None:
    """The ledger's rule accepts trade.executed.v1 from meridian.executions only (template.yaml)."""
    for detail_type, cls in events.EVENT_TYPES.items():
        expected = events.EXECUTIONS_SOURCE if detail_type == "trade.executed.v1" else events.EVENT_SOURCE
        assert cls.source == expected, detail_type
