"""The order API's operations as methods returning the SDK's models (``models.py``, generated from
the API's contract); a refusal raises ``ApiError`` with the API's error code and field details.

Requests are built from the generated request models, so a field the API does not take fails here,
before a request is signed. Every answer is parsed into its model; a model reads like the JSON it
came from too (``order["status"]``), so callers written against the JSON keep working.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, TypeVar

import requests
from botocore.credentials import Credentials
from pydantic import BaseModel

from meridian_client import models
from meridian_client.auth import SigV4RequestAuth

DEFAULT_TIMEOUT_S = 10.0
ModelT = TypeVar("ModelT", bound=BaseModel)


class ApiError(Exception):
    """The API refused a request: ``code`` is its machine-readable error, ``details`` its field-level
    findings (``loc``, ``msg``), ``body`` the whole answer."""

    def __init__(self, status: int, code: str, message: str, body: Any = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.body = body

    @property
    def details(self) -> list[models.ErrorDetail]:
        raw = self.body.get("details") if isinstance(self.body, dict) else None
        return [models.ErrorDetail.model_validate(d) for d in raw or [] if isinstance(d, dict)]


class MeridianClient:
    def __init__(
        self,
        base_url: str,
        credentials: Credentials,
        region: str = "us-east-1",
        session: requests.Session | None = None,
        timeout: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.auth = SigV4RequestAuth(credentials, region)
        self.session = session or requests.Session()
        self.timeout = timeout

    def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        """One signed call; the decoded JSON answer (ApiError on 4xx/5xx)."""
        response = self.session.request(
            method,
            self.base_url + path,
            json=json_body,
            params={k: v for k, v in (params or {}).items() if v is not None},
            headers=headers,
            auth=self.auth,
            timeout=self.timeout,
        )
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code >= 400:
            code = body.get("error", "HTTP_ERROR") if isinstance(body, dict) else "HTTP_ERROR"
            message = body.get("message", response.reason) if isinstance(body, dict) else response.text
            raise ApiError(response.status_code, str(code), str(message), body)
        return body

    def _call(self, model: type[ModelT], method: str, path: str, **kwargs: Any) -> ModelT:
        return model.model_validate(self.request(method, path, **kwargs))

    # ---- orders ----------------------------------------------------------------------------------

    def submit_order(
        self,
        symbol: str,
        side: str,
        quantity: int,
        price: str | None = None,
        *,
        order_type: str = "LIMIT",
        time_in_force: str = "GTC",
        client_order_id: str | None = None,
        idempotency_key: str | None = None,
        post_only: bool = False,
        self_trade_prevention: str | None = None,
        stop_price: str | None = None,
    ) -> models.OrderOut:
        request = models.OrderRequest.model_validate(
            {
                "symbol": symbol,
                "side": side.upper(),
                "type": order_type.upper(),
                "time_in_force": time_in_force.upper(),
                "quantity": quantity,
                "price": price,
                "stop_price": stop_price,
                "client_order_id": client_order_id,
                "post_only": post_only,
                "self_trade_prevention": self_trade_prevention.upper() if self_trade_prevention else None,
            }
        )
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        body = request.model_dump(mode="json", exclude_none=True)
        return self._call(models.OrderOut, "POST", "/orders", json_body=body, headers=headers)

    def get_order(self, order_id: str) -> models.OrderOut:
        return self._call(models.OrderOut, "GET", f"/orders/{order_id}")

    def order_fills(self, order_id: str) -> models.FillList:
        return self._call(models.FillList, "GET", f"/orders/{order_id}/fills")

    def list_orders(
        self,
        status: str | None = None,
        symbol: str | None = None,
        limit: int = 50,
        next_token: str | None = None,
        account: str | None = None,
    ) -> models.OrderList:
        params = {
            "status": status,
            "symbol": symbol,
            "limit": limit,
            "next_token": next_token,
            "account": account,
        }
        return self._call(models.OrderList, "GET", "/orders", params=params)

    def all_orders(self, **query: Any) -> Iterator[models.OrderOut]:
        """Every order the query matches, page after page."""
        token = query.pop("next_token", None)
        while True:
            page = self.list_orders(next_token=token, **query)
            yield from page.orders
            token = page.next_token
            if not token:
                return

    def cancel_order(self, order_id: str) -> models.OrderOut:
        return self._call(models.OrderOut, "DELETE", f"/orders/{order_id}")

    def replace_order(
        self, order_id: str, quantity: int | None = None, price: str | None = None
    ) -> models.OrderOut:
        change = models.ReplaceRequest.model_validate({"quantity": quantity, "price": price})
        body = change.model_dump(mode="json", exclude_none=True)
        return self._call(models.OrderOut, "PATCH", f"/orders/{order_id}", json_body=body)

    def decide_approval(self, order_id: str, decision: str, comment: str = "") -> models.OrderOut:
        """A compliance officer's decision on an order held for approval (APPROVE or REJECT)."""
        request = models.ApprovalRequest.model_validate({"decision": decision.upper(), "comment": comment})
        body = request.model_dump(mode="json")
        return self._call(models.OrderOut, "POST", f"/orders/{order_id}/approval", json_body=body)

    # ---- reads and operations ---------------------------------------------------------------------

    def positions(self, account: str | None = None, symbol: str | None = None) -> models.PositionList:
        return self._call(
            models.PositionList, "GET", "/positions", params={"account": account, "symbol": symbol}
        )

    def trades(
        self,
        symbol: str | None = None,
        limit: int = 100,
        next_token: str | None = None,
        account: str | None = None,
    ) -> models.TradeList:
        params = {"symbol": symbol, "limit": limit, "next_token": next_token, "account": account}
        return self._call(models.TradeList, "GET", "/trades", params=params)

    def all_trades(self, **query: Any) -> Iterator[models.TradeOut]:
        token = query.pop("next_token", None)
        while True:
            page = self.trades(next_token=token, **query)
            yield from page.trades
            token = page.next_token
            if not token:
                return

    def market_data(self, symbol: str, trades: int = 10) -> models.MarketDataOut:
        return self._call(models.MarketDataOut, "GET", f"/marketdata/{symbol}", params={"trades": trades})

    def health(self) -> models.HealthOut:
        return self._call(models.HealthOut, "GET", "/health")

    def halt(self, symbol: str | None = None, reason: str = "") -> models.TradingControlOut:
        body = _control(symbol, reason)
        return self._call(models.TradingControlOut, "POST", "/admin/halt", json_body=body)

    def resume(self, symbol: str | None = None, reason: str = "") -> models.TradingControlOut:
        body = _control(symbol, reason)
        return self._call(models.TradingControlOut, "POST", "/admin/resume", json_body=body)


def _control(symbol: str | None, reason: str) -> dict[str, Any]:
    request = models.TradingControlRequest.model_validate({"symbol": symbol, "reason": reason})
    return request.model_dump(mode="json", exclude_none=True)
