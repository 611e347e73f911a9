"""Stand-ins for what AWS does between and around two regions, for the local DR drill.

* :class:`HealthProbe`: Route 53's checkers and the CloudWatch alarms they feed. It probes the
  primary's API (``GET /v1/ping``) and its matching node every ``interval`` seconds; after
  ``failures`` failed probes in a row it sets the alarms of what failed to ALARM and puts their
  "CloudWatch Alarm State Change" events on the primary region's default bus, with the first failed
  probe as the start of the alarm's evaluated window (``reasonData.startDate``), as CloudWatch does.
* :class:`JournalShipper`: the node's journal shipping to S3 and the bucket's cross-region
  replication, folded into one copy of the node's data directory to the recovery region's bucket.
* :class:`DropCopyLedger`: the post-trade path from the drop copy to the ledger (executions ->
  EventBridge -> SQS -> ledger) and RDS replication to the replica, folded into one consumer of the
  drop-copy stream writing each trade to both ledgers.
* :func:`install_ssm_agent`: the SSM agent on the recovery region's matching nodes: a Run Command
  sent to them (``meridian-activate``) runs a local callback before moto answers.
"""

from __future__ import annotations

import base64
import contextlib
import json
import socket
import threading
import urllib.request
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from meridian.dropcopy import parse_drop_copies
from meridian.ledger import record_trade
from meridian_hotpath.archive import ship
from meridian_local.delivery.pollers import KinesisPoller

Say = Callable[[str], None]


def now() -> datetime:
    return datetime.now(UTC)


class _Loop(threading.Thread):
    """Calls ``step`` every ``interval`` seconds until :meth:`stop`."""

    def __init__(self, name: str, interval: float, step: Callable[[], None]) -> None:
        super().__init__(name=name, daemon=True)
        self.interval, self.step = interval, step
        self._stopping = threading.Event()

    def run(self) -> None:
        while not self._stopping.is_set():
            with contextlib.suppress(Exception):  # a failed round is the next round's to retry
                self.step()
            self._stopping.wait(self.interval)

    def stop(self) -> None:
        self._stopping.set()
        self.join(10)


def _answers_http(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=0.5) as answer:  # noqa: S310 - a loopback URL we built
            return bool(answer.status == 200)
    except OSError:
        return False


