"""The symbol-move runbook's steps (statemachines/symbol-move.asl.json, docs/runbooks/symbol-move.md).

Each step validates the runbook's input (``{"symbol", "source", "destination"}``, shards as
``host:port[,host:port]``), reaches each shard's primary with the admin and the orders session keys,
and runs one step of ``meridian.symbol_move``; every step re-reads the nodes, so any of them may run
again. Error class names are what the state machine catches: ``MoveInputError`` and
``UnknownSymbolError`` (nothing was touched), ``MoveVerificationError``, ``MoveConfigError``,
``SymbolMoveError`` (from ``meridian.symbol_move``) and the hot-path client's transient errors.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from meridian import symbol_move
from meridian.client import BookExportRefusedError, HotpathClient
from meridian.domain import SYMBOL_LEN, RejectReason
from meridian.routing import (
    Address,
    Router,
    RouteTable,
    RoutingError,
    StaticRoutes,
    parse_address,
    parse_addresses,
)
from meridian.session_auth import KEY_FILE_ENV, KEY_SECRET_ENV, SessionKey, credential_from_environment

ORDERS_KEY_SECRET_ENV = "MERIDIAN_HOTPATH_ORDERS_KEY_SECRET_ARN"  # noqa: S105 - names a variable holding an ARN
ORDERS_KEY_FILE_ENV = "MERIDIAN_HOTPATH_ORDERS_KEY_FILE"
NODE_TIMEOUT_SECONDS = 5.0  # per answer; a copy of thousands of orders is pipelined on one connection
CONNECT_TIMEOUT_SECONDS = 1.0


class MoveInputError(ValueError):
    """The runbook's input names no valid move; nothing was touched."""


class UnknownSymbolError(MoveInputError):
    """A shard of the move does not list the symbol; nothing was touched."""


class MoveVerificationError(Exception):
    """The destination's book, the source's or the route is not what the move's reports say."""


class MoveConfigError(RuntimeError):
    """The function lacks a session key or the route parameter."""


def _nodes(text: str) -> tuple[Address, ...]:
    try:
        return parse_addresses(text)
    except RoutingError as exc:
        raise ValueError(str(exc)) from None


class MoveRequest(BaseModel):
    """``{"symbol", "source", "destination"}``: the symbol and the two shards' node strings."""

    # built on first use: only the symbol-move functions validate these, the other runbook tasks
    # share this package and never do
    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True, defer_build=True)

    symbol: str = Field(min_length=1, max_length=SYMBOL_LEN, pattern=r"^[\x21-\x7e]+$")
    source: str = Field(min_length=3, description="the shard trading the symbol, host:port[,host:port]")
    destination: str = Field(min_length=3, description="the shard taking it over, host:port[,host:port]")

    @model_validator(mode="after")
    def _two_shards(self) -> MoveRequest:
        source, destination = _nodes(self.source), _nodes(self.destination)
        if set(source) & set(destination):
            raise ValueError("source and destination are the same shard")
        return self

    @property
    def source_nodes(self) -> tuple[Address, ...]:
        return _nodes(self.source)

    @property
    def destination_nodes(self) -> tuple[Address, ...]:
        return _nodes(self.destination)


