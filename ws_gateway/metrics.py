"""Prometheus metrics of the gateway, on an injected registry (tests read them).

Names follow Prometheus' conventions (issue #36): the ``fleetpulse_gateway_`` prefix, counters
named without ``_total`` (prometheus_client appends it: the exposed names end in ``_total``),
units in names, the variant in a label; ``process_*`` and ``python_*`` come with the registry.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from alerting.metrics import add_runtime_collectors


class GatewayMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        add_runtime_collectors(registry)
        p = "fleetpulse_gateway_"
        self.connections = Gauge(p + "connections", "Open websocket connections", registry=registry)
        self.subscriptions = Gauge(p + "subscriptions", "Active subscriptions", registry=registry)
        self.messages_sent = Counter(
            p + "messages_sent", "Frames sent to clients", registry=registry
        )
        self.coalesced = Counter(
            p + "coalesced",
            "Queued positions replaced by a newer one of the same truck",
            registry=registry,
        )
        self.dropped = Counter(
            p + "dropped",
            "Queued frames discarded because their client was closed",
            registry=registry,
        )
        self.lagging = Counter(
            p + "lagging_closed", "Clients told they are lagging and closed", registry=registry
        )
        self.refused = Counter(
            p + "refused", "Connections or requests refused", ["reason"], registry=registry
        )
        self.client_errors = Counter(
            p + "client_errors", "Error frames sent", ["code"], registry=registry
        )
        self.stream_entries = Counter(
            p + "stream_entries", "Entries read from stream:positions", registry=registry
        )
        self.stream_lag = Gauge(
            p + "stream_lag_seconds",
            "Wall clock minus the time of the last stream entry routed",
            registry=registry,
        )
        self.queue_wait = Histogram(
            p + "queue_wait_seconds",
            "Time frames waited in client queues (oldest, per flush pass)",
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1, 2, 5),
            registry=registry,
        )
        self.stream_to_write = Histogram(
            p + "stream_to_write_seconds",
            "From the oldest stream entry of a batch (its id's time) to the end of the flush pass "
            "that wrote its frames to the sockets: the gateway's part of the latency",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 1, 2, 5),
            registry=registry,
        )
        self.alerts = Counter(p + "alerts", "Alerts delivered to clients", registry=registry)
        self.snapshots = Counter(p + "snapshots", "Snapshots read from Redis", registry=registry)
        self.snapshot_reads = Counter(
            p + "snapshot_trucks_read",
            "truck: hashes read from Redis for snapshots (charged to the client's rate limit)",
            registry=registry,
        )
        self.expired = Counter(
            p + "tokens_expired",
            "Connections closed because their token expired",
            registry=registry,
        )
        self.alerts_lag = Gauge(
            p + "alerts_lag_records",
            "Records of fleet.alerts the gateway's alert reader has yet to read",
            registry=registry,
        )
        self.alerts_lag.set(float("nan"))  # unknown until the reader first reports
        self.alerts_malformed = Counter(
            p + "alerts_malformed",
            "Records read from fleet.alerts that are not alert events, by reason code",
            ["reason"],
            registry=registry,
        )
