"""The matching node, as the order logic sees it: send one request for a symbol, get its answer.

Two failures matter and are kept apart, because they decide what the API may record:
``NodeUnavailable`` - the request never reached a node (cannot connect, frame refused): nothing
happened. ``NodeOutcomeUnknown`` - the request was sent and no readable answer came (timeout,
connection lost, an answer that could not be decoded): the node may have acted on it. Only a
NewOrder is safe to repeat (the node answers a repeated client order id with the existing order,
flagged DUPLICATE), which is how the API resolves it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from meridian.client import (
    HotpathError,
    HotpathOutcomeUnknownError,
    HotpathTimeoutError,
)
from meridian.protocol import Heartbeat, Message

if TYPE_CHECKING:
    from meridian.routing import Router


class NodeUnavailable(Exception):  # noqa: N818 - names the situation, like HotpathUnavailable
    """The request did not reach the matching node."""


class NodeOutcomeUnknown(Exception):  # noqa: N818
    """The request was sent but no readable answer came: it may have been done (an order may be live)."""


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

    def _addresses(self, symbol: str) -> tuple[tuple[str, int], ...]:
        from meridian.routing import RoutingError  # noqa: PLC0415 - boto3 behind it: see services

        try:
            return self._router.provider.table().addresses_for(symbol)
        except RoutingError as exc:
            raise NodeUnavailable(str(exc)) from exc

    def nodes(self) -> list[str]:
        """One entry per shard: its nodes, ``host:port[,host:port]`` (its primary answers)."""
        table = self._router.provider.table()
        return [",".join(f"{host}:{port}" for host, port in shard) for shard in table.shards()]

    def send(self, symbol: str, request: Message) -> NodeAnswer:
        return self.send_to(",".join(f"{host}:{port}" for host, port in self._addresses(symbol)), request)

    def send_to(self, node: str, request: Message) -> NodeAnswer:
        """To a node, or to a replicated shard's primary (``host:port,host:port``): its nodes in turn,
        the last one that answered first. A node that refuses the connection (a standby) is skipped;
        one that took the request and then failed is not retried here (its outcome is unknown: the
        caller resends by client order id)."""
        if "," not in node:
            return self._send_to_node(node, request)
        from meridian.routing import parse_addresses  # noqa: PLC0415 - boto3 behind it: see services

        shard = parse_addresses(node)
        refused: NodeUnavailable | None = None
        for host, port in self._router.failover.ordered(shard):
            try:
                answer = self._send_to_node(f"{host}:{port}", request)
            except NodeUnavailable as exc:
                refused = exc
                continue
            self._router.failover.answered(shard, (host, port))
            return answer
        assert refused is not None
        raise refused

    def _send_to_node(self, node: str, request: Message) -> NodeAnswer:
        host, _, port = node.rpartition(":")
        client = self._router.client(host, int(port))  # logs on with the router's session key
        try:
            answer = client.exchange(request)
        except (HotpathTimeoutError, HotpathOutcomeUnknownError) as exc:  # sent: it may have been done
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
