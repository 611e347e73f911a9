"""One fan-out server of ``bench/gateway_bench.py``, in a process of its own (its CPU time is read
from outside): the market-data stream in, WebSocket clients out.

    python bench/gateway_fanout_server.py gateway|floor --stream NAME [--poll-interval S] [--max-queue N]

Both read the stream with the gateway's own ``KinesisReader`` (the endpoint and credentials from the
environment: ``AWS_ENDPOINT_URL``, the bench's moto server), so both pay the same stream hop:

* ``gateway``: the real ``meridian_gateway`` (SigV4 connect tokens verified against local
  credentials, channel access by the trader role's policies, the hub's per-connection outboxes,
  book conflation, one frame per wake-up);
* ``floor``: a bare ``websockets`` server: no authentication, a connection's first message names
  its channels, and each update is encoded once (a trade as the gateway words it, a book as the
  node's record) and handed to ``websockets.broadcast``: no outbox, no conflation, no limits.

Prints ``fanout-server ready <port>`` once it serves; on ``stop`` (or end of input) it stops and
prints one JSON line: the stream updates it read.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import boto3
import orjson

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from meridian.iam.access import RoleAccess  # noqa: E402
from meridian_gateway.access import ChannelAccess  # noqa: E402
from meridian_gateway.book import units_text  # noqa: E402
from meridian_gateway.config import GatewaySettings  # noqa: E402
from meridian_gateway.identity import LocalVerifier  # noqa: E402
from meridian_gateway.metrics import GatewayMetrics  # noqa: E402
from meridian_gateway.server import Gateway  # noqa: E402
from meridian_gateway.sources import KinesisReader  # noqa: E402
from tests.gateway_harness import API, CREDENTIALS, REGION, ROLES, principals_lookup  # noqa: E402

READY_PREFIX = "fanout-server ready"
MODES = ("gateway", "floor")


class Counted:
    """The stream's updates, counted on their way to the server's handler."""

    def __init__(self, handler: Any) -> None:
        self.handler, self.updates = handler, 0

    def __call__(self, update: dict[str, Any]) -> None:
        self.updates += 1
        self.handler(update)


class Floor:
    """The bare broadcast server: channel -> open connections; each update sent as it comes."""

    def __init__(self) -> None:
        self.subscribers: dict[str, set[Any]] = {}
        self._server: Any = None

    async def handler(self, connection: Any) -> None:
        channels = json.loads(await connection.recv()).get("channels", [])
        for channel in channels:
            self.subscribers.setdefault(channel, set()).add(connection)
        try:
            await connection.wait_closed()
        finally:
            for channel in channels:
                self.subscribers[channel].discard(connection)

    def on_update(self, record: dict[str, Any]) -> None:
        from websockets.asyncio.server import broadcast  # noqa: PLC0415

        symbol = record["symbol"]
        if record["type"] == "trade":
            channel = "trades." + symbol
            message: dict[str, Any] = {
                "type": "trade", "channel": channel, "symbol": symbol, "trade_id": record["trade_id"],
                "price": units_text(record["price"], 2), "quantity": record["quantity"],
                "node_seq": record["seq"], "node_ts": record["timestamp_ns"],
            }  # fmt: skip
        else:
            channel = "book." + symbol
            message = {**record, "channel": channel, "node_ts": record["timestamp_ns"]}
        connections = self.subscribers.get(channel)
        if connections:
            broadcast(connections, b"[" + orjson.dumps(message) + b"]", text=True)

    async def start(self, write_limit: int) -> int:
        from websockets.asyncio.server import serve  # noqa: PLC0415

        self._server = await serve(
            self.handler, "127.0.0.1", 0, compression=None, write_limit=write_limit, max_queue=16
        )
        return int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        self._server.close(close_connections=True)
        await self._server.wait_closed()


async def serve(mode: str, stream: str, poll_interval: float, max_queue: int) -> dict[str, Any]:
    kinesis = boto3.client("kinesis", region_name=REGION)
    settings = GatewaySettings(
        host="127.0.0.1", port=0, market_data_stream=stream, poll_interval=poll_interval, max_queue=max_queue
    )
    gateway: Gateway | None = None
    floor: Floor | None = None
    if mode == "gateway":
        access = ChannelAccess(RoleAccess(API, ROLES), principals_lookup)
        gateway = Gateway(settings, LocalVerifier(CREDENTIALS, REGION, settings.audience), access)
        handler = Counted(gateway.hub.on_market_data)
        metrics = gateway.metrics
        await gateway.start()
        port = gateway.port
    else:
        floor = Floor()
        handler = Counted(floor.on_update)
        metrics = GatewayMetrics()
        port = await floor.start(settings.write_limit)
    reader = KinesisReader(kinesis, stream, handler, metrics, poll_interval)
    loop = asyncio.get_running_loop()
    tasks = [loop.create_task(reader.run())]
    if gateway is not None:
        tasks.append(loop.create_task(gateway.heartbeats()))
    while not reader.healthy:  # its shard iterators are at the stream's tip
        await asyncio.sleep(0.01)
    print(f"{READY_PREFIX} {port}", flush=True)
    while (await loop.run_in_executor(None, sys.stdin.readline)).strip() not in ("stop", ""):
        pass
    for task in tasks:
        task.cancel()
    if gateway is not None:
        await gateway.stop()
    if floor is not None:
        await floor.stop()
    return {"mode": mode, "updates": handler.updates}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gateway_fanout_server.py", description=__doc__)
    parser.add_argument("mode", choices=MODES)
    parser.add_argument("--stream", required=True)
    parser.add_argument("--poll-interval", type=float, default=0.01)
    parser.add_argument("--max-queue", type=int, default=2000)
    args = parser.parse_args(argv)
    print(
        json.dumps(asyncio.run(serve(args.mode, args.stream, args.poll_interval, args.max_queue))), flush=True
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
