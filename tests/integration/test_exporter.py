"""`fleetpulse exporter` against the real Kafka broker and redis-server of the test session:
what the jobs and the dispatcher leave in Redis and Kafka comes out of /metrics under the
spec's names, Redis is read once however often it is scraped, and dependencies that are down
give scrape errors, never a hang or a crash."""

from __future__ import annotations

import signal
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from fleetpulse.services.process import ManagedProcess
from fleetpulse.waiting import free_port, wait_until
from udfs.contract import DELAYS, POSITIONS_STREAM, TopicNames, delay_member, region_key

pytestmark = pytest.mark.integration

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(port: int) -> Samples:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=15).read()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text.decode())
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def health(port: int) -> dict[str, object]:
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=15).read()
    return orjson.loads(body)  # type: ignore[no-any-return]


def start_exporter(tmp_path: Path, *args: str) -> tuple[ManagedProcess, int]:
    port = free_port()
    proc = ManagedProcess(
        "exporter",
        [sys.executable, "-m", "fleetpulse.cli", "exporter", "--port", str(port), *args],
        tmp_path / "exporter.log",
    ).start()
    wait_until(
        lambda: (not proc.alive() and pytest.fail(proc.log_tail())) or health(port),
        60,
        "the exporter's /healthz",
        interval_s=0.2,
    )
    return proc, port


def produce(bootstrap: str, topic: str, values: list[bytes], partition: int = 0) -> None:
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap})
    for v in values:
        producer.produce(topic, v, partition=partition)
    assert producer.flush(30) == 0


def commit(bootstrap: str, group: str, topic: str, partition: int, offset: int) -> None:
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False}
    )
    try:
        consumer.commit(offsets=[TopicPartition(topic, partition, offset)], asynchronous=False)
    finally:
        consumer.close()


