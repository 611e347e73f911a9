"""Surveillance over real PostgreSQL: windowed counts, idempotent findings, at-least-once alerts."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from surveillance.consumer import SurveillanceConfig, activities_of, surveil
from surveillance.rules import Finding, RatioLimits, linked_groups
from surveillance.store import findings

from tests.pipeline_factories import BASE_TIME, accepted, cancelled, trade

Conn = psycopg.Connection[Any]
CONFIG = SurveillanceConfig(
    limits=RatioLimits(
        window_s=60,
        max_order_to_trade=Decimal(10),
        min_order_messages=20,
        max_cancel_ratio=Decimal("0.5"),
        min_new_orders=10,
    ),
    linked=linked_groups([["L1", "L2"]]),
)


class RecordingAlerts:
    def __init__(self, fail: int = 0) -> None:
        self.sent: list[Finding] = []
        self.fail = fail

    def send(self, finding: Finding) -> None:
        if self.fail:
            self.fail -= 1
            raise ConnectionError("SNS unavailable")
        self.sent.append(finding)


def test_a_wash_trade_is_stored_and_alerted_once(ledger_conn: Conn) -> None:
    alerts = RecordingAlerts()
    wash = trade("w1", buyer="L1", seller="L2")
    assert [f.rule for f in surveil(ledger_conn, wash, CONFIG, alerts)] == ["wash_trade"]
    assert surveil(ledger_conn, wash, CONFIG, alerts) == []  # redelivered: nothing new
    assert [f.finding_id for f in alerts.sent] == ["wash_trade:w1"]
    assert [f.finding_id for f in findings(ledger_conn, "L1")] == ["wash_trade:w1"]


def test_an_alert_that_failed_is_sent_on_redelivery(ledger_conn: Conn) -> None:
    alerts = RecordingAlerts(fail=1)
    wash = trade("w2", buyer="S", seller="S", price="300")  # wash trade and outside the band
    with pytest.raises(ConnectionError):
        surveil(ledger_conn, wash, CONFIG, alerts)
    sent = surveil(ledger_conn, wash, CONFIG, alerts)
    assert sorted(f.rule for f in sent) == ["price_band", "wash_trade"]
    assert surveil(ledger_conn, wash, CONFIG, alerts) == []
    assert len(findings(ledger_conn)) == 2


def test_order_to_trade_ratio_over_the_window(ledger_conn: Conn) -> None:
    alerts = RecordingAlerts()
    at = BASE_TIME
    surveil(ledger_conn, trade("t1", buyer="HF", seller="MM", at=at), CONFIG, alerts)
    for i in range(19):
        surveil(ledger_conn, accepted("HF", at=at + timedelta(seconds=i)), CONFIG, alerts)
    assert alerts.sent == []  # 19 messages: below the minimum activity
    surveil(ledger_conn, accepted("HF", at=at + timedelta(seconds=20)), CONFIG, alerts)
    assert [f.rule for f in alerts.sent] == ["order_to_trade_ratio"]
    for i in range(5):  # more in the same window: still one finding for it
        surveil(ledger_conn, accepted("HF", at=at + timedelta(seconds=21 + i)), CONFIG, alerts)
    assert len(alerts.sent) == 1
    assert alerts.sent[0].details["trades"] == "1"


def test_old_activity_leaves_the_window(ledger_conn: Conn) -> None:
    alerts = RecordingAlerts()
    for i in range(15):
        surveil(ledger_conn, accepted("Q", at=BASE_TIME + timedelta(seconds=i)), CONFIG, alerts)
    later = BASE_TIME + timedelta(seconds=200)
    for i in range(15):
        surveil(ledger_conn, accepted("Q", at=later + timedelta(seconds=i)), CONFIG, alerts)
    assert alerts.sent == []  # never 20 in any 60 s window


def test_cancel_ratio_counts_only_the_traders_own_cancels(ledger_conn: Conn) -> None:
    alerts = RecordingAlerts()
    for i in range(10):
        surveil(ledger_conn, accepted("C", at=BASE_TIME + timedelta(seconds=i)), CONFIG, alerts)
    for i in range(6):
        surveil(
            ledger_conn,
            cancelled("C", reason="IOC_REMAINDER", at=BASE_TIME + timedelta(seconds=20 + i)),
            CONFIG,
            alerts,
        )
    assert alerts.sent == []
    for i in range(6):
        surveil(ledger_conn, cancelled("C", at=BASE_TIME + timedelta(seconds=30 + i)), CONFIG, alerts)
    assert [f.rule for f in alerts.sent] == ["cancel_ratio"]


def test_a_self_trade_is_one_activity() -> None:
    assert len(activities_of(trade("s", buyer="S", seller="S"))) == 1


def test_config_from_the_environment() -> None:
    config = SurveillanceConfig.from_env(
        {"SURVEILLANCE_WINDOW_SECONDS": "30", "SURVEILLANCE_LINKED_ACCOUNTS": '[["A", "B"]]'}
    )
    assert config.limits.window_s == 30
    assert config.linked["A"] == frozenset({"A", "B"})
