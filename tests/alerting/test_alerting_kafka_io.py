"""The dispatcher's Kafka clients: records carry where they came from, a commit is where the
group resumes, and a dead letter that cannot be written is reported with the partition and
offset of its record, never raised (contract: writing a dead letter never fails the reader)."""

from __future__ import annotations

import time
import uuid

import pytest

from alerting.kafka_io import AlertSource, DeadLetterProducer, InRecord, Origin, WriteFailure
from fleetpulse.waiting import free_port
from udfs.contract import TopicNames
from udfs.models import DEAD_LETTER_PRODUCER_MAX_BYTES


def take(
    source: AlertSource, n: int, max_records: int = 500, timeout_s: float = 20
) -> list[InRecord]:
    got: list[InRecord] = []
    deadline = time.monotonic() + timeout_s
    while len(got) < n and time.monotonic() < deadline:
        got.extend(source.poll(50, max_records))
    return got


def values(records: list[InRecord]) -> list[bytes | None]:
    return [r.value for r in records]


@pytest.mark.integration
def test_records_carry_their_origin_and_the_group_resumes_after_the_commit(
    kafka_bootstrap: str, unique_topics: TopicNames
) -> None:
    from kafka import KafkaProducer

    topic = unique_topics.alerts
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    for i in range(6):
        producer.send(
            topic, key=b"one-key", value=f"r{i}".encode(), timestamp_ms=1_700_000_000_000 + i
        )
    producer.flush()
    producer.close()

    group = f"io-{uuid.uuid4().hex[:6]}"
    first = AlertSource(kafka_bootstrap, topic, group, None, 10_000)
    try:
        got = take(first, 4, max_records=1)  # one record per poll: exactly four
        assert values(got) == [b"r0", b"r1", b"r2", b"r3"]
        assert {(r.topic, r.partition) for r in got} == {(topic, got[0].partition)}
        assert [r.offset for r in got] == [0, 1, 2, 3]
        assert [r.timestamp_ms for r in got] == [1_700_000_000_000 + i for i in range(4)]
        assert first.commit()
        assert values(take(first, 1, max_records=1)) == [b"r4"]  # read, never committed
    finally:
        first.close()

    second = AlertSource(kafka_bootstrap, topic, group, None, 10_000)
    try:
        assert values(take(second, 2)) == [b"r4", b"r5"]
        assert take(second, 1, timeout_s=0.3) == []
    finally:
        second.close()


class Failures(list[WriteFailure]):
    """An ``on_failure`` that keeps what it is given."""

    def __call__(self, failure: WriteFailure) -> None:
        self.append(failure)


ORIGIN = Origin("fleet.alerts", 1, 42)


@pytest.mark.integration
def test_a_dead_letter_the_broker_refuses_is_reported_once_with_its_origin(
    kafka_bootstrap: str,
) -> None:
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic

    topic = f"fleet.dlq.small-{uuid.uuid4().hex[:6]}"
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        admin.create_topics(
            [
                NewTopic(
                    topic,
                    num_partitions=1,
                    replication_factor=1,
                    topic_configs={"max.message.bytes": "200"},
                )
            ]
        )
    finally:
        admin.close()
    failures = Failures()
    producer = DeadLetterProducer(kafka_bootstrap, topic, failures)
    producer.send(b"fleet.alerts", b"x" * 1000, ORIGIN)
    assert producer.flush(20) == 0  # never raises: the refusal is reported, not thrown
    assert [f.origin for f in failures] == [ORIGIN]
    assert "too large" in failures[0].error.lower()
    producer.send(b"fleet.alerts", b"small", Origin("fleet.alerts", 1, 43))
    assert producer.flush(20) == 0
    assert len(failures) == 1  # the next dead letter went through
    assert producer.close(5) == 0


def test_an_unacknowledged_dead_letter_is_in_flight_not_an_error() -> None:
    failures = Failures()
    producer = DeadLetterProducer(f"127.0.0.1:{free_port()}", "fleet.dlq.nowhere", failures)
    producer.send(b"fleet.alerts", b'{"reason": "BAD_JSON"}', ORIGIN)
    assert producer.flush(0.3) == 1
    assert producer.close(0.3) == 1  # the service does not commit past it: read again later
    assert failures == []


def test_the_producer_takes_dead_letters_up_to_its_configured_limit() -> None:
    """librdkafka's default ``message.max.bytes`` (1,000,000) is below the configured one: a
    record between the two is accepted, one above the configured one is reported at once."""
    failures = Failures()
    producer = DeadLetterProducer(f"127.0.0.1:{free_port()}", "fleet.dlq.nowhere", failures)
    producer.send(b"fleet.alerts", b"x" * (DEAD_LETTER_PRODUCER_MAX_BYTES - 10_000), ORIGIN)
    assert failures == [] and producer.in_flight() == 1
    too_big = Origin("fleet.alerts", 0, 7)
    producer.send(b"fleet.alerts", b"x" * (DEAD_LETTER_PRODUCER_MAX_BYTES + 1), too_big)
    assert [f.origin for f in failures] == [too_big]
    assert producer.in_flight() == 1
    producer.close(0)


def test_a_failing_failure_handler_does_not_reach_the_caller() -> None:
    def handler(failure: WriteFailure) -> None:
        raise RuntimeError("metrics broken")

    producer = DeadLetterProducer(f"127.0.0.1:{free_port()}", "fleet.dlq.nowhere", handler)
    producer.send(b"fleet.alerts", b"x" * (DEAD_LETTER_PRODUCER_MAX_BYTES + 1), ORIGIN)
    assert producer.in_flight() == 0
    producer.close(0)
