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

import functools
import itertools
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from alerting import AlertingError
from udfs.models import DEAD_LETTER_PRODUCER_MAX_BYTES

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class InRecord:
    """One alert record as the service sees it, free of any client's types. ``value`` is None
    for a tombstone and ``key`` None for a record without one: both are input like any other."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    value: bytes | None
    key: bytes | None = None


def _log_commit(error: Any, partitions: Any) -> None:
    """librdkafka's report of an offset commit (asynchronous ones included)."""
    if error is not None:
        log.warning("offset commit failed (records will be re-read): %s", error)


class AlertSource:
    """Group consumer with manual commits: the service commits only after every record's outcome
    is durable, so a killed process re-reads what it had not finished."""

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        group_id: str,
        instance_id: str | None,
        session_timeout_ms: int,
        properties: Mapping[str, str] | None = None,
    ) -> None:
        """``properties``: the user's Kafka client properties, librdkafka names, over ours."""
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
            "on_commit": _log_commit,
        }
        if instance_id:
            conf["group.instance.id"] = instance_id
        conf.update(properties or {})
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
            records.append(
                InRecord(
                    m.topic() or "",
                    m.partition() or 0,
                    m.offset() or 0,
                    max(m.timestamp()[1], 0),
                    m.value(),
                    m.key(),
                )
            )
        return records

    def caught_up(self, max_lag: int, timeout_s: float = 1.0) -> bool:
        """Within ``max_lag`` records of the end of its assigned partitions, as the broker says
        now (issue 29's ``resolve_timeout``): False before partitions are assigned and while
        the broker cannot be asked, so a dispatcher that cannot read never takes that silence
        for its sources'. (A lag of zero is too strict: while alerts flow, a record is always
        on its way.)"""
        from confluent_kafka import KafkaException

        try:
            parts = self._consumer.assignment()
            if not parts:
                return False
            lag = 0
            for tp in self._consumer.position(parts):
                low, high = self._consumer.get_watermark_offsets(
                    tp, timeout=timeout_s, cached=False
                )
                offset = tp.offset
                if offset < 0:  # nothing read from it in this process: where the group is
                    (committed,) = self._consumer.committed([tp], timeout=timeout_s)
                    offset = committed.offset if committed.offset >= 0 else low
                lag += max(0, high - offset)
            return lag <= max_lag
        except KafkaException as exc:
            log.debug("cannot tell whether the consumer is caught up: %s", exc)
            return False

    def commit(self, asynchronous: bool = False) -> bool:
        """Commit the offsets after the records returned so far; False (logged) on failure,
        which only means those records are read again after a restart. ``asynchronous``: send
        the commit and return (librdkafka keeps commits in order; a failure is logged by
        :func:`_log_commit` from a later poll)."""
        from confluent_kafka import KafkaException

        try:
            if asynchronous:
                self._consumer.commit(asynchronous=True)
            else:
                self._consumer.commit(asynchronous=False)
            return True
        except KafkaException as exc:
            log.warning("offset commit failed (records will be re-read): %s", exc)
            return False

    def close(self) -> None:
        # A static member (group.instance.id) stays in the group: its restart keeps the
        # partitions without a rebalance.
        self._consumer.close()


@dataclass(frozen=True, slots=True)
class Origin:
    """Where the record a dead letter stands for was read: what a lost dead letter is logged
    with, so an operator can find the record again."""

    topic: str
    partition: int
    offset: int


@dataclass(frozen=True, slots=True)
class WriteFailure:
    origin: Origin
    error: str


class DeadLetterProducer:
    """Writes dead letters and never raises on their account (contract: writing a dead letter
    never fails the reader). One that cannot be written (too large, refused by the broker,
    timed out, the local queue full for ``queue_full_wait_s``) goes to ``on_failure`` with its
    :class:`Origin`, on the thread calling :meth:`send`, :meth:`serve` or :meth:`flush`.

    :meth:`in_flight` counts those neither acknowledged nor failed: the service commits its
    offsets only when none are, so a restart re-reads any record whose dead letter was pending.
    """

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        on_failure: Callable[[WriteFailure], None],
        queue_full_wait_s: float = 10.0,
        properties: Mapping[str, str] | None = None,
    ) -> None:
        self.topic = topic
        self.on_failure = on_failure
        self.queue_full_wait_s = queue_full_wait_s
        self._conf: dict[str, Any] = {
            "bootstrap.servers": bootstrap,
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": 5,
            "client.id": "fleetpulse-alerting-dlq",
            "logger": log,
            # above the largest dead letter (udfs.models.DEAD_LETTER_MAX_BYTES)
            "message.max.bytes": DEAD_LETTER_PRODUCER_MAX_BYTES,
            **(properties or {}),
        }
        self._producer = self._new_producer()
        self._pending: dict[int, Origin] = {}
        self._ids = itertools.count()
        self._broken = False

    def _new_producer(self) -> Any:
        from confluent_kafka import Producer

        return Producer(self._conf)

    def send(self, key: bytes, value: bytes, origin: Origin) -> None:
        """Queue one dead letter; its failure, now or later, goes to ``on_failure``."""
        from confluent_kafka import KafkaException

        if self._broken:
            self._replace_producer()
        n = next(self._ids)
        self._pending[n] = origin
        deadline = time.monotonic() + self.queue_full_wait_s
        while True:
            try:
                self._producer.produce(
                    self.topic, value, key, on_delivery=functools.partial(self._delivered, n)
                )
                return
            except BufferError:  # local queue full: serve deliveries, then try again
                if time.monotonic() >= deadline:
                    self._fail(n, f"local producer queue full for {self.queue_full_wait_s} s")
                    return
                self._producer.poll(0.1)
            except (KafkaException, TypeError, ValueError) as exc:  # e.g. over message.max.bytes
                self._fail(n, str(exc))
                return

    def _delivered(self, n: int, error: Any, _message: Any) -> None:
        if error is None:
            self._pending.pop(n, None)
            return
        if error.fatal():  # an idempotent producer that failed for good takes no more records
            self._broken = True
        self._fail(n, str(error))

    def _fail(self, n: int, error: str) -> None:
        origin = self._pending.pop(n, None)
        if origin is None:
            return
        try:
            self.on_failure(WriteFailure(origin, error))
        except Exception:  # noqa: BLE001 - a failing handler must not stop the writer either
            log.exception("dead-letter failure handler failed for %s", origin)

    def _replace_producer(self) -> None:
        log.error("dead-letter producer failed fatally; starting a new one")
        try:
            self._producer.purge()
            self._producer.poll(0)  # the purged dead letters' callbacks: failures
        except Exception:  # noqa: BLE001 - the old producer is dropped either way
            log.exception("purging the failed dead-letter producer")
        for n in list(self._pending):
            self._fail(n, "dead-letter producer failed fatally")
        self._producer = self._new_producer()
        self._broken = False

    def in_flight(self) -> int:
        return len(self._pending)

    def serve(self) -> None:
        """Run the delivery callbacks that are due (acknowledgements and failures)."""
        self._producer.poll(0)

    def flush(self, timeout_s: float) -> int:
        """Wait up to ``timeout_s`` for the queued dead letters; returns how many are still
        in flight (not an error: they are reported when they succeed or fail)."""
        self._producer.flush(timeout_s)
        return self.in_flight()

    def close(self, timeout_s: float) -> int:
        """Flush, then stop; returns how many dead letters were still unacknowledged (their
        records were not committed past, so a restart reads them again)."""
        return self.flush(timeout_s)
