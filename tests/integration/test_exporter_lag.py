"""The exporter's consumer lag (:class:`KafkaLag`) against the session's Kafka broker: committed
offsets read by a never-subscribed consumer per group, not the Admin API's coordinator
requests, with what the admin API gave kept: every listed group when none is named, the lag
per group and topic summed over its partitions, and a group or topic deleted since (or never
there) gives no lag and no error."""

from __future__ import annotations

import uuid

import pytest
from test_exporter import commit, produce

from fleetpulse.exporter.readings import LagReading
from fleetpulse.exporter.sources import KafkaLag
from fleetpulse.waiting import wait_until
from udfs.contract import TopicNames

pytestmark = pytest.mark.integration


def group_name() -> str:
    return f"lag-test-{uuid.uuid4().hex[:8]}"


def test_lag_per_group_and_topic_of_named_and_of_every_listed_group(
    kafka_bootstrap: str, unique_topics: TopicNames
) -> None:
    bootstrap, t = kafka_bootstrap, unique_topics
    produce(bootstrap, t.gps, [b"{}"] * 5, partition=0)
    produce(bootstrap, t.gps, [b"{}"] * 4, partition=1)
    produce(bootstrap, t.scans, [b"{}"] * 3, partition=2)
    a, b = sorted([group_name(), group_name()])
    commit(bootstrap, a, t.gps, 0, 2)  # 3 behind
    commit(bootstrap, a, t.gps, 1, 4)  # at the end
    commit(bootstrap, a, t.scans, 2, 1)  # 2 behind
    commit(bootstrap, b, t.gps, 1, 0)  # 4 behind
    expected = (LagReading(a, t.gps, 3), LagReading(a, t.scans, 2), LagReading(b, t.gps, 4))
    lag = KafkaLag(bootstrap, 10.0)
    try:
        assert lag.read([a, b]) == expected
        listed = lag.read(())  # the session broker's other tests' groups are listed too
        assert tuple(r for r in listed if r.group in (a, b)) == expected
    finally:
        lag.close()


def test_deleted_groups_and_topics_have_no_lag_and_no_error(
    kafka_bootstrap: str, unique_topics: TopicNames
) -> None:
    from confluent_kafka.admin import AdminClient

    bootstrap, t = kafka_bootstrap, unique_topics
    produce(bootstrap, t.gps, [b"{}"] * 2)
    produce(bootstrap, t.geofence_events, [b"{}"] * 3)
    name = group_name()
    kept, deleted, never = f"{name}-kept", f"{name}-deleted", f"{name}-never"
    commit(bootstrap, kept, t.gps, 0, 1)
    commit(bootstrap, kept, t.geofence_events, 0, 1)
    commit(bootstrap, deleted, t.gps, 0, 0)
    lag = KafkaLag(bootstrap, 10.0)
    admin = AdminClient({"bootstrap.servers": bootstrap})
    try:
        groups = [kept, deleted, never]
        assert lag.read(groups) == (
            LagReading(deleted, t.gps, 2),
            LagReading(kept, t.geofence_events, 2),
            LagReading(kept, t.gps, 1),
        )
        admin.delete_consumer_groups([deleted])[deleted].result(timeout=30)
        admin.delete_topics([t.geofence_events])[t.geofence_events].result(timeout=30)
        wait_until(
            lambda: lag.read(groups) == (LagReading(kept, t.gps, 1),),
            30,
            "no lag of the deleted group and topic",
            interval_s=0.2,
        )
        assert lag.read(groups) == (LagReading(kept, t.gps, 1),)  # and no error
    finally:
        lag.close()
