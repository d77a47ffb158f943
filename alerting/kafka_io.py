"""The dispatcher's two Kafka clients, on confluent-kafka (librdkafka): the group consumer of
``fleet.alerts`` and the producer of dead letters, reduced to the calls the service loop makes.

Why not kafka-python, which the dispatcher used before: kafka-python 3.0.12 can lose a group
assignment for good. When a rebalance that a metadata change started (a fresh topic's partitions
arriving just after the first join) completes after ``poll``'s timeout has expired, the next poll
no longer sees a rejoin as needed and never applies the assignment: the broker counts the member
as owner of every partition while it fetches nothing. On a loaded two-core machine 4 of 15 fresh
groups read nothing for 40 s, and CI's SIGKILL test stalled the same way. librdkafka runs the
group protocol on its own threads, whatever the poll timeouts.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from alerting import AlertingError

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class InRecord:
    """One alert record as the service sees it, free of any client's types."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    value: bytes


class AlertSource:
    """Group consumer with manual commits: the service commits only after every record's outcome
    is durable, so a killed process re-reads what it had not finished."""

    def __init__(self, bootstrap: str, topic: str, group_id: str, instance_id: str | None,
                 session_timeout_ms: int) -> None:
        from confluent_kafka import Consumer

        conf: dict[str, Any] = {
            "bootstrap.servers": bootstrap,
            "group.id": group_id,
            "client.id": "fleetpulse-alerting",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": session_timeout_ms,
            "heartbeat.interval.ms": 1000,
            "max.poll.interval.ms": 60_000,
            # a topic created after the dispatcher started is found within 5 s, not 5 min
            "topic.metadata.refresh.interval.ms": 5_000,
            "logger": log,
        }
        if instance_id:
            conf["group.instance.id"] = instance_id
        self._consumer = Consumer(conf)
        self._consumer.subscribe([topic])

    def poll(self, timeout_ms: int, max_records: int) -> list[InRecord]:
        """Wait up to ``timeout_ms`` for the first record, then take what is already fetched,
        up to ``max_records`` in all (librdkafka's batch call alone would wait out the timeout
        for a full batch)."""
        first = self._consumer.poll(timeout_ms / 1000)
        if first is None:
            return []
        messages = [first]
        if max_records > 1:
            messages.extend(self._consumer.consume(max_records - 1, 0))
        records = []
        for m in messages:
            error = m.error()
            if error is not None:
                if error.fatal():
                    raise AlertingError(f"Kafka consumer failed: {error}")
                log.warning("Kafka consumer: %s", error)
                continue
            records.append(InRecord(m.topic() or "", m.partition() or 0, m.offset() or 0,
                                    max(m.timestamp()[1], 0), m.value() or b""))
        return records

    def commit(self) -> bool:
        """Commit the offsets after the records returned so far; False (logged) on failure,
        which only means those records are read again after a restart."""
        from confluent_kafka import KafkaException

        try:
            self._consumer.commit(asynchronous=False)
            return True
        except KafkaException as exc:
            log.warning("offset commit failed (records will be re-read): %s", exc)
            return False

    def close(self) -> None:
        # A static member (group.instance.id) stays in the group: its restart keeps the
        # partitions without a rebalance.
        self._consumer.close()


class DeadLetterProducer:
    """Writes dead letters; ``flush`` raises unless every one of them is acknowledged, so the
    service never commits past a record whose dead letter was lost."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        from confluent_kafka import Producer

        self.topic = topic
        self._producer = Producer({"bootstrap.servers": bootstrap, "acks": "all",
                                   "enable.idempotence": True, "linger.ms": 5,
                                   "client.id": "fleetpulse-alerting-dlq", "logger": log})
        self._failures: list[str] = []

    def _delivered(self, error: Any, _message: Any) -> None:
        if error is not None:
            self._failures.append(str(error))

    def send(self, key: bytes, value: bytes) -> None:
        while True:
            try:
                self._producer.produce(self.topic, value, key, on_delivery=self._delivered)
                return
            except BufferError:  # local queue full: serve deliveries, then try again
                self._producer.poll(0.1)

    def flush(self, timeout_s: float) -> None:
        left = self._producer.flush(timeout_s)
        failures, self._failures = self._failures, []
        if left or failures:
            detail = failures[0] if failures else f"{left} still unacknowledged after {timeout_s} s"
            raise AlertingError(f"dead letters not written to {self.topic}: {detail}")

    def close(self, timeout_s: float) -> None:
        self._producer.flush(timeout_s)
