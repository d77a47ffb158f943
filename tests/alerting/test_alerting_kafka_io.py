"""The dispatcher's Kafka clients: records carry where they came from, a commit is where the
group resumes, and a dead letter that Kafka never acknowledged stops the service instead of
being skipped."""

from __future__ import annotations

import time
import uuid

import pytest

from alerting import AlertingError
from alerting.kafka_io import AlertSource, DeadLetterProducer, InRecord
from fleetpulse.topics import TopicNames
from fleetpulse.waiting import free_port


def take(source: AlertSource, n: int, max_records: int = 500,
         timeout_s: float = 20) -> list[InRecord]:
    got: list[InRecord] = []
    deadline = time.monotonic() + timeout_s
    while len(got) < n and time.monotonic() < deadline:
        got.extend(source.poll(50, max_records))
    return got


def values(records: list[InRecord]) -> list[bytes]:
    return [r.value for r in records]


@pytest.mark.integration
def test_records_carry_their_origin_and_the_group_resumes_after_the_commit(
        kafka_bootstrap: str, unique_topics: TopicNames) -> None:
    from kafka import KafkaProducer

    topic = unique_topics.alerts
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    for i in range(6):
        producer.send(topic, key=b"one-key", value=f"r{i}".encode(),
                      timestamp_ms=1_700_000_000_000 + i)
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


@pytest.mark.integration
def test_a_dead_letter_the_broker_refuses_raises_once(kafka_bootstrap: str) -> None:
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic

    topic = f"fleet.dlq.small-{uuid.uuid4().hex[:6]}"
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1,
                                      topic_configs={"max.message.bytes": "200"})])
    finally:
        admin.close()
    producer = DeadLetterProducer(kafka_bootstrap, topic)
    producer.send(b"fleet.alerts", b"x" * 1000)
    with pytest.raises(AlertingError, match=rf"dead letters not written to {topic}: .*too large"):
        producer.flush(20)
    producer.send(b"fleet.alerts", b"small")
    producer.flush(20)  # the refusal was reported once; the next dead letter goes through
    producer.close(5)


def test_an_unacknowledged_dead_letter_raises_and_names_the_topic() -> None:
    producer = DeadLetterProducer(f"127.0.0.1:{free_port()}", "fleet.dlq.nowhere")
    producer.send(b"fleet.alerts", b'{"reason": "BAD_JSON"}')
    with pytest.raises(AlertingError, match=r"dead letters not written to fleet\.dlq\.nowhere: "
                                            r"1 still unacknowledged"):
        producer.flush(0.3)
