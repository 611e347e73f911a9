"""``meridian stream book|trades SYMBOL`` and ``meridian stream orders``: the gateway's messages as
they arrive, one line each (``docs/api/streaming.md``).

Signs the connect with the same identity as every other command (``--user``, ``--profile`` or the
AWS environment). The gateway: ``--gateway-url``, ``MERIDIAN_GATEWAY_URL``, the local platform's
(with ``--user``), else ws://127.0.0.1:8765/stream. ``--output json`` prints each message as the
gateway sent it, one JSON document a line. Exit codes as the other commands: 0 done, 1 the
gateway refused the connect, 2 bad command-line input or no credentials, 3 no answer from it.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import click

from meridian_client.cli_orders import SYMBOL
from meridian_client.stream import DEFAULT_AUDIENCE, DEFAULT_URL, BookKeeper, connect_token, describe
from meridian_client.stream import stream as gateway_messages

EXIT_OK, EXIT_REFUSED, EXIT_UNREACHABLE = 0, 1, 3


def _credentials(obj: Any) -> Any:
    import botocore.session  # noqa: PLC0415 - credentials only when the command runs

    identity = obj.identity
    found = identity.credentials
    if found is None:
        found = botocore.session.Session(profile=identity.profile).get_credentials()
    if found is None:
        raise click.UsageError(
            "no AWS credentials found: use --user NAME (a local platform user), --profile, "
            "or set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY"
        )
    return found


@click.command(name="stream")
@click.argument("channel", type=click.Choice(["book", "trades", "orders"]))
@click.argument("symbol", type=SYMBOL, required=False)
@click.option("--gateway-url", envvar="MERIDIAN_GATEWAY_URL", help=f"The gateway (default {DEFAULT_URL}).")
@click.option("--audience", envvar="MERIDIAN_GATEWAY_AUDIENCE", default=DEFAULT_AUDIENCE, show_default=True)
@click.option("--count", type=click.IntRange(min=1), help="Stop after this many messages.")
@click.option("--seconds", type=click.FloatRange(min=0, min_open=True), help="Stop after this long.")
@click.pass_obj
def stream(
    obj: Any,
    channel: str,
    symbol: str | None,
    gateway_url: str | None,
    audience: str,
    count: int | None,
    seconds: float | None,
) -> int:
    """Stream a book (snapshot, then updates re-synced on a gap), trades, or your own orders."""
    from websockets.exceptions import InvalidStatus, WebSocketException  # noqa: PLC0415

    if (channel == "orders") == (symbol is not None):
        raise click.UsageError("book and trades need a symbol; orders takes none")
    url = gateway_url or obj.identity.gateway_url or DEFAULT_URL
    name = "orders" if channel == "orders" else f"{channel}.{symbol}"
    token = connect_token(_credentials(obj), obj.region, audience)
    out, as_json = obj.printer.out, obj.printer.format == "json"

    async def follow() -> None:
        books: dict[str, BookKeeper] = {}
        seen, deadline = 0, None if seconds is None else time.monotonic() + seconds
        async for message in gateway_messages(url, token, [name], books):
            line = json.dumps(message) if as_json else describe(message, books)
            print(line, file=out, flush=True)
            seen += 1
            if message["type"] == "error" or (count and seen >= count):
                return
            if deadline is not None and time.monotonic() > deadline:
                return

    try:
        asyncio.run(follow() if seconds is None else asyncio.wait_for(follow(), seconds + 5))
    except InvalidStatus as exc:
        body = exc.response.body.decode("utf-8", "replace") if exc.response.body else ""
        click.echo(f"refused: {exc.response.status_code} {body}", err=True)
        return EXIT_REFUSED
    except TimeoutError:
        return EXIT_OK
    except (OSError, WebSocketException) as exc:
        click.echo(f"error: no stream from {url} ({type(exc).__name__}: {exc})", err=True)
        return EXIT_UNREACHABLE
    except KeyboardInterrupt:
        return EXIT_OK
    return EXIT_OK
