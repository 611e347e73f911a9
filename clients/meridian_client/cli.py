"""``meridian`` (or ``python -m meridian_client``): orders, positions, trades and market data from the
command line. ``pip install ./clients`` installs the command; ``make setup`` does in the dev venv.

The API's URL comes from ``--url`` or ``MERIDIAN_API_URL`` (default http://127.0.0.1:3000); AWS
credentials and region from the usual AWS environment (``AWS_ACCESS_KEY_ID`` ..., profiles).
Exit codes: 0 success, 1 the API refused (its error code is printed), 2 bad command-line input,
3 the API did not answer (not running, unreachable, timed out).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Callable, Sequence
from typing import Any, TextIO

import requests

from meridian_client import stream
from meridian_client.api import ApiError, MeridianClient
from meridian_client.table import render, render_record

ORDER_COLUMNS = ("order_id", "symbol", "side", "type", "quantity", "price", "status", "filled_quantity")
EXIT_OK, EXIT_REFUSED, EXIT_USAGE, EXIT_UNREACHABLE = 0, 1, 2, 3
_PRICE = re.compile(r"^[0-9]{1,12}(\.[0-9]{1,8})?$")
_SYMBOL = re.compile(r"^[A-Z0-9]{1,8}$")


def _price(text: str) -> str:
    if not _PRICE.match(text):
        raise argparse.ArgumentTypeError(
            f"not a price: {text!r} (use digits and a decimal point, e.g. 190.00)"
        )
    return text


def _quantity(text: str) -> int:
    if not text.isdigit() or int(text) <= 0:
        raise argparse.ArgumentTypeError(f"not a positive whole quantity: {text!r}")
    return int(text)


def _symbol(text: str) -> str:
    if not _SYMBOL.match(text.upper()):
        raise argparse.ArgumentTypeError(f"not a symbol: {text!r}")
    return text.upper()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="meridian", description="Meridian order API client")
    parser.add_argument("--url", default=os.environ.get("MERIDIAN_API_URL", "http://127.0.0.1:3000"))
    parser.add_argument("--region", default=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"))
    commands = parser.add_subparsers(dest="command", required=True)

    orders = commands.add_parser("orders", help="submit, list, show, cancel and replace orders")
    actions = orders.add_subparsers(dest="action", required=True)
    submit = actions.add_parser("submit", help="submit an order")
    submit.add_argument("--symbol", type=_symbol, required=True)
    submit.add_argument("--side", type=str.upper, choices=["BUY", "SELL"], required=True)
    submit.add_argument("--qty", type=_quantity, required=True)
    submit.add_argument("--price", type=_price, help="limit price; omit with --type market")
    submit.add_argument("--type", type=str.upper, choices=["LIMIT", "MARKET"], default="LIMIT")
    submit.add_argument("--tif", type=str.upper, choices=["GTC", "IOC", "FOK", "DAY"], default="GTC")
    submit.add_argument("--client-order-id")
    submit.add_argument("--idempotency-key")
    listing = actions.add_parser("list", help="list your orders, newest first")
    listing.add_argument("--status")
    listing.add_argument("--symbol", type=_symbol)
    listing.add_argument("--limit", type=_quantity, default=50)
    for name in ("show", "cancel"):
        actions.add_parser(name, help=f"{name} one order").add_argument("order_id")
    change = actions.add_parser("replace", help="change an order's open quantity and/or price")
    change.add_argument("order_id")
    change.add_argument("--qty", type=_quantity)
    change.add_argument("--price", type=_price)

    commands.add_parser("positions", help="your positions")
    trades = commands.add_parser("trades", help="your trades, newest first")
    trades.add_argument("--symbol", type=_symbol)
    trades.add_argument("--limit", type=_quantity, default=20)
    market = commands.add_parser("marketdata", help="top of book, depth and last trades")
    market.add_argument("symbol", type=_symbol)
    commands.add_parser("health", help="service health")
    stream.add_parser(commands)
    return parser


def _orders(client: MeridianClient, args: argparse.Namespace, out: TextIO) -> None:
    if args.action == "submit":
        if (args.type == "LIMIT") != (args.price is not None):
            raise argparse.ArgumentTypeError("a LIMIT order needs --price; a MARKET order takes none")
        order = client.submit_order(
            args.symbol, args.side, args.qty, args.price, order_type=args.type, time_in_force=args.tif,
            client_order_id=args.client_order_id, idempotency_key=args.idempotency_key,
        )  # fmt: skip
        print(render_record(order), file=out)
        if order.get("fills"):
            print(render(order["fills"], ("execution_id", "price", "quantity", "liquidity")), file=out)
    elif args.action == "list":
        page = client.list_orders(args.status, args.symbol, args.limit)
        print(render(page["orders"], ORDER_COLUMNS), file=out)
    elif args.action == "show":
        print(render_record(client.get_order(args.order_id)), file=out)
    elif args.action == "cancel":
        print(render_record(client.cancel_order(args.order_id)), file=out)
    else:
        if args.qty is None and args.price is None:
            raise argparse.ArgumentTypeError("replace needs --qty, --price or both")
        print(render_record(client.replace_order(args.order_id, args.qty, args.price)), file=out)


def _market(data: dict[str, Any]) -> str:
    top = {
        k: data.get(k)
        for k in ("symbol", "bid_quantity", "bid_price", "ask_price", "ask_quantity", "node_seq")
    }
    depth = [
        {"bid_qty": b["quantity"] if b else None, "bid": b["price"] if b else None,
         "ask": a["price"] if a else None, "ask_qty": a["quantity"] if a else None}
        for b, a in _pairs(data.get("bids", []), data.get("asks", []))
    ]  # fmt: skip
    last = render(data.get("last_trades", []), ("execution_id", "price", "quantity", "occurred_at"))
    return "\n\n".join([render_record(top), render(depth, ("bid_qty", "bid", "ask", "ask_qty")), last])


def _pairs(bids: list[Any], asks: list[Any]) -> list[tuple[Any, Any]]:
    size = max(len(bids), len(asks))
    return [(bids[i] if i < len(bids) else None, asks[i] if i < len(asks) else None) for i in range(size)]


def run(args: argparse.Namespace, client: MeridianClient, out: TextIO) -> None:
    commands: dict[str, Callable[[], None]] = {
        "orders": lambda: _orders(client, args, out),
        "positions": lambda: print(
            render(
                client.positions()["positions"],
                ("account", "symbol", "quantity", "average_price", "realized_pnl"),
            ),
            file=out,
        ),
        "trades": lambda: print(
            render(
                client.trades(args.symbol, args.limit)["trades"],
                ("execution_id", "symbol", "price", "quantity"),
            ),
            file=out,
        ),
        "marketdata": lambda: print(_market(client.market_data(args.symbol)), file=out),
        "health": lambda: print(render_record(client.health()), file=out),
    }
    commands[args.command]()


def default_client(args: argparse.Namespace) -> MeridianClient:
    import botocore.session  # noqa: PLC0415 - credentials only when a command runs

    credentials = botocore.session.get_session().get_credentials()
    if credentials is None:
        raise argparse.ArgumentTypeError(
            "no AWS credentials found (set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)"
        )
    return MeridianClient(args.url, credentials, args.region)


def main(
    argv: Sequence[str] | None = None,
    client_factory: Callable[[argparse.Namespace], MeridianClient] = default_client,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse printed the usage and the problem
        return int(exc.code or 0)
    if args.command == "stream":
        return stream.main(args, out, err)
    try:
        run(args, client_factory(args), out)
    except argparse.ArgumentTypeError as exc:
        print(f"error: {exc}", file=err)
        return EXIT_USAGE
    except ApiError as exc:
        print(f"refused: {exc.status} {exc.code}: {exc.message}", file=err)
        return EXIT_REFUSED
    except requests.RequestException as exc:  # connection refused, DNS, timeout: the API never answered
        reason = type(exc).__name__
        print(f"error: no answer from the Meridian API at {args.url} ({reason}); is it running?", file=err)
        return EXIT_UNREACHABLE
    return EXIT_OK
