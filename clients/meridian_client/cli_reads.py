"""``meridian positions|trades|marketdata|health`` and the operators' ``halt`` and ``resume``."""

from __future__ import annotations

from typing import Any

import click

from meridian_client.cli_orders import SYMBOL
from meridian_client.output import Printer

POSITION_COLUMNS = ("account", "symbol", "quantity", "average_price", "realized_pnl")
TRADE_COLUMNS = ("execution_id", "symbol", "price", "quantity", "aggressor_side", "occurred_at")


@click.command()
@click.option("--account", help="Officers: another account's positions.")
@click.option("--symbol", type=SYMBOL)
@click.pass_obj
def positions(obj: Any, account: str | None, symbol: str | None) -> None:
    """Positions per account and symbol."""
    answer = obj.client.positions(account, symbol)
    if obj.printer.format == "json":
        obj.printer.json(answer)
        return
    obj.printer.rows(answer.positions, POSITION_COLUMNS)


@click.command()
@click.option("--symbol", type=SYMBOL)
@click.option("--account", help="Officers: another account's trades.")
@click.option("--limit", type=click.IntRange(1, 500), default=20, show_default=True)
@click.option("--next-token", help="The page after the one that printed it.")
@click.option("--all", "every", is_flag=True, help="Every page.")
@click.pass_obj
def trades(
    obj: Any, symbol: str | None, account: str | None, limit: int, next_token: str | None, every: bool
) -> None:
    """Executed trades, newest first."""
    printer: Printer = obj.printer
    query = {"symbol": symbol, "account": account, "limit": limit}
    if every:
        printer.rows(list(obj.client.all_trades(next_token=next_token, **query)), TRADE_COLUMNS, key="trades")
        return
    page = obj.client.trades(next_token=next_token, **query)
    if printer.format == "json":
        printer.json(page)
        return
    printer.rows(page.trades, TRADE_COLUMNS)
    printer.next_token(page.next_token)


@click.command()
@click.argument("symbol", type=SYMBOL)
@click.option("--trades", "last", type=click.IntRange(0, 50), default=10, show_default=True)
@click.pass_obj
def marketdata(obj: Any, symbol: str, last: int) -> None:
    """Top of book, depth and the last trades of a symbol."""
    data = obj.client.market_data(symbol, last)
    printer: Printer = obj.printer
    if printer.format == "json":
        printer.json(data)
        return
    top = {
        k: data.get(k)
        for k in ("symbol", "bid_quantity", "bid_price", "ask_price", "ask_quantity", "node_seq")
    }
    printer.record(top)
    size = max(len(data.bids), len(data.asks))
    depth = [
        {
            "bid_qty": data.bids[i].quantity if i < len(data.bids) else None,
            "bid": data.bids[i].price if i < len(data.bids) else None,
            "ask": data.asks[i].price if i < len(data.asks) else None,
            "ask_qty": data.asks[i].quantity if i < len(data.asks) else None,
        }
        for i in range(size)
    ]
    printer.rows(depth, ("bid_qty", "bid", "ask", "ask_qty"))
    printer.rows(data.last_trades, ("execution_id", "price", "quantity", "occurred_at"))


@click.command()
@click.pass_obj
def health(obj: Any) -> None:
    """Service health."""
    obj.printer.record(obj.client.health())


@click.command()
@click.option("--symbol", type=SYMBOL, help="One symbol (default: every symbol).")
@click.option("--reason", default="", help="Recorded with the halt.")
@click.pass_obj
def halt(obj: Any, symbol: str | None, reason: str) -> None:
    """Operators and risk officers: halt trading in a symbol, or everywhere."""
    obj.printer.record(obj.client.halt(symbol, reason))


@click.command()
@click.option("--symbol", type=SYMBOL, help="One symbol (default: every symbol).")
@click.option("--reason", default="", help="Recorded with the resume.")
@click.pass_obj
def resume(obj: Any, symbol: str | None, reason: str) -> None:
    """Operators and risk officers: resume trading in a symbol, or everywhere."""
    obj.printer.record(obj.client.resume(symbol, reason))


def register(group: click.Group) -> None:
    for command in (positions, trades, marketdata, health, halt, resume):
        group.add_command(command)
