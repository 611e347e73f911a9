"""A streaming gateway on its own event-loop thread, with local identities and roles, for tests and
the gateway benchmark: traders alice and bob, an operator, and the trader role's policies."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from botocore.credentials import Credentials
from websockets.sync.client import ClientConnection, connect

from meridian.iam.access import ExecuteApi, RoleAccess, RolePolicies
from meridian.iam.sigv4 import LocalCredential
from meridian.kpl import aggregate
from meridian_client.stream import AUTH_HEADER, connect_token
from meridian_gateway.access import ChannelAccess
from meridian_gateway.config import GatewaySettings
from meridian_gateway.identity import LocalVerifier
from meridian_gateway.server import Gateway
from meridian_gateway.sources import KinesisReader
from meridian_hotpath.stream import StreamRecord

T = TypeVar("T")
ACCOUNT = "123456789012"
REGION = "us-east-1"
TRADER_ROLE, OPERATOR_ROLE = "meridian-trader-dev", "meridian-operator-dev"
API = ExecuteApi(REGION, ACCOUNT, "local", "v1")
PEOPLE = {  # name -> (role, user type, account)
    "alice": (TRADER_ROLE, "trader", "ACC-ALICE"),
    "bob": (TRADER_ROLE, "trader", "ACC-BOB"),
    "olga": (OPERATOR_ROLE, "operator", None),
}
TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
            "Action": "sts:AssumeRole",
            "Condition": {"StringEquals": {"sts:RoleSessionName": "${aws:username}"}},
        }
    ],
}


def _invoke(*routes: str) -> dict[str, Any]:
    prefix = f"arn:aws:execute-api:{REGION}:{ACCOUNT}:local/v1/"
    resources = [prefix + route for route in routes]
    return {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "execute-api:Invoke",
                                                    "Resource": resources}]}  # fmt: skip


ROLES = {
    TRADER_ROLE: RolePolicies((("invoke", _invoke("GET/orders", "GET/marketdata/*")),), trust=TRUST),
    OPERATOR_ROLE: RolePolicies((("invoke", _invoke("POST/admin/halt")),), trust=TRUST),
}


def principal(name: str, session: str | None = None) -> str:
    return f"arn:aws:sts::{ACCOUNT}:assumed-role/{PEOPLE[name][0]}/{session or name}"


def key_of(name: str) -> str:
    return f"AKIA{name.upper():0<16}"[:20]


CREDENTIALS = {key_of(name): LocalCredential(f"secret-{name}", principal(name), name) for name in PEOPLE}
CREDENTIALS["AKIAMALLORYASALICE00"] = LocalCredential("secret-m", principal("alice"), "mallory")


def principals_lookup(keys: list[str]) -> dict[str, Any] | None:
    for key in keys:
        for name, (_, user_type, account) in PEOPLE.items():
            if key == principal(name):
                return {"principal": key, "user_type": user_type, "account": account}
    return None


def token(name: str, audience: str = "meridian-gateway", key: str | None = None) -> str:
    access_key = key or key_of(name)
    return connect_token(Credentials(access_key, CREDENTIALS[access_key].secret), REGION, audience)


class GatewayThread:
    """A gateway serving on a free loopback port from a thread; updates are fed thread-safely."""

    def __init__(self, **settings: Any) -> None:
        self.settings = GatewaySettings(host="127.0.0.1", port=0, **settings)
        access = ChannelAccess(RoleAccess(API, ROLES), principals_lookup)
        self.gateway = Gateway(self.settings, LocalVerifier(CREDENTIALS, REGION, "meridian-gateway"), access)
        self.reader = KinesisReader(None, "", self.gateway.hub.on_market_data, self.gateway.metrics)
        self.loop = asyncio.new_event_loop()
        started = threading.Event()

        async def main() -> None:
            await self.gateway.start()
            self._tasks = [asyncio.get_running_loop().create_task(self.gateway.heartbeats())]
            started.set()

        self._thread = threading.Thread(target=self.loop.run_forever, name="gateway", daemon=True)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(main(), self.loop).result(10)
        started.wait(10)
        self.url = f"ws://127.0.0.1:{self.gateway.port}/stream"
        self.http = f"http://127.0.0.1:{self.gateway.port}"

    def call(self, function: Callable[[], T]) -> T:
        async def run() -> T:
            return function()

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(10)

    def feed(self, records: Sequence[StreamRecord]) -> None:
        """Records as the stream carries them: one symbol's aggregated (KPL) into one Kinesis record."""
        by_key: dict[str, list[bytes]] = {}
        for record in records:
            by_key.setdefault(record.partition_key, []).append(record.to_json())
        for key, datas in by_key.items():
            data = aggregate(key, datas)
            self.loop.call_soon_threadsafe(self.reader.deliver, data)

    def stop(self) -> None:
        async def stop() -> None:
            for task in self._tasks:
                task.cancel()
            await self.gateway.stop()

        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


class GatewaySink:
    """A market-data sink that is the stream: what the node publishes reaches the gateway, aggregated."""

    def __init__(self, gateway: GatewayThread) -> None:
        self.gateway = gateway

    def put(self, records: Sequence[StreamRecord]) -> list[StreamRecord]:
        self.gateway.feed(records)
        return []


def open_client(url: str, name: str, **kwargs: Any) -> ClientConnection:
    sock = kwargs.pop("sock", None)
    # No keepalive pings from test clients: on a starved machine a late pong would close a
    # connection the test is reading (the gateway's own pings still run).
    return connect(url, additional_headers={AUTH_HEADER: token(name, **kwargs)}, open_timeout=10, sock=sock,
                   ping_interval=None)  # fmt: skip


def receive(connection: ClientConnection, timeout: float = 10.0) -> list[dict[str, Any]]:
    """The messages of the next frame."""
    messages: list[dict[str, Any]] = json.loads(connection.recv(timeout=timeout))
    return messages


def send(connection: ClientConnection, request: dict[str, Any]) -> None:
    connection.send(json.dumps(request))


def now() -> datetime:
    return datetime.now(UTC)
