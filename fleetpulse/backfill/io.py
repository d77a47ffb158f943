"""What a backfill reads from Kafka and Redis: the offsets of a range, the backfill's progress,
and each side's :class:`~fleetpulse.backfill.compare.Snapshot`."""

from __future__ import annotations

import logging
import random
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, cast

import orjson
import redis

from fleetpulse.backfill import BackfillError
from fleetpulse.backfill.compare import Snapshot
from fleetpulse.backfill.ranges import OffsetRange, Partition, range_offsets
from udfs.contract.redis_keys import DELAYS, REGION_PREFIX, TRUCKS_GEO, truck_key
from udfs.kafka_properties import KafkaProperties
from udfs.redis_url import cluster_enabled

log = logging.getLogger(__name__)

# What each job owns in the shared keys: verify compares only these (region:{R} hashes hold
# both jobs' fields; fleet.alerts both jobs' alerts, told apart by payload.source).
REGION_FIELDS = {
    "tracking": ("active_trucks", "moving_trucks", "stopped_trucks"),
    "delay": ("total_shipments", "total_delay_hours"),
}
POSITION_KEYS = ("lat", "lng", "status", "ts_ms")
ALERT_SOURCES = {"tracking": "fleetpulse/tracking-job", "delay": "fleetpulse/delay-job"}


def _consumer(bootstrap: str, props: KafkaProperties) -> Any:
    from kafka import KafkaConsumer

    return KafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, **props.kafka_python()
    )


def partitions(consumer: Any, topics: Iterable[str]) -> list[Any]:
    from kafka import TopicPartition

    out = []
    for topic in topics:
        found = consumer.partitions_for_topic(topic)
        if not found:
            raise BackfillError(f"Kafka topic {topic!r} does not exist")
        out += [TopicPartition(topic, p) for p in sorted(found)]
    return out


def offset_range(
    bootstrap: str, props: KafkaProperties, topics: Iterable[str], start_ms: int, stop_ms: int
) -> OffsetRange:
    """The records of ``topics`` whose Kafka timestamps are in [start_ms, stop_ms): the same
    offsetsForTimes lookup the job's source makes."""
    consumer = _consumer(bootstrap, props)
    try:
        tps = partitions(consumer, topics)
        ends = consumer.end_offsets(tps)
        at_start = consumer.offsets_for_times(dict.fromkeys(tps, start_ms))
        at_stop = consumer.offsets_for_times(dict.fromkeys(tps, stop_ms))
    finally:
        consumer.close()

    def keyed(found: Mapping[Any, Any]) -> dict[Partition, int | None]:
        return {
            (tp.topic, tp.partition): (None if v is None else v.offset) for tp, v in found.items()
        }

    return range_offsets(
        keyed(at_start), keyed(at_stop), {(tp.topic, tp.partition): n for tp, n in ends.items()}
    )


def committed(bootstrap: str, props: KafkaProperties, group: str) -> dict[Partition, int]:
    """The offsets ``group`` has committed (the backfill's job commits at each checkpoint)."""
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, **props.kafka_python())
    try:
        found = admin.list_consumer_group_offsets(group)
    finally:
        admin.close()
    return {(tp.topic, tp.partition): om.offset for tp, om in found.items() if om.offset >= 0}


def end_offsets(bootstrap: str, props: KafkaProperties, topic: str) -> dict[Partition, int]:
    consumer = _consumer(bootstrap, props)
    try:
        ends = consumer.end_offsets(partitions(consumer, [topic]))
    finally:
        consumer.close()
    return {(tp.topic, tp.partition): n for tp, n in ends.items()}


def event_ms(alert: Mapping[str, Any]) -> int | None:
    """The event time of an alert: custom_details.event_ts, else payload.timestamp."""
    payload = alert.get("payload") or {}
    details = payload.get("custom_details") or {}
    if isinstance(details.get("event_ts"), int):
        return int(details["event_ts"])
    try:
        return int(datetime.fromisoformat(str(payload["timestamp"])).timestamp() * 1000)
    except (KeyError, ValueError):
        return None


def alerts_by_class(
    alerts: Iterable[Mapping[str, Any]], job: str, start_ms: int, stop_ms: int
) -> dict[str, int]:
    """``class/event_action`` counts of ``job``'s alerts with event time in the range."""
    counts: Counter[str] = Counter()
    for a in alerts:
        payload = a.get("payload") or {}
        if payload.get("source") != ALERT_SOURCES[job]:
            continue
        when = event_ms(a)
        if when is not None and start_ms <= when < stop_ms:
            counts[f"{payload.get('class')}/{a.get('event_action')}"] += 1
    return dict(counts)


