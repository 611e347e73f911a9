"""The WebSocket clients of ``bench/gateway_bench.py``, in a process of their own.

    python bench/gateway_fanout_clients.py gateway|floor --url ws://... --clients N

Opens ``N`` connections (to the gateway: a signed connect token each, traders alice and bob in
turn), each subscribed to one symbol's book and trades (the symbols in turn), reads every frame
as it arrives and prints ``fanout-clients ready`` once all are subscribed. Between ``go`` and
``stop`` on its input it counts what arrives: messages by type, and for each trade the latency
from the node's timestamp (``node_ts``, the node's clock: same machine) to its arrival here, on
at most ``LATENCY_CLIENTS`` connections spread over the N (every connection gets every trade of its
symbol). Prints one JSON line at ``stop``, then closes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from array import array
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from meridian.domain import DEFAULT_INSTRUMENTS  # noqa: E402
from meridian_client.stream import AUTH_HEADER  # noqa: E402
from tests.gateway_harness import token  # noqa: E402

READY = "fanout-clients ready"
LATENCY_CLIENTS = 100
SYMBOLS = tuple(i.symbol for i in DEFAULT_INSTRUMENTS)


class Tally:
    def __init__(self) -> None:
        self.counting = False
        self.messages: dict[str, int] = {}
        self.latency_ns = array("q")
        self.closed: dict[str, int] = {}  # close code -> connections, while counting or before


async def reader(connection: Any, tally: Tally, measure: bool) -> None:
    from websockets.exceptions import ConnectionClosed  # noqa: PLC0415

    messages, latencies = tally.messages, tally.latency_ns
    try:
        async for frame in connection:
            arrived = time.time_ns()
            if not tally.counting:
                continue
            for message in orjson.loads(frame):
                kind = message["type"]
                messages[kind] = messages.get(kind, 0) + 1
                if measure and kind == "trade":
                    latencies.append(arrived - message["node_ts"])
    except ConnectionClosed:
        pass
    code = str(connection.close_code)
    tally.closed[code] = tally.closed.get(code, 0) + 1


async def run(mode: str, url: str, clients: int) -> dict[str, Any]:
    from websockets.asyncio.client import connect  # noqa: PLC0415

    tally = Tally()
    stride = max(1, clients // LATENCY_CLIENTS)
    connections, tasks = [], []
    loop = asyncio.get_running_loop()
    for n in range(clients):
        headers = {AUTH_HEADER: token(("alice", "bob")[n % 2])} if mode == "gateway" else {}
        connection = await connect(
            url,
            additional_headers=headers,
            max_size=2**24,
            compression=None,
            open_timeout=60,
            ping_interval=None,
        )
        symbol = SYMBOLS[n % len(SYMBOLS)]
        request = {"op": "subscribe", "id": 1, "channels": [f"book.{symbol}", f"trades.{symbol}"]}
        await connection.send(json.dumps(request))
        connections.append(connection)
        tasks.append(loop.create_task(reader(connection, tally, n % stride == 0)))
    await asyncio.sleep(0.5)  # the last subscriptions answered
    print(READY, flush=True)
    await loop.run_in_executor(None, sys.stdin.readline)  # go
    tally.counting = True
    await loop.run_in_executor(None, sys.stdin.readline)  # stop
    tally.counting = False
    for connection in connections:
        await connection.close()
    await asyncio.gather(*tasks, return_exceptions=True)
    return {
        "messages": tally.messages,
        "latency_ns": list(tally.latency_ns),
        "closed": tally.closed,
        "latency_connections": len(range(0, clients, stride)),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gateway_fanout_clients.py", description=__doc__)
    parser.add_argument("mode", choices=("gateway", "floor"))
    parser.add_argument("--url", required=True)
    parser.add_argument("--clients", type=int, required=True)
    args = parser.parse_args(argv)
    result = asyncio.run(run(args.mode, args.url, args.clients))
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
