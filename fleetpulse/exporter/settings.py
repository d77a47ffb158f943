"""Settings of `fleetpulse exporter`: flags, then FLEETPULSE_* environment, then safe defaults;
checked before anything starts, each error naming its flag."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from fleetpulse.exporter import ExporterError
from fleetpulse.exporter.readings import DEFAULT_REGIONS
from fleetpulse.exporter.sources import normalize_url
from udfs.contract import DEFAULT_TOPICS
from udfs.kafka_properties import NONE, KafkaProperties
from udfs.redis_url import redacted

DEFAULT_PORT = 9108
HOST_PORT = re.compile(r"[^\s:,/]+:\d{1,5}")


@dataclass(frozen=True)
class ExporterSettings:
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    bootstrap: str = "127.0.0.1:9092"
    redis_url: str = "redis://127.0.0.1:6379/0"
    flink_urls: tuple[str, ...] = ()  # none: no Flink gauges
    groups: tuple[str, ...] = ()  # none: every consumer group of the cluster
    alerts_topic: str = DEFAULT_TOPICS.alerts
    dlq_topic: str = DEFAULT_TOPICS.dlq
    regions: tuple[str, ...] = DEFAULT_REGIONS
    cache_s: float = 5.0  # a reading is reused by scrapes for this long
    timeout_s: float = 3.0  # one source's whole read, every call in it included
    label_limit: int = 100  # distinct values per label of the alert and dead-letter counters
    kafka_properties: KafkaProperties = NONE  # the user's Kafka client properties (security)

    def validate(self) -> ExporterSettings:
        if not 0 <= self.port <= 65535:
            raise ExporterError(f"--port must be 0-65535, got {self.port}")
        if not self.host.strip():
            raise ExporterError("--host must not be empty")
        for server in self.bootstrap.split(","):
            if not HOST_PORT.fullmatch(server.strip()):
                raise ExporterError(f"--bootstrap needs HOST:PORT[,HOST:PORT...], got {server!r}")
        if urlsplit(self.redis_url).scheme not in {"redis", "rediss", "unix"}:
            raise ExporterError(
                "--redis-url must be a redis://, rediss:// or unix:// URL, "
                f"got {redacted(self.redis_url)!r}"
            )
        for url in self.flink_urls:
            parts = urlsplit(normalize_url(url))
            if parts.scheme not in {"http", "https"} or not parts.hostname:
                raise ExporterError(f"--flink-url needs [http(s)://]HOST:PORT, got {url!r}")
            try:
                parts.port  # noqa: B018 - raises ValueError for a bad port
            except ValueError:
                raise ExporterError(f"--flink-url has a bad port: {url!r}") from None
        for flag, topic in (("--alerts-topic", self.alerts_topic), ("--dlq-topic", self.dlq_topic)):
            if not re.fullmatch(r"[A-Za-z0-9._-]{1,249}", topic):
                raise ExporterError(f"{flag} is not a Kafka topic name: {topic!r}")
        if not self.regions or not all(re.fullmatch(r"[A-Z0-9_]{1,64}", r) for r in self.regions):
            raise ExporterError(f"--region needs names like WEST, got {list(self.regions)}")
        if not self.cache_s > 0:
            raise ExporterError(f"--cache-seconds must be more than 0, got {self.cache_s}")
        if not 0 < self.timeout_s <= 60:
            raise ExporterError(
                f"--timeout must be more than 0 and at most 60 s, got {self.timeout_s}"
            )
        if self.label_limit < 1:
            raise ExporterError(f"--label-limit must be 1 or more, got {self.label_limit}")
        return self
