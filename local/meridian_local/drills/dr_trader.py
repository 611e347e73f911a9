"""A trading client that follows the failover DNS name, as clients of the order API do.

Alice and Bob alternate a buy and a sell of AAPL at one price (every second order trades). Each
order goes to the region the failover record's PRIMARY answer points at, and is retried under the
same client order id (so a retry never makes a second order) while that region cannot take it:
refused connections (a region that is down), 503 (no matching node yet), 422 TRADING_HALTED (a
switchover under way). It records when each region first accepted an order.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import requests

from meridian_client.api import ApiError, MeridianClient
from meridian_client.models import OrderOut

RETRYABLE = {"TRADING_HALTED", "NODE_UNAVAILABLE", "SERVICE_UNAVAILABLE", "NODE_TIMEOUT"}
Say = Callable[[str], None]


@dataclass(frozen=True)
class Accepted:
    at: datetime
    region: str
    client_order_id: str
    order_id: str
    fills: int


class FailoverTrader(threading.Thread):
    def __init__(
        self,
        target: Callable[[], str],
        regions: Mapping[str, tuple[str, Mapping[str, MeridianClient]]],
        say: Say = print,
        pause_s: float = 0.02,
    ) -> None:
        """``target()`` is where the failover record points; ``regions`` maps each target to (region
        name, the clients of its API by trader)."""
        super().__init__(name="failover-trader", daemon=True)
        self.target, self.regions, self.say, self.pause_s = target, regions, say, pause_s
        self.accepted: list[Accepted] = []
        self.refused: dict[str, int] = {}
        self.first_in: dict[str, Accepted] = {}
        self.expecting: str | None = None  # the region whose first acceptance is announced
        self._stopping = threading.Event()
        self._lock = threading.Lock()

    def stop(self) -> None:
        self._stopping.set()
        self.join(30)

    def expect(self, region: str) -> None:
        """Announce (and record) the next first acceptance in ``region`` (after a switchover)."""
        with self._lock:
            self.first_in.pop(region, None)
            self.expecting = region

    def accepted_in(self, region: str) -> int:
        with self._lock:
            return sum(1 for a in self.accepted if a.region == region)

    def run(self) -> None:
        n = 0
        while not self._stopping.is_set():
            user, side = ("alice", "BUY") if n % 2 == 0 else ("bob", "SELL")
            self._until_accepted(user, side, f"drill-{n:05d}")
            n += 1
            time.sleep(self.pause_s)

    def _until_accepted(self, user: str, side: str, client_order_id: str) -> None:
        while not self._stopping.is_set():
            region, clients = self.regions[self.target()]
            try:
                order = clients[user].submit_order(
                    "AAPL", side, 10, "190.00", client_order_id=client_order_id
                )
            except requests.ConnectionError:
                self._note(region, "connection refused")
            except ApiError as exc:
                self._note(region, exc.code)
                if exc.code not in RETRYABLE and exc.status not in (502, 503, 504):
                    return  # refused for good (a limit): the next order
            else:
                self._accept(region, client_order_id, order)
                return
            time.sleep(self.pause_s)

    def _note(self, region: str, why: str) -> None:
        with self._lock:
            key = f"{region}: {why}"
            self.refused[key] = self.refused.get(key, 0) + 1

    def _accept(self, region: str, client_order_id: str, order: OrderOut) -> None:
        accepted = Accepted(
            datetime.now(UTC), region, client_order_id, order.order_id, len(order.fills or ())
        )
        with self._lock:
            self.accepted.append(accepted)
            if region not in self.first_in:
                self.first_in[region] = accepted
                if region == self.expecting:
                    self.say(
                        f"  first order accepted in {region}: {client_order_id} at "
                        f"{accepted.at.isoformat(timespec='milliseconds')} (the client, following DNS)"
                    )
