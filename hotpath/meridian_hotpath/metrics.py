"""Node metrics, exposed through a prometheus_client registry.

The per-request metrics (request counts, latency histograms, commit histograms) are plain Python
counters updated on the event loop thread, their only writer, and turned into metric families at
scrape time by a collector: prometheus_client's own Counter and Histogram take a lock and resolve
labels on every update, which cost more than the rest of the request's bookkeeping. Values that
are cheap to read but expensive to push (book depth, latency quantiles, market-data backlog) are
also read at scrape time. Rare events (rejects, pauses, snapshots, connections) use the library's
metrics directly.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from meridian.stats import nearest_rank

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
        return {name: nearest_rank(ordered, q) for name, q in QUANTILES}


class LoopHistogram:
    """A histogram written by one thread only: no lock, one bisect per observation."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)  # the last one is +Inf
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1  # le is inclusive, hence bisect_left
        self.total += value

    def cumulative(self) -> list[tuple[str, float]]:
        buckets, running = [], 0
        for bound, count in zip((*map(_bound_label, self.bounds), "+Inf"), self.counts, strict=True):
            running += count
            buckets.append((bound, float(running)))
        return buckets


def _bound_label(bound: float) -> str:
    return repr(float(bound))  # the exposition format's spelling, e.g. 5e-06, 0.0001, 1.0


@dataclass(slots=True)
class NodeState:
    """Read at scrape time; the node fills these callables in once it exists."""

    seq: Callable[[], int] = lambda: 0
    depth: Callable[[], Mapping[str, tuple[int, int]]] = dict  # symbol -> (bid levels, ask levels)
    extra_gauges: Callable[[], Mapping[str, float]] = dict  # name -> value (market-data backlog...)
    symbols: Callable[[], list[str]] = list
    healthy: Callable[[], bool] = lambda: True
    details: dict[str, str] = field(default_factory=dict)


class NodeMetrics(Collector):
    def __init__(
        self, registry: CollectorRegistry | None = None, reservoir_size: int = DEFAULT_RESERVOIR
    ) -> None:
        self.registry = registry or CollectorRegistry()
        self.state = NodeState()
        self.latency_reservoir = LatencyReservoir(reservoir_size)
        self.requests: dict[tuple[str, str], int] = {}  # (type, outcome) -> answered
        self.trades: dict[str, int] = {}  # symbol -> trades
        self.latency: dict[str, LoopHistogram] = {}  # request type -> received -> answer written
        self.fsync_latency = LoopHistogram(LATENCY_BUCKETS)
        self.batch_size = LoopHistogram(BATCH_BUCKETS)
        r = self.registry
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
        r.register(self)

    # ---- updates (event loop thread) -------------------------------------------------------------

    def count_request(self, request_type: str, outcome: str) -> None:
        key = (request_type, outcome)
        self.requests[key] = self.requests.get(key, 0) + 1

    def count_trade(self, symbol: str) -> None:
        self.trades[symbol] = self.trades.get(symbol, 0) + 1

    def observe_latency(self, request_type: str, seconds: float) -> None:
        histogram = self.latency.get(request_type)
        if histogram is None:
            histogram = self.latency[request_type] = LoopHistogram(LATENCY_BUCKETS)
        histogram.observe(seconds)
        self.latency_reservoir.add(seconds)

    def observe_commit(self, fsync_seconds: float, records: int) -> None:
        self.fsync_latency.observe(fsync_seconds)
        self.batch_size.observe(records)

    # ---- scrape ----------------------------------------------------------------------------------

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "meridian_requests", "Requests answered, by message type and outcome", labels=["type", "outcome"]
        )
        for (request_type, outcome), count in sorted(self.requests.items()):
            requests.add_metric([request_type, outcome], count)
        yield requests
        trades = CounterMetricFamily("meridian_trades", "Trades executed", labels=["symbol"])
        for symbol, count in sorted(self.trades.items()):
            trades.add_metric([symbol], count)
        yield trades
        latency = HistogramMetricFamily(
            "meridian_request_latency_seconds", "Request received -> answer written", labels=["type"]
        )
        for request_type, histogram in sorted(self.latency.items()):
            latency.add_metric([request_type], histogram.cumulative(), histogram.total)
        yield latency
        yield _histogram("meridian_journal_fsync_seconds", "Journal fdatasync per batch", self.fsync_latency)
        yield _histogram("meridian_journal_batch_records", "Records per group commit", self.batch_size)
        yield from self._state_families()

    def _state_families(self) -> Iterator[Metric]:
        seq = GaugeMetricFamily("meridian_engine_seq", "State-changing inputs processed")
        seq.add_metric([], self.state.seq())
        yield seq
        depth = GaugeMetricFamily(
            "meridian_book_depth_levels", "Price levels in the book", labels=["symbol", "side"]
        )
        for symbol, (bids, asks) in sorted(self.state.depth().items()):
            depth.add_metric([symbol, "bid"], bids)
            depth.add_metric([symbol, "ask"], asks)
        yield depth
        quantiles = GaugeMetricFamily(
            "meridian_request_latency_quantile_seconds",
            "Request received -> answer written, over the most recent requests",
            labels=["quantile"],
        )
        for name, value in self.latency_reservoir.quantiles().items():
            quantiles.add_metric([name], value)
        yield quantiles
        for name, value in sorted(self.state.extra_gauges().items()):
            gauge = GaugeMetricFamily(name, name.replace("_", " "))
            gauge.add_metric([], value)
            yield gauge

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


def _histogram(name: str, documentation: str, histogram: LoopHistogram) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, documentation)
    family.add_metric([], histogram.cumulative(), histogram.total)
    return family
