"""The tracking job sends the trigger of an alert still open again every --alert-refresh-s,
identical to the first, on real Kafka, Redis and Flink (the dispatcher resolves an incident
its source stops re-asserting; docs/tracking.md, "Re-assertion")."""

from __future__ import annotations

import time
from pathlib import Path

import orjson
import pytest
from jobs import job_process, job_samples, labelled, produce
from kafka import KafkaConsumer

from fleetpulse.waiting import free_port, wait_until
from udfs.contract import TopicNames

pytestmark = pytest.mark.integration
MIN = 60_000
REASSERTS = "flink_taskmanager_job_task_operator_fleetpulse_class_reasserted_alerts"


def raw_alerts(kafka: str, topic: str) -> list[tuple[bytes | None, bytes]]:
    """The topic's records as written: key and value bytes."""
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=kafka,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=500,
    )
    try:
        return [(m.key, m.value) for m in consumer]
    finally:
        consumer.close()


def test_an_open_offline_alert_is_sent_again_identical_every_refresh(
    kafka_bootstrap: str, redis_url: str, unique_topics: TopicNames, tmp_path: Path
) -> None:
    """Truck A goes silent; its offline alert fires on the stall fallback (as in
    test_tracking_kafka's wall-clock test), then goes out again every 2 s while it stays open."""
    t_a = int(time.time() * 1000) - 30 * MIN
    pings = [
        {"truck_id": "A", "ts": t_a + i * 30_000, "lat": 40.0 + i * 0.005, "lng": -100.0}
        for i in range(4)
    ]
    # truck B moves the watermark to 6 s before A's offline timeout, then all traffic stops
    pings.append({"truck_id": "B", "ts": t_a + 90_000 + 595_000, "lat": 35.0, "lng": -90.0})
    produce(kafka_bootstrap, unique_topics.gps, [(b"fleet", orjson.dumps(p)) for p in pings])
    port = free_port()
    proc = job_process(
        "flink_jobs.tracking.job",
        tmp_path / "job.log",
        kafka_bootstrap,
        redis_url,
        unique_topics,
        "--group-id",
        "it-alert-refresh",
        "--out-of-orderness-ms",
        "1000",
        "--idle-timeout-ms",
        "1000",
        "--fallback-grace-ms",
        "2000",
        "--alert-refresh-s",
        "2",
        "--metrics-port",
        str(port),
        "--bundle-shards",
        "8",
    ).start()
    try:
        wait_until(
            lambda: len(raw_alerts(kafka_bootstrap, unique_topics.alerts)) >= 3,
            180,
            "truck A's offline trigger and two re-asserts of it",
        )
        wait_until(
            lambda: labelled(job_samples(port), REASSERTS, {"class": "truck_offline"}) >= 2,
            30,
            "the re-asserts counted on the job's metrics endpoint",
        )
        assert proc.popen is not None and proc.popen.poll() is None, proc.log_tail(40)
    finally:
        proc.stop()
    records = raw_alerts(kafka_bootstrap, unique_topics.alerts)
    first = records[0]
    assert first[0] == b"truck_offline:A"
    alert = orjson.loads(first[1])
    assert alert["event_action"] == "trigger"
    assert alert["payload"]["custom_details"]["event_ts"] == t_a + 90_000 + 600_000
    assert records == [first] * len(records)  # every one the same bytes, key included
