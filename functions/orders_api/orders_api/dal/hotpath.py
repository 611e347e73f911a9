"""The matching node, as the order logic sees it: send one request for a symbol, get its answer.

Two failures matter and are kept apart, because they decide what the API may record:
``NodeUnavailable`` - the request never reached a node (cannot connect, frame refused): nothing
happened. ``NodeOutcomeUnknown`` - the request was sent and no answer came (timeout, connection
lost): the node may have acted on it. Only a NewOrder is safe to repeat (the node answers a repeated
client order id with the existing order, flagged DUPLICATE), which is how the API resolves it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from meridian.client import (
    HotpathClient,
    HotpathConnectionLostError,
    HotpathError,
    HotpathTimeoutError,
)
from meridian.protocol import Heartbeat, Message

if TYPE_CHECKING:
    from meridian.routing import Router


class NodeUnavailable(Exception):  # noqa: N818 - names the situation, like HotpathUnavailable
    """The request did not reach the matching node."""


class NodeOutcomeUnknown(Exception):  # noqa: N818
    """The request was sent but its answer never came."""


@dataclass(frozen=True, slots=True)
class NodeAnswer:
    node: str
    messages: tuple[Message, ...]
    duplicate: bool = False
    replaced: bool = False


class MatchingGateway(Protocol):
    def send(self, symbol: str, request: Message) -> NodeAnswer: ...

    def nodes(self) -> list[str]: ...

    def send_to(self, node: str, request: Message) -> NodeAnswer: ...

    def ping(self) -> bool: ...


class HotpathGateway:
    """The fleet through the shared routing table; a node's id (in execution ids) is its address."""

    def __init__(self, router: Router) -> None:
        self._router = router

    def _address(self, symbol: str) -> tuple[str, int]:
        from meridian.routing import RoutingError  # noqa: PLC0415 - boto3 behind it: see services

        try:
            return self._router.address_for(symbol)
        except RoutingError as exc:
            raise NodeUnavailable(str(exc)) from exc

    def nodes(self) -> list[str]:
        table = self._router.provider.table()
        addresses = set(table.symbols.values()) | ({table.default} if table.default else set())
        return sorted(f"{host}:{port}" for host, port in addresses)

    def send(self, symbol: str, request: Message) -> NodeAnswer:
        host, port = self._address(symbol)
        return self.send_to(f"{host}:{port}", request)

    def send_to(self, node: str, request: Message) -> NodeAnswer:
        host, _, port = node.rpartition(":")
        client = HotpathClient(
            host, int(port), timeout=self._router.timeout, connect_timeout=self._router.connect_timeout
        )
        try:
            answer = client.exchange(request)
        except (HotpathTimeoutError, HotpathConnectionLostError) as exc:
            raise NodeOutcomeUnknown(str(exc)) from exc
        except HotpathError as exc:  # could not connect, or the node refused the frame
            raise NodeUnavailable(str(exc)) from exc
        return NodeAnswer(node, tuple(answer.messages), answer.duplicate, answer.replaced)

    def ping(self) -> bool:
        try:
            nodes = self.nodes()
            for node in nodes:
                self.send_to(node, Heartbeat(0, 0))
        except Exception:
            return False
        return bool(nodes)


class UnroutedGateway:
    """No routing table configured: every order is refused with 503 until one is."""

    def __init__(self, reason: str) -> None:
        self._reason = reason

    def nodes(self) -> list[str]:
        return []

    def send(self, symbol: str, request: Message) -> NodeAnswer:
        raise NodeUnavailable(self._reason)

    def send_to(self, node: str, request: Message) -> NodeAnswer:
        raise NodeUnavailable(self._reason)

    def ping(self) -> bool:
        return False
