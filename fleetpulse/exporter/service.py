"""The running exporter: its registry, the tail's counters, the cached gauges and the server."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from alerting.metrics import MetricsServer, add_runtime_collectors
from fleetpulse.exporter.cache import Cached
from fleetpulse.exporter.families import families
from fleetpulse.exporter.readings import Readings
from fleetpulse.exporter.records import RecordLabels
from fleetpulse.exporter.settings import ExporterSettings
from fleetpulse.exporter.sources import (
    FlinkJobs,
    KafkaLag,
    Reader,
    read_redis,
    redis_client,
    source_of,
)
from fleetpulse.exporter.tail import TopicTail

log = logging.getLogger(__name__)


def registry() -> CollectorRegistry:
    """A registry of its own with the process_* and python_* collectors (spec section 3)."""
    r = CollectorRegistry()
    add_runtime_collectors(r)
    return r


class ReadingsCollector(Collector):
    """The gauges, from a reading at most ``cache_s`` old (taken on scrape)."""

    def __init__(self, cached: Cached[Readings]) -> None:
        self.cached = cached

    def collect(self) -> Iterable[Metric]:
        return families(self.cached.get())


class Exporter:
    def __init__(self, settings: ExporterSettings) -> None:
        s = settings
        self.settings = s
        self.registry = registry()
        r = self.registry
        self.alerts = Counter(
            "fleetpulse_alerts",
            "Alert events seen on the alerts topic since the exporter started",
            ["class", "action", "job"],
            registry=r,
        )
        self.dead_letters = Counter(
            "fleetpulse_dead_letters",
            "Records seen on the dead-letter topic since the exporter started",
            ["reason", "source_topic"],
            registry=r,
        )
        self.scrape_errors = Counter(
            "fleetpulse_exporter_scrape_errors",
            "Failed reads of a source (kafka|redis|flink)",
            ["source"],
            registry=r,
        )
        for source in ("kafka", "redis", *(("flink",) if s.flink_urls else ())):
            self.scrape_errors.labels(source)  # 0 from the start: rate() needs a first sample
        self.labels = RecordLabels(s.label_limit)
        self.last_errors: dict[str, str] = {}
        redis = redis_client(s.redis_url, s.timeout_s)
        client = s.kafka_properties.librdkafka()
        lag = KafkaLag(s.bootstrap, s.timeout_s, client)
        self.reader = Reader(
            s.timeout_s,
            redis=lambda: read_redis(redis, s.regions),
            kafka=lambda: lag.read(s.groups),
            flink=[FlinkJobs(url, s.timeout_s) for url in s.flink_urls],
        )
        self.cached = Cached(self.reader.read, s.cache_s, on_refresh=self._count_errors)
        r.register(ReadingsCollector(self.cached))
        self.tail = TopicTail(
            s.bootstrap,
            {s.alerts_topic: self._alert, s.dlq_topic: self._dead_letter},
            on_error=lambda _msg: self.scrape_errors.labels("kafka").inc(),
            timeout_s=s.timeout_s,
            properties=client,
        )
        self.server = MetricsServer(r, s.port, self.health, host=s.host)
        self.started = time.time()

    def _alert(self, value: bytes | None) -> None:
        labels = self.labels.alert(value)
        if labels is not None:
            self.alerts.labels(*labels).inc()

    def _dead_letter(self, value: bytes | None) -> None:
        self.dead_letters.labels(*self.labels.dead_letter(value)).inc()

    def _count_errors(self, readings: Readings) -> None:
        for key, message in readings.errors.items():
            self.scrape_errors.labels(source_of(key)).inc()
            if self.last_errors.get(key) != message:
                log.warning("reading %s failed: %s", key, message)
        self.last_errors = dict(readings.errors)

    def health(self) -> tuple[bool, dict[str, Any]]:
        """Unhealthy only if the tail has died; the sources' last errors are detail."""
        alive = self.tail.is_alive()
        return alive, {
            "tail": "ready" if self.tail.ready.is_set() else ("starting" if alive else "dead"),
            "source_errors": self.last_errors,
            "uptime_s": round(time.time() - self.started, 1),
        }

    def start(self) -> Exporter:
        self.tail.start()
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()
        self.tail.stop()
        self.tail.join(timeout=self.settings.timeout_s + 2)
        self.reader.close()
