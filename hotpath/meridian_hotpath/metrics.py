"""Node metrics, exposed through a prometheus_client registry.

The per-request counters live in the native core (requests by type and outcome, trades by symbol,
book levels) and in the journal's syncer (fdatasync count and time buckets) and are read at scrape
time; the loop only adds each released batch's latency to a histogram and to a window of recent
latencies (``WindowQuantiles``: log-linear buckets, so the quantile gauges cost a walk over a few
hundred buckets, not a sort). prometheus_client's own Counter and Histogram take a lock and resolve
labels on every update, which would cost more than the rest of a request's bookkeeping. Rare
events (protocol rejects, pauses, connections) use the library's metrics directly.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

# Round trips inside the node run from a few microseconds (heartbeat) to milliseconds (fsync on a
# slow disk); buckets are finer where the alarm thresholds live.
LATENCY_BUCKETS = (
    5e-6, 10e-6, 15e-6, 20e-6, 30e-6, 40e-6, 50e-6, 75e-6, 100e-6, 150e-6, 200e-6, 300e-6,
    500e-6, 750e-6, 1e-3, 2e-3, 3e-3, 5e-3, 7.5e-3, 10e-3,
)  # fmt: skip
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)
QUANTILES = (("p50", 0.50), ("p99", 0.99), ("p999", 0.999))
DEFAULT_RESERVOIR = 10_000


def _bucket(value: int) -> int:
    """Log-linear bucket of a non-negative int: 16 buckets per power of two (within 6.25%)."""
    if value < 32:
        return value
    shift = value.bit_length() - 5
    return (shift << 4) + (value >> shift)


def _bucket_upper(index: int) -> int:
    """The exclusive upper bound of a bucket."""
    if index < 32:
        return index + 1
    shift = (index >> 4) - 1
    return (index - (shift << 4) + 1) << shift


class WindowQuantiles:
    """Quantiles of the most recent ``size`` observations (in nanoseconds), to bucket precision.

    An observation may stand for many equal ones (a batch's requests); the window drops whole
    observations from its old end once it holds more than ``size``.
    """

    def __init__(self, size: int = DEFAULT_RESERVOIR) -> None:
        self.size = size
        self._counts: dict[int, int] = {}
        self._window: deque[tuple[int, int]] = deque()
        self._total = 0

    def add(self, nanoseconds: int, count: int = 1) -> None:
        bucket = _bucket(max(0, nanoseconds))
        self._counts[bucket] = self._counts.get(bucket, 0) + count
        self._window.append((bucket, count))
        self._total += count
        while self._total - self._window[0][1] >= self.size:
            old, n = self._window.popleft()
            self._total -= n
            left = self._counts[old] - n
            if left:
                self._counts[old] = left
            else:
                del self._counts[old]

    def quantiles(self) -> dict[str, float]:
        """name -> seconds (the upper bound of the bucket holding the quantile)."""
        if not self._total:
            return {}
        found: dict[str, float] = {}
        ordered = sorted(self._counts.items())
        for name, q in QUANTILES:
            rank = min(self._total - 1, int(q * self._total))
            seen = 0
            for bucket, count in ordered:
                seen += count
                if seen > rank:
                    found[name] = _bucket_upper(bucket) / 1e9
                    break
        return found


class LoopHistogram:
    """A histogram written by one thread only: no lock, one bisect per observation."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)  # the last one is +Inf
        self.total = 0.0

    def observe(self, value: float, count: int = 1) -> None:
        self.counts[bisect_left(self.bounds, value)] += count  # le is inclusive, hence bisect_left
        self.total += value * count

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
    engine_requests: Callable[[], Mapping[tuple[str, str], int]] = dict  # the core's (type, outcome) counts
    trades: Callable[[], Mapping[str, int]] = dict  # symbol -> trades (the core's counters)
    fsync_buckets: Callable[[], tuple[Sequence[float], Sequence[int], float]] = lambda: ((), (), 0.0)
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
        self.latency_window = WindowQuantiles(reservoir_size)
        self.requests: dict[tuple[str, str], int] = {}  # (type, outcome) -> answered, beyond the core's
        self.latency: dict[str, LoopHistogram] = {}  # request kind -> received -> answer written
        self.batch_size = LoopHistogram(BATCH_BUCKETS)
        r = self.registry
        # process_cpu_seconds_total & co.: the node's CPU per order on the dashboards and alerts.
        ProcessCollector(registry=r)
        self.connections = Gauge("meridian_connections", "Open client connections", registry=r)
        self.connections_accepted = Counter(
            "meridian_connections_accepted", "Client connections accepted", registry=r
        )
        self.protocol_rejects = Counter(
            "meridian_protocol_rejects", "Malformed frames answered with ProtocolReject", ["code"], registry=r
        )
        self.logons = Counter(
            "meridian_logons", "Sessions logged on to the matching port, by role", ["role"], registry=r
        )
        self.backpressure_pauses = Counter(
            "meridian_backpressure_pauses",
            "Times a client's reading was paused because its writes backed up",
            registry=r,
        )
        self.gc_pauses = LoopHistogram(LATENCY_BUCKETS)
        r.register(self)

    # ---- updates (event loop thread) -------------------------------------------------------------

    def count_request(self, request_type: str, outcome: str) -> None:
        key = (request_type, outcome)
        self.requests[key] = self.requests.get(key, 0) + 1

    def observe_latency_n(self, request_type: str, seconds: float, count: int) -> None:
        """``count`` requests of one kind answered ``seconds`` after their bytes were read."""
        histogram = self.latency.get(request_type)
        if histogram is None:
            histogram = self.latency[request_type] = LoopHistogram(LATENCY_BUCKETS)
        histogram.observe(seconds, count)
        if request_type != "heartbeat":
            self.latency_window.add(int(seconds * 1e9), count)

    def observe_latency(self, request_type: str, seconds: float) -> None:
        self.observe_latency_n(request_type, seconds, 1)

    def observe_commit(self, records: int) -> None:
        self.batch_size.observe(records)

    # ---- scrape ----------------------------------------------------------------------------------

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "meridian_requests", "Requests answered, by message type and outcome", labels=["type", "outcome"]
        )
        for (request_type, outcome), count in sorted(
            {**self.state.engine_requests(), **self.requests}.items()
        ):
            requests.add_metric([request_type, outcome], count)
        yield requests
        trades = CounterMetricFamily("meridian_trades", "Trades executed", labels=["symbol"])
        for symbol, count in sorted(self.state.trades().items()):
            trades.add_metric([symbol], count)
        yield trades
        latency = HistogramMetricFamily(
            "meridian_request_latency_seconds", "Request received -> answer written", labels=["type"]
        )
        for request_type, histogram in sorted(self.latency.items()):
            latency.add_metric([request_type], histogram.cumulative(), histogram.total)
        yield latency
        bounds, counts, total = self.state.fsync_buckets()
        fsync = HistogramMetricFamily(
            "meridian_journal_fsync_seconds", "Journal fdatasync (the syncer thread's)"
        )
        running, buckets = 0, []
        for bound, count in zip(bounds, counts, strict=True):
            running += count
            buckets.append(("+Inf" if bound == float("inf") else _bound_label(bound), float(running)))
        if buckets:
            fsync.add_metric([], buckets, total)
        yield fsync
        yield _histogram("meridian_journal_batch_records", "Records per journal write", self.batch_size)
        yield _histogram(
            "meridian_gc_pause_seconds", "Python garbage collections on the node", self.gc_pauses
        )
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
        for name, value in self.latency_window.quantiles().items():
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
