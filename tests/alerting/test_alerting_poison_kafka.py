"""The running dispatcher against hostile input on a real broker (issue 27): every poison record
becomes exactly one bounded dead letter at its own partition and offset, an alert after them is
still delivered, and dead letters that cannot be written are counted and logged while the
service goes on."""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from alert_poison_reasons import EXPECTED_REASON, original_key
from alerting_harness import Running, config_text, dlq_messages
from alerting_receiver import Receiver, alert_doc
from poison_corpus import poison_records

from alerting.metrics import Metrics
from fleetpulse.waiting import wait_until
from udfs.contract import TopicNames
from udfs.models import DEAD_LETTER_MAX_BYTES, DEAD_LETTER_PRODUCER_MAX_BYTES

pytestmark = pytest.mark.integration

Position = tuple[int, int]  # (partition, offset) on the alerts topic


def produce(
    bootstrap: str, topic: str, records: list[tuple[str, bytes | None, bytes | None]]
) -> dict[str, Position]:
    """Send ``(name, key, value)`` records in order; where each one landed, by name."""
    from confluent_kafka import Producer

    p = Producer(
        {
            "bootstrap.servers": bootstrap,
            "acks": "all",
            "message.max.bytes": DEAD_LETTER_PRODUCER_MAX_BYTES,
        }
    )
    landed: dict[str, Position] = {}
    errors: list[str] = []

    def report(name: str) -> Callable[[Any, Any], None]:
        def delivered(err: Any, msg: Any) -> None:
            if err is not None:
                errors.append(f"{name}: {err}")
            else:
                landed[name] = (msg.partition(), msg.offset())

        return delivered

    for name, key, value in records:
        p.produce(topic, value, key, on_delivery=report(name))
        p.poll(0)
    assert p.flush(30) == 0
    assert errors == []
    return landed


def counted(m: Metrics, outcome: str) -> float:
    return m.value("fleetpulse_alerting_records_total", outcome=outcome)


def test_every_poison_record_is_one_bounded_dead_letter_and_the_alert_after_them_arrives(
    start: Callable[..., Running],
    receiver: Receiver,
    unique_topics: TopicNames,
    kafka_bootstrap: str,
) -> None:
    m = Metrics()
    r = start(config_text(receiver), metrics=m)
    poison = [*poison_records(), ("tombstone", b"tombstone-key", None)]
    expected = {**EXPECTED_REASON, "tombstone": "MISSING_FIELD"}
    sentinel = alert_doc(subject="SENTINEL")
    landed = produce(
        kafka_bootstrap,
        unique_topics.alerts,
        [*poison, ("sentinel", b"truck_offline:SENTINEL", orjson.dumps(sentinel))],
    )

    wait_until(
        lambda: ("truck_offline:SENTINEL", "trigger") in receiver.keys("/hook"),
        60,
        "the alert sent after the poison delivered",
    )
    wait_until(
        lambda: counted(m, "malformed") == len(poison) and counted(m, "accepted") == 1,
        30,
        "every record read",
    )
    messages = dlq_messages(kafka_bootstrap, unique_topics.dlq, len(poison), timeout_s=30)
    assert len(messages) == len(poison)  # exactly one each

    by_position: dict[Position, tuple[bytes | None, bytes]] = {}
    for key, value in messages:
        assert len(value) <= DEAD_LETTER_MAX_BYTES
        d = orjson.loads(value)
        by_position[(d["partition"], d["offset"])] = (key, value)
    assert set(by_position) == {landed[name] for name, _, _ in poison}
    for name, key, value in poison:
        dlq_key, dl_bytes = by_position[landed[name]]
        d = orjson.loads(dl_bytes)
        assert dlq_key == unique_topics.alerts.encode(), name
        assert d["source_topic"] == unique_topics.alerts
        assert d["reason"] == expected[name], name
        assert d["raw_size"] == len(value or b"")
        assert d["raw_sha256"] == hashlib.sha256(value or b"").hexdigest()
        got_key = original_key(d)
        assert got_key == key or (d.get("key_truncated") and key and key.startswith(got_key))

    assert r.alive() and r.d.health()[0]
    assert m.value("fleetpulse_alerting_dlq_write_failures_total") == 0
    assert receiver.all_problems() == []
    r.stop()
    assert r.error is None


def small_topic(bootstrap: str, max_message_bytes: int) -> str:
    """A fresh topic whose broker refuses records above ``max_message_bytes``."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic

    topic = f"fleet.dlq.small-{uuid.uuid4().hex[:6]}"
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics(
            [
                NewTopic(
                    topic,
                    num_partitions=1,
                    replication_factor=1,
                    topic_configs={"max.message.bytes": str(max_message_bytes)},
                )
            ]
        )
    finally:
        admin.close()
    return topic


def test_dead_letters_the_broker_refuses_are_counted_and_logged_and_reading_goes_on(
    start: Callable[..., Running],
    receiver: Receiver,
    unique_topics: TopicNames,
    kafka_bootstrap: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="alerting.service")
    m = Metrics()
    r = start(
        config_text(receiver), metrics=m, dlq_topic=small_topic(kafka_bootstrap, 200)
    )  # every dead letter is bigger
    first = produce(
        kafka_bootstrap,
        unique_topics.alerts,
        [
            ("bad1", b"bad", b"{not json"),
            ("bad2", None, b"[]"),
            ("alert1", b"truck_offline:A1", orjson.dumps(alert_doc(subject="A1"))),
        ],
    )
    wait_until(
        lambda: m.value("fleetpulse_alerting_dlq_write_failures_total") == 2,
        30,
        "two dead-letter write failures counted",
    )
    wait_until(
        lambda: ("truck_offline:A1", "trigger") in receiver.keys("/hook"),
        30,
        "the alert after the failures delivered",
    )
    second = produce(
        kafka_bootstrap,
        unique_topics.alerts,
        [
            ("bad3", b"bad", b"\xff"),
            ("alert2", b"truck_offline:A2", orjson.dumps(alert_doc(subject="A2"))),
        ],
    )
    wait_until(
        lambda: ("truck_offline:A2", "trigger") in receiver.keys("/hook"),
        30,
        "an alert after a later failure delivered",
    )
    wait_until(
        lambda: m.value("fleetpulse_alerting_dlq_write_failures_total") == 3,
        30,
        "the third failure counted",
    )

    logged = "\n".join(rec.getMessage() for rec in caplog.records)
    for partition, offset in (first["bad1"], first["bad2"], second["bad3"]):
        assert f"{unique_topics.alerts} partition {partition} offset {offset}:" in logged
    assert r.alive() and r.d.health()[0]
    r.stop()
    assert r.error is None