def _accepts_tcp(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


class HealthProbe:
    """Probes the primary and raises its alarms, as Route 53 and CloudWatch would."""

    def __init__(
        self,
        cloudwatch: Any,
        events: Any,
        checks: dict[str, Callable[[], bool]],
        interval: float = 1.0,
        failures: int = 2,
        say: Say = print,
    ) -> None:
        self.cloudwatch, self.events, self.checks = cloudwatch, events, checks
        self.failures, self.say = failures, say
        self.first_failure: dict[str, datetime] = {}
        self.failed_in_a_row: dict[str, int] = dict.fromkeys(checks, 0)
        self.raised: dict[str, datetime] = {}
        self._loop = _Loop("route53-checkers", interval, self.probe)

    @staticmethod
    def api(ping_url: str) -> Callable[[], bool]:
        return lambda: _answers_http(ping_url)

    @staticmethod
    def node(host: str, port: int) -> Callable[[], bool]:
        return lambda: _accepts_tcp(host, port)

    def start(self) -> HealthProbe:
        self._loop.start()
        return self

    def stop(self) -> None:
        self._loop.stop()

    def probe(self) -> None:
        for alarm, check in self.checks.items():
            if alarm in self.raised:
                continue
            at = now()
            if check():
                self.failed_in_a_row[alarm] = 0
                self.first_failure.pop(alarm, None)
                continue
            self.failed_in_a_row[alarm] += 1
            first = self.first_failure.setdefault(alarm, at)
            if self.failed_in_a_row[alarm] == 1:
                self.say(f"  first failed probe: {alarm} at {first.isoformat(timespec='milliseconds')}")
            if self.failed_in_a_row[alarm] >= self.failures:
                self._raise(alarm, first)

    def _raise(self, alarm: str, first: datetime) -> None:
        reason = f"{self.failed_in_a_row[alarm]} failed probes in a row since {first.isoformat()}"
        data = {"version": "1.0", "startDate": first.isoformat(timespec="milliseconds")}
        self.cloudwatch.set_alarm_state(
            AlarmName=alarm, StateValue="ALARM", StateReason=reason, StateReasonData=json.dumps(data)
        )
        changed = now()
        detail = {
            "alarmName": alarm,
            "state": {
                "value": "ALARM",
                "reason": reason,
                "reasonData": json.dumps(data),
                "timestamp": changed.isoformat(timespec="milliseconds"),
            },
            "previousState": {"value": "OK"},
        }
        entry = {
            "Source": "aws.cloudwatch",
            "DetailType": "CloudWatch Alarm State Change",
            "Detail": json.dumps(detail),
            "EventBusName": "default",
        }
        self.events.put_events(Entries=[entry])
        self.raised[alarm] = changed
        self.say(f"  ALARM: {alarm} ({reason}) at {changed.isoformat(timespec='milliseconds')}")


class JournalShipper:
    """The node's archive, copied to the recovery region's bucket every ``interval`` seconds."""

    def __init__(self, data_dir: Path, s3: Any, bucket: str, prefix: str, interval: float = 1.0) -> None:
        self.shipped_rounds = 0

        def step() -> None:
            ship(data_dir, s3, bucket, prefix, include_active=True)
            self.shipped_rounds += 1

        self._loop = _Loop("journal-shipping", interval, step)

    def start(self) -> JournalShipper:
        self._loop.start()
        return self

    def stop(self) -> None:
        self._loop.stop()


class DropCopyLedger:
    """Trades from the drop-copy stream into the primary's ledger and its replica."""

    def __init__(self, kinesis: Any, stream: str, ledgers: Sequence[str], interval: float = 0.2) -> None:
        self.recorded = 0
        self._connections = [psycopg.connect(url, autocommit=True) for url in ledgers]
        for conn in self._connections[1:]:  # replication writes where the replica refuses clients'
            conn.execute("SET SESSION default_transaction_read_only = off")
        poller = KinesisPoller(kinesis, stream, self._record, function_name="drop-copy")
        self._loop = _Loop("drop-copy", interval, lambda: _drain(poller))

    def _record(self, event: dict[str, Any], context: Any = None) -> dict[str, Any]:
        for record in event["Records"]:  # a record aggregates several (meridian.kpl)
            for copy in parse_drop_copies(base64.b64decode(record["kinesis"]["data"])):
                trade = copy.trade_executed()
                for conn in self._connections:
                    record_trade(conn, trade)
                self.recorded += 1
        return {"batchItemFailures": []}

    def start(self) -> DropCopyLedger:
        self._loop.start()
        return self

    def stop(self) -> None:
        self._loop.stop()
        for conn in self._connections:
            conn.close()


def _drain(poller: KinesisPoller) -> None:
    while poller.poll_once():
        pass


RunCommand = Callable[[str, list[dict[str, Any]], list[str]], None]  # (region, targets, commands)


def install_ssm_agent(run: RunCommand) -> Callable[[], None]:
    """Run ``run`` for every SendCommand moto receives, before it answers; returns the uninstaller."""
    from moto.ssm.models import SimpleSystemManagerBackend  # noqa: PLC0415 - moto's, only when installed

    original = SimpleSystemManagerBackend.send_command

    def send_command(self: Any, **kwargs: Any) -> Any:
        parameters = kwargs.get("parameters") or {}
        run(self.region_name, list(kwargs.get("targets") or []), list(parameters.get("commands", [])))
        return original(self, **kwargs)

    SimpleSystemManagerBackend.send_command = send_command  # type: ignore[method-assign,assignment]

    def uninstall() -> None:
        SimpleSystemManagerBackend.send_command = original  # type: ignore[method-assign]

    return uninstall
