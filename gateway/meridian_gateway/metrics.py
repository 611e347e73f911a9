"""The gateway's Prometheus metrics (``/metrics``), on a registry of its own."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class GatewayMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.connections = Gauge("meridian_gateway_connections", "Open WebSocket connections", registry=r)
        self.subscriptions = Gauge("meridian_gateway_subscriptions", "Channel subscriptions", registry=r)
        self.messages = Counter(
            "meridian_gateway_messages_sent", "Messages sent to clients", ["kind"], registry=r
        )
        self.frames = Counter("meridian_gateway_frames_sent", "WebSocket frames sent", registry=r)
        self.fanout_latency = Histogram(
            "meridian_gateway_fanout_latency_seconds",
            "From the node's timestamp of an update to its send, the oldest update of each frame",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.conflated = Counter(
            "meridian_gateway_book_updates_conflated", "Book updates merged into a queued one", registry=r
        )
        self.slow_dropped = Counter(
            "meridian_gateway_slow_consumers_dropped", "Connections closed for a full queue", registry=r
        )
        self.refused = Counter(
            "meridian_gateway_connects_refused", "Connects refused, by reason", ["code"], registry=r
        )
        self.bad_requests = Counter(
            "meridian_gateway_bad_requests", "Client requests answered with an error", ["code"], registry=r
        )
        self.source_records = Counter(
            "meridian_gateway_source_records", "Updates read from the sources", ["source"], registry=r
        )
        self.source_errors = Counter(
            "meridian_gateway_source_errors", "Failed reads of the sources", ["source"], registry=r
        )
