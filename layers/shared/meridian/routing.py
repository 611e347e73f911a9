"""Which matching node owns a symbol: the routing table the Lambdas read from configuration.

The fleet shards symbols across nodes. The table is JSON::

    {"default": "10.0.1.10:9001", "symbols": {"MSFT": "10.0.1.11:9001"}}

and comes either from the environment variable ``MERIDIAN_ROUTES`` (static) or from the SSM
parameter named by ``MERIDIAN_ROUTES_PARAMETER`` (re-read after a short TTL). Adding a node or
moving a symbol is a configuration change: the next read of the table routes accordingly.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import boto3

from meridian.client import DEFAULT_CONNECT_TIMEOUT, DEFAULT_TIMEOUT, HotpathClient

log = logging.getLogger(__name__)

ROUTES_ENV = "MERIDIAN_ROUTES"
ROUTES_PARAMETER_ENV = "MERIDIAN_ROUTES_PARAMETER"
DEFAULT_TTL_SECONDS = 10.0


class RoutingError(Exception):
    """The routing configuration is missing, malformed or has no node for a symbol."""


Address = tuple[str, int]


def parse_address(text: str) -> Address:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise RoutingError(f"node address must be host:port, got {text!r}")
    return host.strip("[]"), int(port)


@dataclass(frozen=True, slots=True)
class RouteTable:
    default: Address | None = None
    symbols: Mapping[str, Address] = field(default_factory=dict)

    def address_for(self, symbol: str) -> Address:
        address = self.symbols.get(symbol, self.default)
        if address is None:
            raise RoutingError(f"no matching node is configured for {symbol!r}")
        return address

    @classmethod
    def from_json(cls, text: str) -> RouteTable:
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            raise RoutingError(f"routing table is not JSON: {exc}") from None
        return cls.from_mapping(raw)

    @classmethod
    def from_mapping(cls, raw: Any) -> RouteTable:
        if not isinstance(raw, dict) or not set(raw) <= {"default", "symbols"}:
            raise RoutingError('routing table must be {"default": "host:port", "symbols": {...}}')
        default = raw.get("default")
        symbols = raw.get("symbols", {})
        if default is not None and not isinstance(default, str):
            raise RoutingError("routing table: default must be a host:port string")
        if not isinstance(symbols, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in symbols.items()
        ):
            raise RoutingError("routing table: symbols must map symbols to host:port strings")
        if default is None and not symbols:
            raise RoutingError("routing table names no node")
        return cls(
            default=parse_address(default) if default is not None else None,
            symbols={symbol: parse_address(address) for symbol, address in symbols.items()},
        )


class RouteProvider(Protocol):
    def table(self) -> RouteTable: ...


class StaticRoutes:
    def __init__(self, table: RouteTable) -> None:
        self._table = table

    def table(self) -> RouteTable:
        return self._table


class SsmRoutes:
    """The table in an SSM String parameter, cached for ``ttl`` seconds.

    If SSM fails after a successful read, the last table keeps serving (a routing table changes
    rarely; refusing every order because SSM blinked would be worse), and the next call retries.
    """

    def __init__(
        self,
        parameter_name: str,
        ttl: float = DEFAULT_TTL_SECONDS,
        client: Any = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.parameter_name = parameter_name
        self.ttl = ttl
        self._client = client
        self._clock = clock
        self._cached: RouteTable | None = None
        self._expires = 0.0
        self._lock = threading.Lock()

    def _ssm(self) -> Any:
        if self._client is None:
            self._client = boto3.client("ssm")
        return self._client

    def table(self) -> RouteTable:
        with self._lock:
            now = self._clock()
            if self._cached is not None and now < self._expires:
                return self._cached
            try:
                response = self._ssm().get_parameter(Name=self.parameter_name, WithDecryption=True)
                table = RouteTable.from_json(response["Parameter"]["Value"])
            except RoutingError:
                raise
            except Exception as exc:
                if self._cached is None:
                    raise RoutingError(f"cannot read routing parameter {self.parameter_name}: {exc}") from exc
                log.warning(
                    "routing parameter %s unreadable, keeping the last table: %r", self.parameter_name, exc
                )
                return self._cached
            self._cached, self._expires = table, now + self.ttl
            return table


def provider_from_environment(environ: Mapping[str, str] | None = None) -> RouteProvider:
    """SSM when ``MERIDIAN_ROUTES_PARAMETER`` is set, else the JSON in ``MERIDIAN_ROUTES``."""
    env = os.environ if environ is None else environ
    parameter = env.get(ROUTES_PARAMETER_ENV)
    if parameter:
        return SsmRoutes(parameter)
    static = env.get(ROUTES_ENV)
    if static:
        return StaticRoutes(RouteTable.from_json(static))
    raise RoutingError(f"set {ROUTES_PARAMETER_ENV} or {ROUTES_ENV} to route orders to matching nodes")


class Router:
    def __init__(
        self,
        provider: RouteProvider,
        timeout: float = DEFAULT_TIMEOUT,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
    ) -> None:
        self.provider = provider
        self.timeout = timeout
        self.connect_timeout = connect_timeout

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Router:
        return cls(provider_from_environment(environ))

    def address_for(self, symbol: str) -> Address:
        return self.provider.table().address_for(symbol)

    def client_for(self, symbol: str) -> HotpathClient:
        # Clients are cheap: the sockets behind them are pooled per address by the client module.
        host, port = self.address_for(symbol)
        return HotpathClient(host, port, timeout=self.timeout, connect_timeout=self.connect_timeout)
