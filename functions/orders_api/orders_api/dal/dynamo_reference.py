"""Principals, RiskLimits and TradingControls tables: small reference data every order needs.

Principals: ``principal`` (an assumed-role session ARN, or ``<role ARN>/*`` for every session of a
role) -> ``user_type``, ``account``. RiskLimits: ``account`` -> limits. TradingControls: ``scope``
("GLOBAL" or "SYMBOL#<symbol>") -> ``halted``, ``restricted``, ``approval_required``. An order's
limits and controls come in one BatchGetItem; ``cached_reference`` keeps them briefly.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from meridian.dynamo_items import from_item, to_item
from orders_api.dal.interfaces import OrderReference, RiskLimits, TradingControl

GLOBAL_SCOPE = "GLOBAL"


def control_key(symbol: str | None) -> str:
    return GLOBAL_SCOPE if symbol is None else f"SYMBOL#{symbol}"


def _control(scope: str, values: Mapping[str, Any] | None) -> TradingControl:
    if not values:
        return TradingControl(scope=scope)
    updated = values.get("updated_at")
    return TradingControl(
        scope=scope,
        halted=bool(values.get("halted", False)),
        restricted=bool(values.get("restricted", False)),
        approval_required=bool(values.get("approval_required", False)),
        reason=str(values.get("reason", "")),
        actor=str(values.get("actor", "")),
        updated_at=datetime.fromisoformat(updated) if updated else None,
    )


def _limits(item: Mapping[str, Any]) -> RiskLimits:
    v = from_item(item)
    open_notional = v.get("max_open_notional")
    return RiskLimits(
        max_order_quantity=int(v["max_order_quantity"]),
        max_notional=Decimal(v["max_notional"]),
        max_open_orders=int(v["max_open_orders"]),
        position_limits={str(k): int(n) for k, n in dict(v.get("position_limits", {})).items()},
        max_open_notional=None if open_notional is None else Decimal(open_notional),
    )


class DynamoReferenceStore:
    def __init__(self, client: Any, principals_table: str, limits_table: str, controls_table: str) -> None:
        self._db = client
        self._principals = principals_table
        self._limits = limits_table
        self._controls = controls_table

    def principal(self, keys: list[str]) -> Mapping[str, Any] | None:
        answer = self._db.batch_get_item(
            RequestItems={self._principals: {"Keys": [to_item({"principal": k}) for k in keys]}}
        )
        found = {}
        for item in answer.get("Responses", {}).get(self._principals, []):
            values = from_item(item)
            found[values["principal"]] = values
        return next((found[k] for k in keys if k in found), None)

    def risk_limits(self, account: str) -> RiskLimits | None:
        item = self._db.get_item(TableName=self._limits, Key=to_item({"account": account})).get("Item")
        return _limits(item) if item else None

    def controls(self, symbol: str) -> tuple[TradingControl, TradingControl]:
        reference = self._read(None, symbol)
        return reference.global_control, reference.symbol_control

    def for_order(self, account: str, symbol: str) -> OrderReference:
        return self._read(account, symbol)

    def is_fresh(self, account: str, symbol: str) -> bool:
        return False

    def _read(self, account: str | None, symbol: str) -> OrderReference:
        """One BatchGetItem: the account's limits (when asked) and the two controls of ``symbol``."""
        scopes = [GLOBAL_SCOPE, control_key(symbol)]
        request: dict[str, Any] = {
            self._controls: {"Keys": [to_item({"scope": s}) for s in scopes], "ConsistentRead": True}
        }
        if account is not None:
            request[self._limits] = {"Keys": [to_item({"account": account})], "ConsistentRead": True}
        found: dict[str, list[dict[str, Any]]] = {}
        while request:
            answer = self._db.batch_get_item(RequestItems=request)
            for table, items in answer.get("Responses", {}).items():
                found.setdefault(table, []).extend(items)
            request = answer.get("UnprocessedKeys") or {}
        controls = {v["scope"]: v for v in map(from_item, found.get(self._controls, []))}
        limits = found.get(self._limits, [])
        return OrderReference(
            limits=_limits(limits[0]) if limits else None,
            global_control=_control(GLOBAL_SCOPE, controls.get(GLOBAL_SCOPE)),
            symbol_control=_control(symbol, controls.get(scopes[1])),
        )

    def set_halted(self, scope: str, halted: bool, actor: str, reason: str, at: datetime) -> TradingControl:
        answer = self._db.update_item(
            TableName=self._controls,
            Key=to_item({"scope": scope}),
            UpdateExpression="SET halted = :h, actor = :a, reason = :r, updated_at = :t",
            ExpressionAttributeValues=to_item(
                {":h": halted, ":a": actor, ":r": reason, ":t": at.isoformat()}
            ),
            ReturnValues="ALL_NEW",
        )
        name = GLOBAL_SCOPE if scope == GLOBAL_SCOPE else scope.removeprefix("SYMBOL#")
        return _control(name, from_item(answer["Attributes"]))
