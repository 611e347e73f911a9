"""The order API's operations as methods; errors raise ``ApiError`` with the API's error code."""

from __future__ import annotations

from typing import Any

import requests
from botocore.credentials import Credentials

from meridian_client.auth import SigV4RequestAuth

DEFAULT_TIMEOUT_S = 10.0


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, body: Any = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.body = body


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
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "symbol": symbol,
            "side": side.upper(),
            "type": order_type.upper(),
            "time_in_force": time_in_force.upper(),
            "quantity": quantity,
            "post_only": post_only,
        }
        if price is not None:
            body["price"] = price
        if client_order_id is not None:
            body["client_order_id"] = client_order_id
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        result: dict[str, Any] = self.request("POST", "/orders", json_body=body, headers=headers)
        return result

    def get_order(self, order_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self.request("GET", f"/orders/{order_id}")
        return result

    def list_orders(
        self,
        status: str | None = None,
        symbol: str | None = None,
        limit: int = 50,
        next_token: str | None = None,
    ) -> dict[str, Any]:
        params = {"status": status, "symbol": symbol, "limit": limit, "next_token": next_token}
        result: dict[str, Any] = self.request("GET", "/orders", params=params)
        return result

    def cancel_order(self, order_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self.request("DELETE", f"/orders/{order_id}")
        return result

    def replace_order(
        self, order_id: str, quantity: int | None = None, price: str | None = None
    ) -> dict[str, Any]:
        body = {k: v for k, v in (("quantity", quantity), ("price", price)) if v is not None}
        result: dict[str, Any] = self.request("PATCH", f"/orders/{order_id}", json_body=body)
        return result

    # ---- reads and operations ---------------------------------------------------------------------

    def positions(self, account: str | None = None) -> dict[str, Any]:
        result: dict[str, Any] = self.request("GET", "/positions", params={"account": account})
        return result

    def trades(self, symbol: str | None = None, limit: int = 100) -> dict[str, Any]:
        result: dict[str, Any] = self.request("GET", "/trades", params={"symbol": symbol, "limit": limit})
        return result

    def market_data(self, symbol: str, trades: int = 10) -> dict[str, Any]:
        result: dict[str, Any] = self.request("GET", f"/marketdata/{symbol}", params={"trades": trades})
        return result

    def health(self) -> dict[str, Any]:
        result: dict[str, Any] = self.request("GET", "/health")
        return result

    def halt(self, symbol: str | None = None, reason: str = "") -> dict[str, Any]:
        body = {"reason": reason, **({"symbol": symbol} if symbol else {})}
        result: dict[str, Any] = self.request("POST", "/admin/halt", json_body=body)
        return result

    def resume(self, symbol: str | None = None, reason: str = "") -> dict[str, Any]:
        body = {"reason": reason, **({"symbol": symbol} if symbol else {})}
        result: dict[str, Any] = self.request("POST", "/admin/resume", json_body=body)
        return result