class CopyResult(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    source_seq: int
    orders: int  # working on the source when the copy was made (0 on a re-run after the removal)
    copied: int
    already_copied: int
    copies: dict[str, int]  # "account|client order id" -> the copy's order id on the destination


class RemoveResult(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    removed: int
    finished_meanwhile: int
    left_on_source: int


class PointResult(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    pointed: int
    not_api_orders: int
    closed_copies_cancelled: int


class VerifyRequest(MoveRequest):
    copy_report: CopyResult = Field(alias="copy")
    remove: RemoveResult
    point: PointResult


_R = TypeVar("_R", bound=MoveRequest)


def parse_request(event: Mapping[str, Any], model: type[_R]) -> _R:
    """The step's input, or ``MoveInputError`` naming every problem."""
    try:
        return model.model_validate(dict(event))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'input'}: {e['msg']}" for e in exc.errors()
        )
        raise MoveInputError(f"invalid symbol-move input: {problems}") from None


def check_routes(request: MoveRequest, table: RouteTable, fleet: str = "") -> None:
    """Both shards are shards of the route table or of the fleet (``fleet``: one ``host:port`` per
    shard, comma separated, as the hot path's ShardAddresses output lists them; a new shard owns no
    symbol yet), and the symbol is routed to one of them (the source before the route switches, the
    destination after: a re-run finds either)."""
    shards = table.shards()
    try:
        shards += [(parse_address(entry.strip()),) for entry in fleet.split(",") if entry.strip()]
    except RoutingError as exc:
        raise MoveConfigError(f"MERIDIAN_SHARD_ADDRESSES: {exc}") from None
    for role, nodes in (("source", request.source_nodes), ("destination", request.destination_nodes)):
        if nodes not in shards:
            raise MoveInputError(
                f"{role} {getattr(request, role)} is not a shard of the route table "
                f"({', '.join(_text(s) for s in shards)})"
            )
    try:
        current = table.addresses_for(request.symbol)
    except RoutingError as exc:
        raise UnknownSymbolError(str(exc)) from None
    if current not in (request.source_nodes, request.destination_nodes):
        raise MoveInputError(
            f"{request.symbol} is routed to {_text(current)}, neither the source nor the destination"
        )


def _text(nodes: tuple[Address, ...]) -> str:
    return ",".join(f"{host}:{port}" for host, port in nodes)


# ---- the nodes ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SessionKeys:
    admin: SessionKey | None  # HALT, RESUME, BOOK_EXPORT
    orders: SessionKey | None  # the copies and the cancels


def session_keys_from_environment(environ: Mapping[str, str] | None = None) -> SessionKeys:
    """The admin key (``MERIDIAN_HOTPATH_KEY_SECRET_ARN`` / ``_KEY_FILE``) and the orders key
    (``MERIDIAN_HOTPATH_ORDERS_KEY_SECRET_ARN`` / ``_ORDERS_KEY_FILE``); neither: open nodes (local)."""
    env = os.environ if environ is None else environ
    admin = credential_from_environment(env)
    orders_arn, orders_file = env.get(ORDERS_KEY_SECRET_ENV, ""), env.get(ORDERS_KEY_FILE_ENV, "")
    orders_source = {KEY_SECRET_ENV: orders_arn} if orders_arn else {KEY_FILE_ENV: orders_file}
    orders = credential_from_environment(orders_source) if orders_arn or orders_file else None
    if (admin is None) != (orders is None):
        missing = "orders" if orders is None else "admin"
        raise MoveConfigError(f"a symbol move needs both session keys; the {missing} key is not configured")
    return SessionKeys(admin, orders)


def shard_client(nodes: tuple[Address, ...], credential: SessionKey | None) -> HotpathClient:
    """A client for the shard's node that accepts connections (its primary; a standby refuses them)."""
    router = Router(
        StaticRoutes(RouteTable(default=nodes)),
        timeout=NODE_TIMEOUT_SECONDS,
        connect_timeout=CONNECT_TIMEOUT_SECONDS,
        credential=credential,
    )
    return router.client_for("*")


@dataclass(frozen=True, slots=True)
class Shards:
    source_admin: HotpathClient
    source_orders: HotpathClient
    destination_admin: HotpathClient
    destination_orders: HotpathClient

    @classmethod
    def connect(cls, request: MoveRequest, keys: SessionKeys) -> Shards:
        return cls(
            shard_client(request.source_nodes, keys.admin),
            shard_client(request.source_nodes, keys.orders),
            shard_client(request.destination_nodes, keys.admin),
            shard_client(request.destination_nodes, keys.orders),
        )


# ---- the steps ---------------------------------------------------------------------------------------


def _listed(admin: HotpathClient, symbol: str, role: str) -> None:
    """UnknownSymbolError if the node does not list ``symbol`` (a read: nothing changes)."""
    try:
        admin.export_book(symbol)
    except BookExportRefusedError as exc:
        if exc.reason is RejectReason.UNKNOWN_SYMBOL:
            raise UnknownSymbolError(f"the {role} shard ({admin!r}) does not list {symbol}") from None
        # SYMBOL_NOT_HALTED: listed, and trading


def halt_source(request: MoveRequest, shards: Shards) -> dict[str, Any]:
    """Step 1, after checking that both shards list the symbol: nothing trades it on the source."""
    _listed(shards.source_admin, request.symbol, "source")
    _listed(shards.destination_admin, request.symbol, "destination")
    return {"halted_seq": symbol_move.halt(shards.source_admin, request.symbol)}


def _key(account: str, client_order_id: str) -> str:
    return f"{account}|{client_order_id}"


def copy_book(request: MoveRequest, shards: Shards) -> CopyResult:
    """Step 2. On a re-run after the removal (nothing left on the source), the copies reported are
    the ones the destination holds, so the verify step still has them."""
    report = symbol_move.copy_book(
        shards.source_admin, shards.destination_admin, shards.destination_orders, request.symbol
    )
    if report.orders:
        copies = {_key(*key): order_id for key, order_id in report.destination.items()}
    else:
        held = shards.destination_admin.export_book(request.symbol).orders
        copies = {_key(o.account, o.client_order_id): o.order_id for o in held}
    return CopyResult(
        source_seq=report.source_seq,
        orders=report.orders,
        copied=report.copied,
        already_copied=report.already_copied,
        copies=copies,
    )


def remove_from_source(request: MoveRequest, shards: Shards) -> RemoveResult:
    """Step 3: each copied order is cancelled on the source (its copy too if its owner beat us)."""
    report = symbol_move.remove_from_source(
        shards.source_admin,
        shards.source_orders,
        shards.destination_admin,
        shards.destination_orders,
        request.symbol,
    )
    if report.left_on_source:
        raise symbol_move.SymbolMoveError(
            f"{report.left_on_source} of {request.symbol}'s orders are still working on the source"
        )
    return RemoveResult(
        removed=report.removed, finished_meanwhile=report.finished_meanwhile, left_on_source=0
    )


def point_records(request: MoveRequest, shards: Shards, dynamodb: Any, orders_table: str) -> PointResult:
    """Step 4a: the order records name the copies (node string of the destination shard)."""
    if not orders_table:
        raise MoveConfigError("ORDERS_TABLE is not configured")
    report = symbol_move.point_records(
        dynamodb,
        orders_table,
        shards.destination_admin,
        shards.destination_orders,
        request.destination,
        request.symbol,
    )
    return PointResult(
        pointed=report.pointed,
        not_api_orders=report.not_api_orders,
        closed_copies_cancelled=report.closed_copies_cancelled,
    )


def switch_route(request: MoveRequest, ssm: Any, parameter: str) -> dict[str, Any]:
    """Step 4b: the route table sends the symbol to the destination (False: it already did)."""
    if not parameter:
        raise MoveConfigError("MERIDIAN_ROUTES_PARAMETER is not configured")
    return {"switched": symbol_move.switch_route(ssm, parameter, request.symbol, request.destination)}


def verify(request: VerifyRequest, shards: Shards, table: RouteTable) -> dict[str, Any]:
    """Before the destination resumes: the source holds none of the symbol's orders, every order on
    the (halted) destination is a copy the copy step reported, with the same order id, and no more
    of them than were copied less those cancelled since; the route names the destination."""
    symbol = request.symbol
    problems: list[str] = []
    left = shards.source_admin.export_book(symbol).orders  # halted since step 1: exportable
    if left:
        problems.append(f"{len(left)} orders still work on the source")
    held = shards.destination_admin.export_book(symbol).orders
    copies = request.copy_report.copies
    strangers = [o for o in held if _key(o.account, o.client_order_id) not in copies]
    if strangers:
        problems.append(
            f"{len(strangers)} orders on the destination were not copied, e.g. "
            f"{_key(strangers[0].account, strangers[0].client_order_id)}"
        )
    renamed = [o for o in held if copies.get(_key(o.account, o.client_order_id), o.order_id) != o.order_id]
    if renamed:
        problems.append(f"{len(renamed)} copies have another order id than the copy step reported")
    expected = len(copies) - request.remove.finished_meanwhile - request.point.closed_copies_cancelled
    if len(held) > expected:
        problems.append(f"{len(held)} orders on the destination, at most {expected} expected")
    if table.addresses_for(symbol) != request.destination_nodes:
        problems.append(f"the route table sends {symbol} to {_text(table.addresses_for(symbol))}")
    if problems:
        raise MoveVerificationError(f"move of {symbol}: " + "; ".join(problems))
    return {
        "orders": len(held),
        "cancelled_since": expected - len(held),  # by their owners, on the destination after the switch
        "verified": True,
    }


def resume_destination(request: MoveRequest, shards: Shards) -> dict[str, Any]:
    """Step 5: the symbol trades on the destination."""
    return {"resumed_seq": symbol_move.resume(shards.destination_admin, request.symbol)}


def keep_halted(request: MoveRequest, shards: Shards) -> dict[str, str]:
    """After a failure: the symbol halted on both shards (each tried, whatever the other does);
    never resumed here. What each halt answered, for the operator."""
    outcome: dict[str, str] = {}
    for role, admin in (("source", shards.source_admin), ("destination", shards.destination_admin)):
        try:
            outcome[role] = f"halted at seq {symbol_move.halt(admin, request.symbol)}"
        except Exception as exc:  # reported to the operator; the other shard is still tried
            outcome[role] = f"not halted: {type(exc).__name__}: {exc}"
    return outcome
