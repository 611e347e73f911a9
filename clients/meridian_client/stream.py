"""Streaming: a signed connect to the gateway and a book kept by its sequence numbers.

The gateway (``docs/api/streaming.md``) takes a connect token: a ``sts:GetCallerIdentity``
request signed with the caller's own AWS credentials (SigV4, the same credentials the REST calls
use) and bound to the gateway by the signed ``x-meridian-gateway`` header. No secret leaves the
client; the gateway asks STS (or, locally, the local credentials) who signed it.

``BookKeeper`` holds a book from ``book_snapshot`` and ``book_update`` messages: an update whose
``prev_seq`` is not the seq held is a gap, and the keeper asks for a re-sync (a new snapshot).
The ``meridian stream`` command over these is ``cli_stream``.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Sequence
from decimal import Decimal
from typing import Any

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials, ReadOnlyCredentials

AUTH_HEADER = "X-Meridian-Auth"
AUDIENCE_HEADER = "x-meridian-gateway"
DEFAULT_AUDIENCE = "meridian-gateway"
DEFAULT_URL = "ws://127.0.0.1:8765/stream"
BODY = "Action=GetCallerIdentity&Version=2011-06-15"


def connect_token(
    credentials: Credentials | ReadOnlyCredentials, region: str, audience: str = DEFAULT_AUDIENCE
) -> str:
    """The ``X-Meridian-Auth`` value: a signed GetCallerIdentity for STS of ``region``."""
    frozen = credentials.get_frozen_credentials() if isinstance(credentials, Credentials) else credentials
    signer = Credentials(str(frozen.access_key), str(frozen.secret_key), frozen.token)
    url = f"https://sts.{region}.amazonaws.com/"
    request = AWSRequest(
        method="POST",
        url=url,
        data=BODY.encode(),
        headers={
            "Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
            AUDIENCE_HEADER: audience,
        },
    )
    SigV4Auth(signer, "sts", region).add_auth(request)
    headers = {name: str(value) for name, value in request.headers.items()}
    headers["host"] = f"sts.{region}.amazonaws.com"
    document = {"method": "POST", "url": url, "headers": headers, "body": BODY}
    return base64.urlsafe_b64encode(json.dumps(document).encode()).decode().rstrip("=")


class BookKeeper:
    """One symbol's book from the gateway's messages; ``apply`` says False on a gap."""

    def __init__(self) -> None:
        self.seq: int | None = None
        self.bids: dict[Decimal, int] = {}
        self.asks: dict[Decimal, int] = {}

    def apply(self, message: dict[str, Any]) -> bool:
        if message["type"] == "book_snapshot":
            self.seq = message["seq"]
            self.bids = {Decimal(p): q for p, q in message["bids"]}
            self.asks = {Decimal(p): q for p, q in message["asks"]}
            return True
        if self.seq is None or message["prev_seq"] != self.seq:
            self.seq = None  # nothing applies until the snapshot the caller asks for
            return False
        for side, levels in (("bids", self.bids), ("asks", self.asks)):
            for price, quantity in message[side]:
                if quantity:
                    levels[Decimal(price)] = quantity
                else:
                    levels.pop(Decimal(price), None)
        self.seq = message["seq"]
        return True

    def depth(self) -> tuple[list[tuple[Decimal, int]], list[tuple[Decimal, int]]]:
        return sorted(self.bids.items(), reverse=True), sorted(self.asks.items())


async def stream(
    url: str, token: str, channels: Sequence[str], books: dict[str, BookKeeper] | None = None
) -> AsyncIterator[dict[str, Any]]:
    """Every message on ``channels``; book gaps are re-synced as they are found."""
    from websockets.asyncio.client import connect  # noqa: PLC0415 - only streaming needs it

    books = {} if books is None else books
    async with connect(url, additional_headers={AUTH_HEADER: token}, max_size=2**24) as connection:
        await connection.send(json.dumps({"op": "subscribe", "id": 1, "channels": list(channels)}))
        async for frame in connection:
            for message in json.loads(frame):
                if message["type"] in ("book_snapshot", "book_update"):
                    keeper = books.setdefault(message["symbol"], BookKeeper())
                    if not keeper.apply(message):
                        request = {"op": "resync", "id": 2, "channel": message["channel"]}
                        await connection.send(json.dumps(request))
                        message = {**message, "type": "gap"}
                yield message


def describe(message: dict[str, Any], books: dict[str, BookKeeper]) -> str:
    kind = message["type"]
    if kind in ("book_snapshot", "book_update"):
        bids, asks = books[message["symbol"]].depth()
        bid = f"{bids[0][1]} @ {bids[0][0]}" if bids else "-"
        ask = f"{asks[0][1]} @ {asks[0][0]}" if asks else "-"
        levels = f"({len(bids)}x{len(asks)} levels)"
        return f"{kind:<13} {message['symbol']} seq {message['seq']}: bid {bid} | ask {ask} {levels}"
    if kind == "trade":
        size = f"{message['quantity']} @ {message['price']}"
        return f"trade         {message['symbol']} {size} {message['aggressor_side']}"
    if kind == "order":
        details = {k: message.get(k) for k in ("side", "quantity", "price", "average_price", "reason")}
        shown = " ".join(f"{k}={v}" for k, v in details.items() if v is not None)
        return f"order {message['event']:<8} {message['symbol']} {message['client_order_id']} {shown}"
    return f"{kind:<13} {json.dumps(message, separators=(',', ':'))}"
