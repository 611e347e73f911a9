"""Which matching node owns a symbol: the routing table the Lambdas read from configuration.

The fleet shards symbols across nodes. The table is JSON::

    {"default": "10.0.1.10:9001,10.0.1.20:9001", "symbols": {"MSFT": "10.0.1.11:9001"}}

A replicated shard lists its nodes, comma-separated: only its primary accepts connections (a standby
refuses them until it takes over), so a client tries them in order and keeps to the one that
answered (``failover``). An order whose answer was lost in a takeover is resent with the same
client order id: the new primary holds it (it was replicated before it was acknowledged) and
answers it as a duplicate, so it is never entered twice.

and comes either from the environment variable ``MERIDIAN_ROUTES`` (static) or from the SSM
parameter named by ``MERIDIAN_ROUTES_PARAMETER`` (re-read after a short TTL). Adding a node or
moving a symbol is a configuration change: the next read of the table routes accordingly.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from meridian import aws_clients
from meridian.client import DEFAULT_CONNECT_TIMEOUT, DEFAULT_TIMEOUT, HotpathClient
from meridian.session_auth import SessionKey, credential_from_environment

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


def parse_addresses(text: str) -> tuple[Address, ...]:
    """A shard's nodes, ``host:port[,host:port...]``."""
    return tuple(parse_address(part.strip()) for part in text.split(","))


@dataclass(frozen=True, slots=True)
class RouteTable:
    default: tuple[Address, ...] | None = None
    symbols: Mapping[str, tuple[Address, ...]] = field(default_factory=dict)

    def addresses_for(self, symbol: str) -> tuple[Address, ...]:
        """The nodes of the shard that owns ``symbol`` (its primary among them)."""
        addresses = self.symbols.get(symbol, self.default)
        if addresses is None:
            raise RoutingError(f"no matching node is configured for {symbol!r}")
        return addresses

    def address_for(self, symbol: str) -> Address:
        return self.addresses_for(symbol)[0]

    def shards(self) -> list[tuple[Address, ...]]:
        found = set(self.symbols.values()) | ({self.default} if self.default else set())
        return sorted(found)

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
            default=parse_addresses(default) if default is not None else None,
            symbols={symbol: parse_addresses(address) for symbol, address in symbols.items()},
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
            self._client = aws_clients.client("ssm")
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
        credential: SessionKey | None = None,
    ) -> None:
        self.provider = provider
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.credential = credential  # the session key the clients log on with
        self.failover = FAILOVER

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Router:
        """Routes and the session key from the environment (``meridian.session_auth``)."""
        return cls(provider_from_environment(environ), credential=credential_from_environment(environ))

    def client(self, host: str, port: int) -> HotpathClient:
        return HotpathClient(
            host, port, timeout=self.timeout, connect_timeout=self.connect_timeout, credential=self.credential
        )

    def addresses_for(self, symbol: str) -> tuple[Address, ...]:
        """The shard's nodes, the one that last answered first."""
        return self.failover.ordered(self.provider.table().addresses_for(symbol))

    def address_for(self, symbol: str) -> Address:
        return self.addresses_for(symbol)[0]

    def client_for(self, symbol: str) -> HotpathClient:
        """A client for the node of ``symbol``'s shard that accepts a connection (its primary).
        Clients are cheap: the sockets behind them are pooled per address by the client module."""
        addresses = self.addresses_for(symbol)
        for address in addresses:
            if len(addresses) == 1 or self.failover.reachable(address, self.connect_timeout):
                return self.client(*address)
        return self.client(*addresses[0])


class Failover:
    """Which node of each replicated shard answered last (a process-wide memory, like the pool)."""

    def __init__(self) -> None:
        self._preferred: dict[tuple[Address, ...], Address] = {}
        self._lock = threading.Lock()

    def ordered(self, addresses: tuple[Address, ...]) -> tuple[Address, ...]:
        with self._lock:
            preferred = self._preferred.get(addresses)
        if preferred is None or preferred == addresses[0]:
            return addresses
        return (preferred, *(address for address in addresses if address != preferred))

    def answered(self, addresses: tuple[Address, ...], address: Address) -> None:
        with self._lock:
            self._preferred[addresses] = address

    def reachable(self, address: Address, timeout: float) -> bool:
        """Whether ``address`` accepts a connection (a standby refuses them)."""
        try:
            socket.create_connection(address, timeout=timeout).close()
        except OSError:
            return False
        for shard in [s for s in list(self._preferred) if address in s]:
            self.answered(shard, address)
        return True


FAILOVER = Failover()