def read_alerts(
    bootstrap: str,
    props: KafkaProperties,
    topic: str,
    start: Mapping[Partition, int] | None = None,
    since_ms: int | None = None,
) -> list[dict[str, Any]]:
    """The alerts of ``topic`` from ``start`` (offsets), or from the first record stamped at or
    after ``since_ms`` (an alert is stamped when emitted, never before its event time), up to
    its end now."""
    consumer = _consumer(bootstrap, props)
    out: list[dict[str, Any]] = []
    try:
        tps = partitions(consumer, [topic])
        ends = consumer.end_offsets(tps)
        consumer.assign(tps)
        found = (
            consumer.offsets_for_times(dict.fromkeys(tps, since_ms)) if since_ms is not None else {}
        )
        for tp in tps:
            if start is not None:
                consumer.seek(tp, start.get((tp.topic, tp.partition), 0))
            elif found.get(tp) is not None:
                consumer.seek(tp, found[tp].offset)
            else:
                consumer.seek(tp, ends[tp] if since_ms is not None else 0)
        pending = {tp for tp in tps if consumer.position(tp) < ends[tp]}
        while pending:
            for tp, records in consumer.poll(timeout_ms=1000).items():
                for r in records:
                    if r.offset < ends[tp]:
                        try:
                            out.append(orjson.loads(r.value))
                        except orjson.JSONDecodeError:
                            continue
                if consumer.position(tp) >= ends[tp]:
                    pending.discard(tp)
    finally:
        consumer.close()
    return out


def connect(url: str) -> redis.Redis:
    client = redis.Redis.from_url(url)
    if cluster_enabled(cast(dict[str, Any], client.info("cluster"))):
        client.close()
        raise BackfillError(
            "Redis is a Redis Cluster, which has one database only: a backfill needs a staging "
            "database (docs/backfill.md)"
        )
    return client


def sample_trucks(client: redis.Redis, size: int, seed: int = 0) -> list[str]:
    """A repeatable sample of the trucks live Redis places (its ``trucks:geo``)."""
    members = sorted(m.decode() for m in cast(list[bytes], client.zrange(TRUCKS_GEO, 0, -1)))
    return members if len(members) <= size else sorted(random.Random(seed).sample(members, size))


def redis_snapshot(
    client: redis.Redis, job: str, trucks: Iterable[str], alerts: Mapping[str, int]
) -> Snapshot:
    """What ``job`` left in this database (and the given alert counts)."""
    fields = REGION_FIELDS[job]
    regions: dict[str, dict[str, float]] = {}
    for key in client.scan_iter(match=REGION_PREFIX + "*", count=100):
        values = cast(list[bytes | None], client.hmget(key, list(fields)))
        present = {f: float(v) for f, v in zip(fields, values, strict=True) if v is not None}
        if present:
            regions[key.decode().removeprefix(REGION_PREFIX)] = present
    delays: dict[str, float] = {}
    if job == "delay":
        scored = cast(list[tuple[bytes, float]], client.zrange(DELAYS, 0, -1, withscores=True))
        delays = {m.decode(): s for m, s in scored}
    positions: dict[str, dict[str, str]] = {}
    if job == "tracking":
        pipe = client.pipeline(transaction=False)
        names = list(trucks)
        for t in names:
            pipe.hmget(truck_key(t), list(POSITION_KEYS))
        for t, row in zip(names, pipe.execute(), strict=True):
            if row[0] is not None:
                positions[t] = {
                    k: v.decode() for k, v in zip(POSITION_KEYS, row, strict=True) if v is not None
                }
    return Snapshot(regions=regions, delays=delays, positions=positions, alerts=alerts)


def forget_group(bootstrap: str, props: KafkaProperties, group: str) -> None:
    """Delete the backfill's consumer group (best effort: an old group only costs a listing)."""
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, **props.kafka_python())
    try:
        # kafka-python 3: {group: "OK" or the error's class name}
        for name, outcome in dict(admin.delete_groups([group])).items():
            if outcome != "OK":
                log.warning("consumer group %s left behind: %s", name, outcome)
    except Exception as exc:  # noqa: BLE001 - see the docstring
        log.warning("consumer group %s left behind: %s", group, exc)
    finally:
        admin.close()
