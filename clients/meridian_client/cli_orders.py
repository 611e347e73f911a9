"""``meridian orders ...``: submit, list, show, fills, cancel, replace, and the compliance decision."""

from __future__ import annotations

import re
from typing import Any

import click

from meridian_client.output import Printer

ORDER_COLUMNS = (
    "order_id",
    "symbol",
    "side",
    "type",
    "quantity",
    "price",
    "stop_price",
    "status",
    "filled_quantity",
    "average_price",
    "cancel_reason",
)
FILL_COLUMNS = ("execution_id", "price", "quantity", "liquidity", "occurred_at")
_PRICE = re.compile(r"^[0-9]{1,12}(\.[0-9]{1,8})?$")
_SYMBOL = re.compile(r"^[A-Z0-9]{1,8}$")


class PriceType(click.ParamType):
    name = "price"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = str(value)
        if not _PRICE.match(text):
            self.fail(f"not a price: {text!r} (use digits and a decimal point, e.g. 190.00)", param, ctx)
        return text


class SymbolType(click.ParamType):
    name = "symbol"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = str(value).upper()
        if not _SYMBOL.match(text):
            self.fail(f"not a symbol: {value!r}", param, ctx)
        return text


PRICE, SYMBOL = PriceType(), SymbolType()
QUANTITY = click.IntRange(min=1)


def _choice(*names: str) -> click.Choice:
    return click.Choice(names, case_sensitive=False)


@click.group()
def orders() -> None:
    """Submit, list, show, cancel and replace orders (and decide held ones)."""


@orders.command()
@click.option("--symbol", type=SYMBOL, required=True)
@click.option("--side", type=_choice("buy", "sell"), required=True)
@click.option("--qty", type=QUANTITY, required=True)
@click.option("--price", type=PRICE, help="Limit price (LIMIT, STOP_LIMIT); none for MARKET and STOP.")
@click.option("--type", "order_type", type=_choice("limit", "market", "stop", "stop_limit"), default="limit")
@click.option(
    "--stop-price", type=PRICE, help="STOP and STOP_LIMIT: the trade price that triggers the order."
)
@click.option("--tif", type=_choice("gtc", "ioc", "fok", "day"), default="gtc", help="Time in force.")
@click.option("--post-only", is_flag=True, help="Refuse the order rather than let it trade on arrival.")
@click.option(
    "--stp",
    type=_choice("cancel_newest", "cancel_oldest", "cancel_both", "allow"),
    help="Self-trade prevention (the API's default: cancel_newest).",
)
@click.option("--client-order-id")
@click.option("--idempotency-key")
@click.pass_obj
def submit(
    obj: Any,
    symbol: str,
    side: str,
    qty: int,
    price: str | None,
    order_type: str,
    stop_price: str | None,
    tif: str,
    post_only: bool,
    stp: str | None,
    client_order_id: str | None,
    idempotency_key: str | None,
) -> None:
    """Submit an order.

    meridian --user alice orders submit --symbol AAPL --side buy --qty 10 --price 190.00
    """
    priced = order_type in ("limit", "stop_limit")
    if priced != (price is not None):
        raise click.UsageError(f"a {order_type.upper()} order {'needs' if priced else 'takes no'} --price")
    if (order_type in ("stop", "stop_limit")) != (stop_price is not None):
        raise click.UsageError("STOP and STOP_LIMIT orders need --stop-price; other orders take none")
    order = obj.client.submit_order(
        symbol,
        side,
        qty,
        price,
        order_type=order_type,
        time_in_force=tif,
        client_order_id=client_order_id,
        idempotency_key=idempotency_key,
        post_only=post_only,
        self_trade_prevention=stp,
        stop_price=stop_price,
    )
    obj.printer.record(order, fills=True)


@orders.command(name="list")
@click.option("--status")
@click.option("--symbol", type=SYMBOL)
@click.option("--account", help="Officers: another account's orders.")
@click.option("--limit", type=click.IntRange(1, 100), default=50, show_default=True)
@click.option("--next-token", help="The page after the one that printed it.")
@click.option("--all", "every", is_flag=True, help="Every page.")
@click.pass_obj
def list_orders(
    obj: Any,
    status: str | None,
    symbol: str | None,
    account: str | None,
    limit: int,
    next_token: str | None,
    every: bool,
) -> None:
    """List orders, newest first."""
    query = {"status": status, "symbol": symbol, "account": account, "limit": limit}
    printer: Printer = obj.printer
    if every:
        printer.rows(list(obj.client.all_orders(next_token=next_token, **query)), ORDER_COLUMNS, key="orders")
        return
    page = obj.client.list_orders(next_token=next_token, **query)
    if printer.format == "json":
        printer.json(page)
        return
    printer.rows(page.orders, ORDER_COLUMNS)
    printer.next_token(page.next_token)


@orders.command()
@click.argument("order_id")
@click.pass_obj
def show(obj: Any, order_id: str) -> None:
    """Show one order."""
    obj.printer.record(obj.client.get_order(order_id))


@orders.command()
@click.argument("order_id")
@click.pass_obj
def fills(obj: Any, order_id: str) -> None:
    """Every fill of one order (from the ledger)."""
    answer = obj.client.order_fills(order_id)
    if obj.printer.format == "json":
        obj.printer.json(answer)
        return
    obj.printer.rows(answer.fills, FILL_COLUMNS)


@orders.command()
@click.argument("order_id")
@click.pass_obj
def cancel(obj: Any, order_id: str) -> None:
    """Cancel one order."""
    obj.printer.record(obj.client.cancel_order(order_id))


@orders.command()
@click.argument("order_id")
@click.option("--qty", type=QUANTITY, help="The new open quantity.")
@click.option("--price", type=PRICE, help="The new limit price.")
@click.pass_obj
def replace(obj: Any, order_id: str, qty: int | None, price: str | None) -> None:
    """Change an order's open quantity and/or price."""
    if qty is None and price is None:
        raise click.UsageError("replace needs --qty, --price or both")
    obj.printer.record(obj.client.replace_order(order_id, qty, price), fills=True)


@orders.command()
@click.argument("order_id")
@click.option("--comment", default="", help="Recorded with the decision.")
@click.pass_obj
def approve(obj: Any, order_id: str, comment: str) -> None:
    """Compliance officers: approve an order held for approval (the order flow routes it)."""
    obj.printer.record(obj.client.decide_approval(order_id, "APPROVE", comment))


@orders.command()
@click.argument("order_id")
@click.option("--comment", default="", help="Recorded with the decision.")
@click.pass_obj
def reject(obj: Any, order_id: str, comment: str) -> None:
    """Compliance officers: reject an order held for approval (it ends REJECTED)."""
    obj.printer.record(obj.client.decide_approval(order_id, "REJECT", comment))


def register(group: click.Group) -> None:
    group.add_command(orders)
