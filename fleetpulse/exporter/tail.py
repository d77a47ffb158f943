"""Counts the records arriving on the alerts and dead-letter topics, from their end at start-up.

A plain consumer (confluent-kafka) with partitions assigned by hand: it joins no group and
commits nothing, so it takes nothing from the dispatcher and leaves no group behind. Each
partition starts at the end offset read when it is first seen (a topic created later is picked
up from its end too), so the counters say what arrived since the exporter started, as Prometheus
counters do. Kafka being down only delays the tail: it keeps retrying, counting each failure.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

log = logging.getLogger(__name__)
LOG_EVERY_S = 60.0  # the same librdkafka complaint (a refused connection) at most this often


class Throttle(logging.Filter):
    """Lets one librdkafka log line of a kind through per :data:`LOG_EVERY_S`: a broker that is
    down makes the client retry, and log, many times a second."""

    def __init__(self, every_s: float = LOG_EVERY_S) -> None:
        super().__init__()
        self.every_s = every_s
        self._last: dict[str, float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        kind = str(record.args[0]) if isinstance(record.args, tuple) and record.args else ""
        now = time.monotonic()
        if now - self._last.get(kind, -self.every_s) < self.every_s:
            return False
        self._last[kind] = now
        return True


client_log = logging.getLogger(f"{__name__}.librdkafka")
client_log.addFilter(Throttle())
Handler = Callable[[bytes | None], None]
METADATA_REFRESH_S = 30.0  # how often new topics or partitions are looked for
RETRY_S = 5.0  # how soon a failed or incomplete assignment is tried again


class TopicTail(threading.Thread):
    """Feeds every record of ``handlers``' topics to the topic's handler; ``on_error`` is called
    once per failure to reach Kafka (for the scrape error counter)."""

    def __init__(
        self,
        bootstrap: str,
        handlers: Mapping[str, Handler],
        on_error: Callable[[str], None],
        timeout_s: float,
        properties: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(name="exporter-tail", daemon=True)
        self.bootstrap = bootstrap
        self.properties = dict(properties or {})  # the user's, librdkafka names (security)
        self.handlers = dict(handlers)
        self.on_error = on_error
        self.timeout_s = timeout_s
        self._stop_event = threading.Event()
        self._assigned: set[tuple[str, int]] = set()
        self.ready = threading.Event()  # every topic's partitions assigned at a known offset
        self.failure: BaseException | None = None  # what ended the thread, if anything did

    def stop(self) -> None:
        self._stop_event.set()

    def run(self) -> None:
        from confluent_kafka import Consumer

        consumer = Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                # required by the client; never joined (assign, not subscribe) nor committed
                "group.id": "fleetpulse-exporter-tail",
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "client.id": "fleetpulse-exporter",
                "topic.metadata.refresh.interval.ms": int(METADATA_REFRESH_S * 1000),
                "logger": client_log,
                **self.properties,
            }
        )
        try:
            self._loop(consumer)
        except BaseException as exc:  # the exporter reports a dead tail on /healthz
            self.failure = exc
            log.exception("the alerts and dead letters tail stopped")
            raise
        finally:
            consumer.close()

    def _loop(self, consumer: Any) -> None:
        next_lookup = 0.0
        while not self._stop_event.is_set():
            if time.monotonic() >= next_lookup:
                next_lookup = time.monotonic() + (
                    METADATA_REFRESH_S if self._assign_new(consumer) else RETRY_S
                )
            for message in consumer.consume(500, timeout=0.5):
                error = message.error()
                if error is not None:
                    self.on_error(str(error))
                    continue
                handler = self.handlers.get(message.topic() or "")
                if handler is not None:
                    handler(message.value())

    def _assign_new(self, consumer: Any) -> bool:
        """Assign partitions not yet assigned at their current end offset; True when every
        topic has been found and nothing failed."""
        from confluent_kafka import KafkaException, TopicPartition

        try:
            metadata = consumer.list_topics(timeout=self.timeout_s)
            new = [
                (topic, p)
                for topic in self.handlers
                if topic in metadata.topics and metadata.topics[topic].error is None
                for p in metadata.topics[topic].partitions
                if (topic, p) not in self._assigned
            ]
            start = []
            for topic, p in new:
                _low, high = consumer.get_watermark_offsets(
                    TopicPartition(topic, p), timeout=self.timeout_s, cached=False
                )
                start.append(TopicPartition(topic, p, high))
        except KafkaException as exc:
            self.on_error(str(exc))
            return False
        if start:
            consumer.incremental_assign(start)
            self._assigned.update((tp.topic, tp.partition) for tp in start)
        found = {t for t, _ in self._assigned}
        missing = set(self.handlers) - found
        if missing:
            self.on_error(f"topics not found: {', '.join(sorted(missing))}")
            return False
        self.ready.set()
        return True
