"""Node metrics in a Prometheus registry, and the small HTTP endpoint that serves them.

Counters and histograms are updated on the event loop as requests are answered. Values that are
cheap to read but expensive to push on every order (book depth, latency quantiles, market-data
backlog) are computed at scrape time by a collector. The HTTP endpoint runs on the node's own
event loop, so a scrape reads engine state from the engine's thread, never concurrently with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

# Round trips inside the node run from a few microseconds (heartbeat) to milliseconds (fsync on a
# slow disk); buckets are finer where the alarm thresholds live.
LATENCY_BUCKETS = (
    5e-6, 10e-6, 15e-6, 20e-6, 30e-6, 40e-6, 50e-6, 75e-6, 100e-6, 150e-6, 200e-6, 300e-6,
    500e-6, 750e-6, 1e-3, 2e-3, 3e-3, 5e-3, 7.5e-3, 10e-3,
)  # fmt: skip
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)
QUANTILES = (("p50", 0.50), ("p99", 0.99), ("p999", 0.999))
DEFAULT_RESERVOIR = 10_000


class LatencyReservoir:
    """The most recent ``size`` latencies, for quantiles over a rolling window."""

    def __init__(self, size: int = DEFAULT_RESERVOIR) -> None:
        self._samples: list[float] = []
        self._size = size
        self._next = 0

    def add(self, seconds: float) -> None:
        if len(self._samples) < self._size:
            self._samples.append(seconds)
        else:
            self._samples[self._next] = seconds
            self._next = (self._next + 1) % self._size

    def quantiles(self) -> dict[str, float]:
        if not self._samples:
            return {}
        ordered = sorted(self._samples)
        last = len(ordered) - 1
        return {name: ordered[min(last, int(q * len(ordered)))] for name, q in QUANTILES}


@dataclass(slots=True)
class NodeState:
    """Read at scrape time; the node fills these callables in once it exists."""

    seq: Callable[[], int] = lambda: 0
    depth: Callable[[], Mapping[str, tuple[int, int]]] = dict  # symbol -> (bid levels, ask levels)
    extra_gauges: Callable[[], Mapping[str, float]] = dict  # name -> value (market-data backlog...)
    symbols: Callable[[], list[str]] = list
    healthy: Callable[[], bool] = lambda: True
    details: dict[str, str] = field(default_factory=dict)


class _StateCollector(Collector):
    def __init__(self, state: NodeState, latency: LatencyReservoir) -> None:
        self._state = state
        self._latency = latency

    def collect(self) -> Iterator[GaugeMetricFamily]:
        seq = GaugeMetricFamily("meridian_engine_seq", "State-changing inputs processed")
        seq.add_metric([], self._state.seq())
        yield seq
        depth = GaugeMetricFamily(
            "meridian_book_depth_levels", "Price levels in the book", labels=["symbol", "side"]
        )
        for symbol, (bids, asks) in sorted(self._state.depth().items()):
            depth.add_metric([symbol, "bid"], bids)
            depth.add_metric([symbol, "ask"], asks)
        yield depth
        quantiles = GaugeMetricFamily(
            "meridian_request_latency_quantile_seconds",
            "Request received -> answer written, over the most recent requests",
            labels=["quantile"],
        )
        for name, value in self._latency.quantiles().items():
            quantiles.add_metric([name], value)
        yield quantiles
        for name, value in sorted(self._state.extra_gauges().items()):
            gauge = GaugeMetricFamily(name, name.replace("_", " "))
            gauge.add_metric([], value)
            yield gauge


class NodeMetrics:
    def __init__(
        self, registry: CollectorRegistry | None = None, reservoir_size: int = DEFAULT_RESERVOIR
    ) -> None:
        self.registry = registry or CollectorRegistry()
        self.state = NodeState()
        self.latency_reservoir = LatencyReservoir(reservoir_size)
        r = self.registry
        self.requests = Counter(
            "meridian_requests",
            "Requests answered, by message type and outcome",
            ["type", "outcome"],
            registry=r,
        )
        self.trades = Counter("meridian_trades", "Trades executed", ["symbol"], registry=r)
        self.latency = Histogram(
            "meridian_request_latency_seconds",
            "Request received -> answer written",
            ["type"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.fsync_latency = Histogram(
            "meridian_journal_fsync_seconds",
            "Journal fdatasync per batch",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            "meridian_journal_batch_records", "Records per group commit", buckets=BATCH_BUCKETS, registry=r
        )
        self.connections = Gauge("meridian_connections", "Open client connections", registry=r)
        self.connections_accepted = Counter(
            "meridian_connections_accepted", "Client connections accepted", registry=r
        )
        self.protocol_rejects = Counter(
            "meridian_protocol_rejects", "Malformed frames answered with ProtocolReject", ["code"], registry=r
        )
        self.backpressure_pauses = Counter(
            "meridian_backpressure_pauses",
            "Times a client's reading was paused because its writes backed up",
            registry=r,
        )
        self.snapshots = Counter("meridian_snapshots", "Snapshots written", ["outcome"], registry=r)
        r.register(_StateCollector(self.state, self.latency_reservoir))

    def observe_latency(self, request_type: str, seconds: float) -> None:
        self.latency.labels(request_type).observe(seconds)
        self.latency_reservoir.add(seconds)

    def observe_commit(self, fsync_seconds: float, records: int) -> None:
        self.fsync_latency.observe(fsync_seconds)
        self.batch_size.observe(records)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

    def health(self) -> tuple[bool, dict[str, object]]:
        healthy = self.state.healthy()
        body: dict[str, object] = {
            "status": "ok" if healthy else "unavailable",
            "seq": self.state.seq(),
            "symbols": self.state.symbols(),
            **self.state.details,
        }
        return healthy, body


_MAX_REQUEST_HEAD = 8192


async def _answer_http(
    metrics: NodeMetrics, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=5)
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ConnectionError):
        writer.close()
        return
    request_line = head.split(b"\r\n", 1)[0].decode("latin-1").split()
    method, path = [*request_line, "", ""][:2]
    path = path.split("?", 1)[0]
    if method != "GET":
        status, content_type, body = "405 Method Not Allowed", "text/plain", b"method not allowed\n"
    elif path == "/metrics":
        status, content_type, body = "200 OK", CONTENT_TYPE_LATEST, metrics.exposition()
    elif path == "/healthz":
        healthy, health = metrics.health()
        status = "200 OK" if healthy else "503 Service Unavailable"
        content_type, body = "application/json", json.dumps(health).encode()
    else:
        status, content_type, body = "404 Not Found", "text/plain", b"not found\n"
    writer.write(
        f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n".encode()
        + body
    )
    with contextlib.suppress(ConnectionError):
        await writer.drain()
    writer.close()


async def start_metrics_server(metrics: NodeMetrics, host: str, port: int) -> asyncio.Server:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _answer_http(metrics, reader, writer)

    return await asyncio.start_server(handle, host, port, limit=_MAX_REQUEST_HEAD)
