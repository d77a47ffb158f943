"""`fleetpulse backfill` on real Kafka, Redis and Flink: the tracking job rerun over a range of
history into a staging database equals what the live job left for that range, and --verify
says so; a difference planted in live is reported and fails the verify."""

from __future__ import annotations

import time
from pathlib import Path

import orjson
import pytest
import redis
from click.testing import CliRunner
from jobs import job_process, read_topic
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.structs import OffsetAndMetadata

from fleetpulse.backfill.cli import backfill
from udfs.contract import TopicNames

pytestmark = pytest.mark.integration
TRUCKS = 20
PINGS = 30  # per truck in the range (15 min: a silent truck goes offline inside it)
SILENT_AFTER = 4  # steps: trucks T01, T08 and T15 send no ping after these
STEP_MS = 30_000


def ping(truck: str, ts: int, lat: float, lng: float, speed: float) -> bytes:
    return orjson.dumps({"truck_id": truck, "ts": ts, "lat": lat, "lng": lng, "speed_kph": speed})


def produce_stamped(kafka: str, topic: str, pings: list[tuple[str, int, bytes]]) -> None:
    """Pings whose Kafka timestamp is their event time (as a device's producer would set)."""
    producer = KafkaProducer(bootstrap_servers=kafka, linger_ms=5)
    for truck, ts, value in pings:
        producer.send(topic, key=truck.encode(), value=value, timestamp_ms=ts)
    producer.flush()
    producer.close()


def history(t0: int, steps: range, lat_shift: float = 0.0) -> list[tuple[str, int, bytes]]:
    """Every truck's pings at t0 + step * 30 s; a few trucks stop half-way, a few go silent
    (truck_offline alerts inside the range)."""
    out = []
    for step in steps:
        ts = t0 + step * STEP_MS
        for n in range(TRUCKS):
            truck = f"T{n:02d}"
            if silent(n) and step >= SILENT_AFTER:
                continue
            moving = n % 5 != 0 or step < PINGS // 2
            lat = 40.0 + n * 0.1 + lat_shift + (step * 0.002 if moving else 0.0)
            out.append((truck, ts, ping(truck, ts, lat, -100.0 + n * 0.1, 60.0 if moving else 0.0)))
    return out


def as_set(records: list[dict]) -> list[bytes]:  # type: ignore[type-arg]
    """Records read from several partitions, in an order of their own."""
    return sorted(orjson.dumps(r, option=orjson.OPT_SORT_KEYS) for r in records)


def silent(n: int) -> bool:
    return n % 7 == 1


def commit_end(kafka: str, topic: str, group: str) -> None:
    """Start ``group`` at the end of ``topic`` (the live job has not read what is there)."""
    consumer = KafkaConsumer(bootstrap_servers=kafka, group_id=group, enable_auto_commit=False)
    try:
        tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        ends = consumer.end_offsets(tps)
        consumer.commit({tp: OffsetAndMetadata(n, "", -1) for tp, n in ends.items()})
    finally:
        consumer.close()


def test_backfill_into_staging_equals_live_and_verify_reports_a_planted_difference(
    kafka_bootstrap: str,
    redis_url: str,
    redis_client: redis.Redis,
    unique_topics: TopicNames,
    tmp_path: Path,
) -> None:
    now = int(time.time() * 1000)
    start = now - 40 * 60_000  # --from
    stop = start + PINGS * STEP_MS  # --to
    staging = redis.Redis.from_url(redis_url, db=1)
    staging.flushdb()
    # Before the range: a truck only there, which the live job is started past.
    produce_stamped(
        kafka_bootstrap,
        unique_topics.gps,
        [
            ("TX", start - 600_000 + i, ping("TX", start - 600_000 + i, 35.0, -90.0, 50.0))
            for i in range(5)
        ],
    )
    commit_end(kafka_bootstrap, unique_topics.gps, "it-backfill-live")
    produce_stamped(kafka_bootstrap, unique_topics.gps, history(start, range(PINGS)))
    live = job_process(
        "flink_jobs.tracking.job",
        tmp_path / "live.log",
        kafka_bootstrap,
        redis_url,
        unique_topics,
        "--bounded",
        "--group-id",
        "it-backfill-live",
    ).start()
    try:
        assert live.popen is not None
        assert live.popen.wait(timeout=240) == 0, live.log_tail(40)
    finally:
        live.stop()
    live_alerts = read_topic(kafka_bootstrap, unique_topics.alerts)
    assert live_alerts, "the history raises no alert: the comparison of alerts would be empty"
    # After the range: pings the backfill must not read (elsewhere, to show if it did).
    produce_stamped(
        kafka_bootstrap, unique_topics.gps, history(start, range(PINGS, PINGS + 3), lat_shift=1.0)
    )

    common = [
        "--job", "tracking", "--from", str(start), "--to", str(stop),
        "--bootstrap", kafka_bootstrap, "--redis-url", redis_url,
        "--gps-topic", unique_topics.gps, "--alerts-topic", unique_topics.alerts,
        "--geofence-topic", unique_topics.geofence_events, "--dlq-topic", unique_topics.dlq,
        "--verify", "--report", str(tmp_path / "report.json"),
    ]  # fmt: skip
    runner = CliRunner()
    result = runner.invoke(backfill, [*common, "--log", str(tmp_path / "backfill.log")])
    log = (tmp_path / "backfill.log").read_text(errors="replace")[-3000:]
    assert result.exit_code == 0, result.output + log
    report = orjson.loads((tmp_path / "report.json").read_bytes())
    assert report["ok"] and report["differences"] == [], report
    assert report["counts"]["positions"]["live"] == TRUCKS
    assert report["counts"]["alerts"]["live"] > 0

    # Staging holds the range's trucks exactly as live does, and nothing outside the range.
    for n in range(TRUCKS):
        key = f"truck:T{n:02d}"
        fields = ["lat", "lng", "status", "ts_ms", "region"]
        assert staging.hmget(key, fields) == redis_client.hmget(key, fields), key
        last = (SILENT_AFTER if silent(n) else PINGS) - 1
        assert int(staging.hget(key, "ts_ms") or 0) == start + last * STEP_MS
    assert not staging.exists("truck:TX") and not redis_client.exists("truck:TX")
    # Alerts went to the staging topic only: the live topic is as the live job left it.
    assert as_set(read_topic(kafka_bootstrap, unique_topics.alerts)) == as_set(live_alerts)
    assert read_topic(kafka_bootstrap, unique_topics.alerts + ".staging")

    # A difference planted in live: verify (without rerunning) lists it and fails.
    redis_client.hset("truck:T03", "lat", "41.5")
    result = runner.invoke(backfill, [*common, "--skip-run"])
    assert result.exit_code == 1, result.output
    report = orjson.loads((tmp_path / "report.json").read_bytes())
    assert report["breaches"] == ["positions"]
    assert [(d["section"], d["key"]) for d in report["differences"]] == [("positions", "T03")]
    staging.flushdb()
    staging.close()