@pytest.fixture()
def exporter_log(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path
    log = tmp_path / "exporter.log"
    if log.exists():
        sys.stderr.write(log.read_text()[-4000:])


def test_exporter_reports_redis_kafka_alerts_and_dead_letters(
    kafka_bootstrap: str,
    redis_url: str,
    redis_client: redis.Redis,
    unique_topics: TopicNames,
    exporter_log: Path,
) -> None:
    # what the jobs leave in Redis
    redis_client.hset(
        region_key("WEST"),
        mapping={
            "active_trucks": 3,
            "moving_trucks": 2,
            "stopped_trucks": 1,
            "total_shipments": 10,
            "total_delay_hours": 2.5,
        },
    )
    redis_client.hset(region_key("OTHER"), mapping={"active_trucks": 1})
    redis_client.zadd(DELAYS, {delay_member("S1"): 1, delay_member("S2"): 1, delay_member("S3"): 4})
    seconds, _micros = redis_client.time()
    written_ms = (seconds - 120) * 1000  # the newest position was written two minutes ago
    redis_client.xadd(POSITIONS_STREAM, {"truck_id": "T1", "ts_ms": 1}, id=f"{written_ms}-0")
    # a consumer group 3 records behind on partition 0 of the GPS topic
    group = f"exporter-test-{uuid.uuid4().hex[:8]}"
    produce(kafka_bootstrap, unique_topics.gps, [b"{}"] * 5)
    commit(kafka_bootstrap, group, unique_topics.gps, 0, 2)
    redis_client.config_resetstat()

    proc, port = start_exporter(
        exporter_log,
        "--bootstrap",
        kafka_bootstrap,
        "--redis-url",
        redis_url,
        "--group",
        group,
        "--alerts-topic",
        unique_topics.alerts,
        "--dlq-topic",
        unique_topics.dlq,
        "--cache-seconds",
        "600",
    )
    try:
        wait_until(lambda: health(port)["tail"] == "ready", 60, "the tail at the topics' end")
        alert = {
            "event_action": "trigger",
            "dedup_key": "shipment_late:S3",
            "payload": {"class": "shipment_late", "source": "fleetpulse/delay-job"},
        }
        produce(kafka_bootstrap, unique_topics.alerts, [orjson.dumps(alert), b"not an alert"])
        letter = {"source_topic": "fleet.gps", "reason": "BAD_COORDINATES", "raw": "{}"}
        produce(kafka_bootstrap, unique_topics.dlq, [orjson.dumps(letter)])

        def counted() -> Samples | None:
            s = scrape(port)
            done = value(s, "fleetpulse_dead_letters_total", reason="BAD_COORDINATES",
                         source_topic="fleet.gps")  # fmt: skip
            return s if done == 1 and value_alert(s) == 1 else None

        def value_alert(s: Samples) -> float | None:
            return value(
                s, "fleetpulse_alerts_total", **{"class": "shipment_late"},
                action="trigger", job="delay-job",
            )  # fmt: skip

        s = wait_until(counted, 60, "the alert and the dead letter counted", interval_s=0.3)
        alerts = [k for k in s if k[0] == "fleetpulse_alerts_total"]
        assert len(alerts) == 1  # the record that is no alert event is not counted

        assert value(s, "fleetpulse_kafka_consumer_lag_records", group=group,
                     topic=unique_topics.gps) == 3  # fmt: skip
        age = value(s, "fleetpulse_position_age_seconds")
        assert age is not None and 120 <= age < 3600
        assert value(s, "fleetpulse_region_trucks", region="WEST", state="active") == 3
        assert value(s, "fleetpulse_region_trucks", region="WEST", state="moving") == 2
        assert value(s, "fleetpulse_region_trucks", region="WEST", state="stopped") == 1
        assert value(s, "fleetpulse_region_trucks", region="OTHER", state="active") == 1
        assert value(s, "fleetpulse_region_trucks", region="SOUTH", state="active") is None
        assert value(s, "fleetpulse_region_shipments", region="WEST") == 10
        assert value(s, "fleetpulse_region_delay_hours", region="WEST") == 2.5
        assert value(s, "fleetpulse_delayed_shipments", severity="1") == 2
        assert value(s, "fleetpulse_delayed_shipments", severity="4") == 1
        assert value(s, "fleetpulse_delayed_shipments", severity="5") == 0
        assert value(s, "fleetpulse_exporter_scrape_errors_total", source="redis") == 0
        assert value(s, "fleetpulse_exporter_scrape_errors_total", source="kafka") == 0
        assert any(name.startswith("process_") for name, _ in s)
        assert any(name.startswith("python_") for name, _ in s)

        # however often it was scraped, Redis was read once (one TIME per reading)
        stats = redis_client.info("commandstats")
        assert stats["cmdstat_time"]["calls"] == 1
        assert stats["cmdstat_hgetall"]["calls"] == 5  # one per region, no scan of trucks
    finally:
        proc.stop()
    assert proc.exit_code() == -signal.SIGTERM or proc.exit_code() == 0


def test_dependencies_that_are_down_give_scrape_errors_not_a_hang(exporter_log: Path) -> None:
    nothing = free_port()  # nothing listens here: Kafka, Redis and Flink are all "down"
    proc, port = start_exporter(
        exporter_log,
        "--bootstrap",
        f"127.0.0.1:{nothing}",
        "--redis-url",
        f"redis://127.0.0.1:{nothing}/0",
        "--flink-url",
        f"127.0.0.1:{nothing}",
        "--group",
        "g",
        "--timeout",
        "1",
        "--cache-seconds",
        "0.1",
    )
    try:

        def errors_counted() -> Samples | None:
            s = scrape(port)
            wanted = ("kafka", "redis", "flink")
            counts = [value(s, "fleetpulse_exporter_scrape_errors_total", source=w) for w in wanted]
            return s if all(c is not None and c >= 1 for c in counts) else None

        s = wait_until(errors_counted, 60, "scrape errors of every source", interval_s=0.3)
        assert not [k for k in s if k[0] == "fleetpulse_kafka_consumer_lag_records"]
        assert value(s, "fleetpulse_position_age_seconds") is None
        assert not [k for k in s if k[0] == "fleetpulse_flink_job_up"]
        h = health(port)
        assert h["status"] == "ok" and h["tail"] == "starting"
        assert {"redis", "kafka", f"flink http://127.0.0.1:{nothing}"} <= set(h["source_errors"])  # type: ignore[arg-type]
        assert proc.alive()
    finally:
        proc.stop()
