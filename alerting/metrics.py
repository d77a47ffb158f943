"""Prometheus metrics (registry injectable) and the ``/metrics`` + ``/healthz`` HTTP server.

Names follow Prometheus' conventions (issue #36): the ``fleetpulse_alerting_`` prefix, counters
named without ``_total`` (prometheus_client appends it), units in names (``_seconds``), the
variant in a label. Each registry also carries the process and Python runtime collectors, so
``process_*`` and ``python_*`` are exported as by the default registry.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


def add_runtime_collectors(registry: CollectorRegistry) -> None:
    """``process_*`` (CPU, memory, open files, start time), ``python_info`` and ``python_gc_*``
    on a service's own registry. The default registry has them already (registering them twice
    would raise)."""
    if registry is REGISTRY:
        return
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        add_runtime_collectors(r)
        self.records = Counter(
            "fleetpulse_alerting_records", "Records read from fleet.alerts", ["outcome"], registry=r
        )  # accepted | malformed
        # malformed records whose dead letter could not be written either (each one is logged
        # with its partition and offset); the dispatcher goes on reading
        self.dlq_write_failures = Counter(
            "fleetpulse_alerting_dlq_write_failures",
            "Dead letters that could not be written to fleet.dlq",
            registry=r,
        )
        self.deliveries = Counter(
            "fleetpulse_alerting_deliveries",
            "Delivery attempts by receiver and outcome",
            ["receiver", "outcome"],
            registry=r,
        )
        # outcome: delivered | retry | dead_letter | skipped (a resolve for a key the receiver
        # never accepted)
        self.retries = Counter(
            "fleetpulse_alerting_retries", "Retries scheduled", ["receiver"], registry=r
        )
        self.dead_letters = Counter(
            "fleetpulse_alerting_dead_letters",
            "Alerts moved to the dead-letter store",
            ["receiver"],
            registry=r,
        )
        self.suppressed = Counter(
            "fleetpulse_alerting_suppressed",
            "Notifications not sent, by reason",
            ["receiver", "reason"],
            registry=r,
        )
        # firing alerts resolved because their source stopped re-asserting them within
        # global.resolve_timeout (issue 29)
        self.timeout_resolves = Counter(
            "fleetpulse_alerting_timeout_resolves",
            "Alerts resolved by the dispatcher: not re-asserted within resolve_timeout",
            registry=r,
        )
        self.latency = Histogram(
            "fleetpulse_alerting_delivery_latency_seconds",
            "From record timestamp on fleet.alerts to HTTP 2xx",
            ["receiver"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.open_alerts = Gauge(
            "fleetpulse_alerting_open_alerts",
            "Alerts triggered and not resolved, per receiver",
            ["receiver"],
            registry=r,
        )
        self.circuit = Gauge(
            "fleetpulse_alerting_circuit_state",
            "Circuit breaker: 0 closed, 1 open, 2 half-open",
            ["receiver"],
            registry=r,
        )
        self.queued = Gauge(
            "fleetpulse_alerting_outbox",
            "Deliveries waiting (retry queue)",
            ["receiver"],
            registry=r,
        )

    def value(self, name: str, **labels: str) -> float:
        v = self.registry.get_sample_value(name, labels)
        return 0.0 if v is None else v


class MetricsServer:
    """Serves ``/metrics`` (Prometheus text) and ``/healthz`` (JSON; 503 when unhealthy)."""

    def __init__(
        self,
        metrics: Metrics | CollectorRegistry,
        port: int,
        health: Callable[[], tuple[bool, dict[str, Any]]],
        host: str = "127.0.0.1",
    ):
        # The dispatcher passes its Metrics; the exporter (fleetpulse.exporter) its registry.
        registry = metrics if isinstance(metrics, CollectorRegistry) else metrics.registry

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server API
                if self.path.startswith("/metrics"):
                    body, ctype, code = generate_latest(registry), CONTENT_TYPE_LATEST, 200
                elif self.path.startswith("/healthz"):
                    ok, detail = health()
                    body = orjson.dumps({"status": "ok" if ok else "unhealthy", **detail})
                    ctype, code = "application/json", 200 if ok else 503
                else:
                    body, ctype, code = b"not found\n", "text/plain", 404
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(
            target=self.server.serve_forever, name="metrics", daemon=True
        )

    def start(self) -> MetricsServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
