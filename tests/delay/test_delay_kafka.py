"""The delay job with real Kafka, Redis and Flink: alerts, DLQ, Redis model, late corrections,
the processing-time fallback, a SIGKILL restart from the latest checkpoint, and a flapping
shipment_at_risk that pages once."""

from __future__ import annotations

import random
import signal
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
from prometheus_client.samples import Sample

from fleetpulse.services.flink import flink_env
from fleetpulse.services.process import ManagedProcess
from fleetpulse.waiting import free_port, wait_until
from tests.integration.jobs import job_samples, label_sets, labelled
from udfs.contract import TopicNames

pytestmark = pytest.mark.integration
MIN = 60_000
HOUR = 60 * MIN
SEA = (47.61, -122.33)
PDX = (45.52, -122.68)


def job(log: Path, kafka: str, redis_url: str, topics: TopicNames, *extra: str) -> ManagedProcess:
    argv = [
        sys.executable,
        "-m",
        "flink_jobs.delay.job",
        "--bootstrap",
        kafka,
        "--redis-url",
        redis_url,
        "--scans-topic",
        topics.scans,
        "--gps-topic",
        topics.gps,
        "--alerts-topic",
        topics.alerts,
        "--dlq-topic",
        topics.dlq,
        "--redis-flush-ms",
        "50",
        *extra,
    ]
    # Each job's JVM log in its own directory (next to the job's output), not the shared one
    # inside the pyflink package.
    env = {**flink_env(), "FLINK_LOG_DIR": str(log.with_suffix(".flink-log"))}
    return ManagedProcess("delay_job", argv, log, env=env)


def produce(kafka: str, topic: str, records: list[dict[str, Any] | bytes]) -> None:
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=kafka, linger_ms=5)
    for r in records:
        if isinstance(r, bytes):
            producer.send(topic, key=b"x", value=r)
        else:
            producer.send(topic, key=str(r["shipment_id"]).encode(), value=orjson.dumps(r))
    producer.flush()
    producer.close()


def produce_to_partitions(
    kafka: str, topic: str, records: list[tuple[int, dict[str, Any]]]
) -> None:
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=kafka, linger_ms=5)
    for partition, r in records:
        producer.send(
            topic, key=str(r["shipment_id"]).encode(), value=orjson.dumps(r), partition=partition
        )
    producer.flush()
    producer.close()


def read_topic(kafka: str, topic: str, timeout_ms: int = 1500) -> list[dict[str, Any]]:
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=kafka,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=timeout_ms,
    )
    try:
        return [orjson.loads(m.value) for m in consumer]
    finally:
        consumer.close()


def scan(sid: str, n: int, typ: str, ts: int, **kw: Any) -> dict[str, Any]:
    d: dict[str, Any] = {"scan_id": f"{sid}-{n}", "shipment_id": sid, "type": typ, "ts": ts}
    if typ == "PICKED_UP":
        d.update({"lat": SEA[0], "lng": SEA[1], "dest_lat": PDX[0], "dest_lng": PDX[1]})
    d.update(kw)
    return d


def actions(kafka: str, topic: str) -> list[tuple[str, str, str]]:
    return [
        (a["dedup_key"], a["event_action"], a["payload"]["severity"])
        for a in read_topic(kafka, topic)
    ]


def test_live_alerts_late_correction_fallback_and_redis(
    kafka_bootstrap: str,
    redis_url: str,
    redis_client: redis.Redis,
    unique_topics: TopicNames,
    tmp_path: Path,
) -> None:
    now = int(time.time() * 1000)
    t0 = now - 3 * HOUR
    first = [
        # promised 2 h ago, no delivery yet: late (severity 2 once the watermark is near now)
        scan("WRONG", 1, "PICKED_UP", t0, promised_by=now - 2 * HOUR),
        # delivered 1 h late: 1.0 h in region:WEST total_delay_hours
        scan("LATE1H", 1, "PICKED_UP", t0, promised_by=t0 + 30 * MIN),
        scan("LATE1H", 2, "DELIVERED", t0 + 90 * MIN),
        scan("LATE1H", 2, "DELIVERED", t0 + 90 * MIN),  # duplicate scan_id
        # a minute early: nothing
        scan("EARLY", 1, "PICKED_UP", t0, promised_by=t0 + HOUR),
        scan("EARLY", 2, "DELIVERED", t0 + HOUR - MIN),
        # promised 20 s from now; no traffic after: only the fallback can raise it
        scan("QUIET", 1, "PICKED_UP", now - 5 * MIN, promised_by=now + 20_000),
        b'{"scan_id": "B-1", "shipment_id": "B", "type": "TELEPORTED", "ts": %d}' % now,
        b"{broken",
    ]
    produce(kafka_bootstrap, unique_topics.scans, first)
    # Every partition ends with a record near now, which moves the watermark close to now:
    # no partition of scans has to be declared idle first, so a partition that is merely slow
    # to be read (a loaded machine) cannot be passed by the watermark with EARLY unread.
    produce_to_partitions(
        kafka_bootstrap,
        unique_topics.scans,
        [(p, scan(f"TICK{p}", 1, "ARRIVED_HUB", now - 1000)) for p in range(4)],
    )
    metrics_port = free_port()
    proc = job(
        tmp_path / "job.log",
        kafka_bootstrap,
        redis_url,
        unique_topics,
        "--group-id",
        "it-delay-live",
        "--fallback-grace-ms",
        "3000",
        "--idle-timeout-ms",
        "10000",  # only the empty GPS topic has to go idle
        "--no-at-risk",
        "--metrics-port",
        str(metrics_port),
    ).start()
    try:
        wait_until(
            lambda: redis_client.zscore("delays", "shipment:WRONG") == 2.0,
            150,
            "WRONG late at severity 2 in `delays`",
        )
        assert ("shipment_late:WRONG", "trigger", "warning") in actions(
            kafka_bootstrap, unique_topics.alerts
        )
        # The DELIVERED that shows the alert was wrong arrives late (ts before promised_by).
        produce(
            kafka_bootstrap,
            unique_topics.scans,
            [scan("WRONG", 2, "DELIVERED", now - 2 * HOUR - 10 * MIN)],
        )
        wait_until(
            lambda: (
                ("shipment_late:WRONG", "resolve", "warning")
                in actions(kafka_bootstrap, unique_topics.alerts)
            ),
            60,
            "the corrective resolve",
        )
        wait_until(
            lambda: redis_client.zscore("delays", "shipment:WRONG") is None,
            30,
            "WRONG removed from `delays`",
        )
        # Traffic has stopped: the fallback raises QUIET's late alert.
        wait_until(
            lambda: (
                ("shipment_late:QUIET", "trigger", "info")
                in actions(kafka_bootstrap, unique_topics.alerts)
            ),
            120,
            "the fallback late alert",
        )
        wait_until(
            lambda: redis_client.zscore("delays", "shipment:QUIET") == 1.0, 30, "QUIET in `delays`"
        )

        # The Prometheus endpoint: one family per concept, the variants in labels (Flink
        # key/value groups, whose key the reporter keeps in the name): shipments opened,
        # late by severity, alerts by class and action, dead letters by reason, `delays` by
        # severity (refreshed every few seconds).
        op = "flink_taskmanager_job_task_operator_fleetpulse_"
        families = {
            "opened": (op + "shipments_opened", {}),
            "parsed": (op + "outcome_records", {"outcome": "parsed"}),
            "late_1": (op + "severity_late_shipments", {"severity": "1"}),
            "late_2": (op + "severity_late_shipments", {"severity": "2"}),
            "trigger": (
                op + "class_action_alerts",
                {"class": "shipment_late", "action": "trigger"},
            ),
            "resolve": (
                op + "class_action_alerts",
                {"class": "shipment_late", "action": "resolve"},
            ),
            "unknown_type": (op + "reason_dead_letters", {"reason": "unknown_scan_type"}),
            "malformed": (op + "reason_dead_letters", {"reason": "malformed_json"}),
            "delays_1": (op + "severity_delays", {"severity": "1"}),
        }

        def counted() -> tuple[dict[str, float], list[Sample]]:
            samples = job_samples(metrics_port)
            got = {k: labelled(samples, name, labels) for k, (name, labels) in families.items()}
            if not (all(got.values())):
                names = sorted({s.name for s in samples if "fleetpulse" in s.name})
                raise AssertionError(f"{got}; fleetpulse metrics: {names[:40]}")
            return got, samples

        got, samples = wait_until(counted, 60, "the delay job's counters on its metrics endpoint")
        assert got["opened"] >= 4 and got["delays_1"] == 1
        # Flink's own variables label each series too, next to ours.
        alerts = label_sets(samples, op + "class_action_alerts")
        assert {"class", "action", "job_name", "operator_name", "subtask_index"} <= set(alerts[0])
        assert {a["action"] for a in alerts if a["class"] == "shipment_late"} == {
            "trigger",
            "resolve",
        }
        assert labelled(samples, op + "reason_dead_letters") == 2  # the two bad scans
    finally:
        proc.stop()
    west = {k.decode(): float(v) for k, v in redis_client.hgetall("region:WEST").items()}
    assert west == {"total_shipments": 4.0, "total_delay_hours": 1.0}
    got = actions(kafka_bootstrap, unique_topics.alerts)
    assert not any("EARLY" in k for k, _, _ in got)
    assert [a for a in got if a[0] == "shipment_late:LATE1H"] == [
        ("shipment_late:LATE1H", "trigger", "info"),
        ("shipment_late:LATE1H", "trigger", "warning"),  # escalation past 30 min
        ("shipment_late:LATE1H", "resolve", "warning"),
    ]
    dlq = read_topic(kafka_bootstrap, unique_topics.dlq)
    assert sorted(d["reason"] for d in dlq) == ["MALFORMED_JSON", "UNKNOWN_SCAN_TYPE"]
    assert all(d["source_topic"] == unique_topics.scans for d in dlq)


def history(t0: int, shipments: int, seed: int) -> list[dict[str, Any]]:
    """Days of shipments in ts order: on time, late, stuck, quiet, failed attempts."""
    rng = random.Random(seed)
    out: list[dict[str, Any]] = []
    for i in range(shipments):
        sid = f"S{i:04d}"
        start = t0 + rng.randint(0, 30) * HOUR
        promised = start + rng.randint(4, 30) * HOUR
        lng = rng.choice([SEA[1], -80.0, -90.0])  # WEST, SOUTH, MIDWEST-ish
        out.append(scan(sid, 1, "PICKED_UP", start, promised_by=promised, lng=lng))
        ts = start
        for n in range(2, rng.randint(3, 7)):
            ts += rng.randint(1, 10) * HOUR
            typ = rng.choice(
                ["ARRIVED_HUB", "DEPARTED_HUB", "OUT_FOR_DELIVERY", "DELIVERY_ATTEMPT_FAILED"]
            )
            out.append(scan(sid, n, typ, ts))
        if rng.random() < 0.8:
            out.append(scan(sid, 9, "DELIVERED", ts + rng.randint(1, 8) * HOUR))
    return sorted(out, key=lambda r: r["ts"])


def redis_picture(db: redis.Redis) -> dict[str, Any]:
    regions = {
        k.decode(): {f.decode(): round(float(v), 4) for f, v in db.hgetall(k).items()}
        for k in db.scan_iter("region:*")
    }
    return {"delays": sorted(db.zrange("delays", 0, -1, withscores=True)), "regions": regions}


def alert_set(kafka: str, topic: str) -> set[tuple[str, str, str, int]]:
    return {
        (
            a["dedup_key"],
            a["event_action"],
            a["payload"]["severity"],
            a["payload"]["custom_details"]["event_ts"],
        )
        for a in read_topic(kafka, topic)
    }


def all_committed(kafka: str, topic: str, group: str) -> bool:
    """The group's committed offsets (a Flink Kafka source commits them when a checkpoint
    completes) are at the end of every partition of ``topic``."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=kafka, group_id=group, enable_auto_commit=False)
    try:
        parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        ends = consumer.end_offsets(parts)
        return bool(parts) and all(consumer.committed(tp) == ends[tp] for tp in parts)
    finally:
        consumer.close()


# mid-stream: killed while reading the second half (whatever the latest checkpoint holds).
# after-all-read: killed once a completed checkpoint holds every record, so the restored job has
# nothing new to read and no watermark of its own: it must not depend on one.
# The second kill point runs with the slow tests (./dev.sh test-all), the first in every run.
@pytest.mark.parametrize(
    "kill_at", ["mid-stream", pytest.param("after-all-read", marks=pytest.mark.slow)]
)
def test_killed_job_restarted_from_checkpoint_ends_like_one_that_never_stopped(
    kafka_bootstrap: str, redis_url: str, unique_topics: TopicNames, tmp_path: Path, kill_at: str
) -> None:
    now = int(time.time() * 1000)
    records = [
        r for r in history(now - 4 * 24 * HOUR, shipments=400, seed=3) if r["ts"] < now - HOUR
    ]
    half = len(records) // 2
    produce(kafka_bootstrap, unique_topics.scans, records[:half])

    base = redis_url.rsplit("/", 1)[0]
    killed_url, clean_url = f"{base}/3", f"{base}/4"
    killed_db, clean_db = redis.Redis.from_url(killed_url), redis.Redis.from_url(clean_url)
    killed_db.flushdb()
    clean_db.flushdb()
    clean_topics = TopicNames(
        unique_topics.gps,
        unique_topics.scans,
        unique_topics.alerts + ".clean",
        unique_topics.geofence_events,
        unique_topics.dlq + ".clean",
    )
    from fleetpulse.services.kafka import create_topics
    from udfs.contract import contract_topics

    create_topics(kafka_bootstrap, contract_topics(clean_topics))
    ckpt = tmp_path / "checkpoints"
    common = ("--no-at-risk", "--fallback-grace-ms", "600000")  # watermark-driven only
    args = (
        *common,
        "--group-id",
        "it-delay-restart",
        "--checkpoint-dir",
        str(ckpt),
        "--checkpoint-interval-ms",
        "500",
        "--restore",
        "latest",
    )
    # The final watermark is the minimum over partitions: end every partition at the same ts so
    # it does not depend on the order in which partitions go idle.
    end_ts = now - 30 * MIN
    tail = [(p, scan(f"CLOCK{p}", 1, "ARRIVED_HUB", end_ts)) for p in range(4)]
    first = job(tmp_path / "first.log", kafka_bootstrap, killed_url, unique_topics, *args).start()
    try:
        wait_until(
            lambda: list(ckpt.glob("*/chk-*/_metadata")) and killed_db.exists("delays"),
            180,
            "a completed checkpoint and the first delays",
        )
        produce(kafka_bootstrap, unique_topics.scans, records[half:])
        produce_to_partitions(kafka_bootstrap, unique_topics.scans, tail)
        if kill_at == "after-all-read":
            wait_until(
                lambda: all_committed(kafka_bootstrap, unique_topics.scans, "it-delay-restart"),
                180,
                "a completed checkpoint holding every record",
            )
        else:
            time.sleep(0.3)  # not synchronisation: lets the job read some of the second half
        first.kill()  # SIGKILL the whole process group
        assert first.exit_code() == -signal.SIGKILL
    finally:
        first.stop()

    second = job(tmp_path / "second.log", kafka_bootstrap, killed_url, unique_topics, *args).start()
    clean = job(
        tmp_path / "clean.log",
        kafka_bootstrap,
        clean_url,
        clean_topics,
        *common,
        "--group-id",
        "it-delay-clean",
    ).start()
    try:
        try:
            wait_until(
                lambda: (
                    redis_picture(clean_db)["regions"]
                    and redis_picture(killed_db) == redis_picture(clean_db)
                    and alert_set(kafka_bootstrap, clean_topics.alerts)
                    == alert_set(kafka_bootstrap, unique_topics.alerts)
                ),
                400,
                "the restarted run's Redis state and alerts to equal the clean run's",
            )
        except Exception:
            a, b = redis_picture(killed_db), redis_picture(clean_db)
            ka = alert_set(kafka_bootstrap, unique_topics.alerts)
            kb = alert_set(kafka_bootstrap, clean_topics.alerts)
            raise AssertionError(
                f"delays only killed {sorted(set(a['delays']) - set(b['delays']))[:5]} "
                f"only clean {sorted(set(b['delays']) - set(a['delays']))[:5]}; "
                f"regions {a['regions']} vs {b['regions']}; alerts only killed "
                f"{sorted(ka - kb)[:5]} only clean {sorted(kb - ka)[:5]}"
            ) from None
        # Stable, not a passing moment: the same a little later.
        time.sleep(0.4)
        assert redis_picture(killed_db) == redis_picture(clean_db)
    finally:
        second.stop()
        clean.stop()
    picture = redis_picture(clean_db)
    assert sum(r.get("total_shipments", 0) for r in picture["regions"].values()) == 400
    assert picture["delays"]
    classes = {k.split(":")[0] for k, _, _, _ in alert_set(kafka_bootstrap, clean_topics.alerts)}
    assert {"shipment_late", "shipment_stuck_at_hub", "delivery_attempts_failed"} <= classes


def test_a_stop_and_go_truck_pages_once(
    kafka_bootstrap: str, redis_url: str, unique_topics: TopicNames, tmp_path: Path
) -> None:
    """Issue 29's flapping, through Kafka and the whole job: a truck that drives 20 min and
    stops 20 min for four hours swings its ETA across the promise (the old rule paged five
    times); the job pages once, then resolves on delivery, at the event times the pure feed and
    state machine give (tests/delay/test_at_risk.py). Every partition of both topics ends with
    a record near now, so no partition has to be declared idle and the watermark can never pass
    a ping still unread."""
    from kafka import KafkaProducer

    from tests.delay.helpers import CFG, at_risk_model, stop_and_go_pings
    from tests.delay.helpers import scan as scan_of
    from udfs.models import ScanType

    now = int(time.time() * 1000)
    t0 = now - 6 * HOUR
    pings = stop_and_go_pings("T7", t0, 4)
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, linger_ms=5)
    for p in pings:
        producer.send(unique_topics.gps, key=b"T7", value=orjson.dumps(p))
    for partition in range(4):  # parked trucks carrying nothing
        parked = {**pings[-1], "truck_id": f"P{partition}", "ts": now - 1000, "speed_kph": 0.0}
        producer.send(unique_topics.gps, value=orjson.dumps(parked), partition=partition)
    producer.flush()
    producer.close()
    produce(
        kafka_bootstrap,
        unique_topics.scans,
        [
            scan("FLAP", 1, "PICKED_UP", t0, promised_by=t0 + 270 * MIN, truck_id="T7"),
            scan("FLAP", 2, "DELIVERED", t0 + 250 * MIN, truck_id="T7"),
        ],
    )
    produce_to_partitions(
        kafka_bootstrap,
        unique_topics.scans,
        [(p, scan(f"TICK{p}", 1, "ARRIVED_HUB", now - 1000)) for p in range(4)],
    )
    proc = job(
        tmp_path / "job.log",
        kafka_bootstrap,
        redis_url,
        unique_topics,
        "--group-id",
        "it-delay-flap",
        "--fallback-grace-ms",
        "600000",  # watermark-driven only
    ).start()
    try:

        def flap() -> list[tuple[str, int]]:
            got = [
                (a["event_action"], a["payload"]["custom_details"]["event_ts"])
                for a in read_topic(kafka_bootstrap, unique_topics.alerts)
                if a["dedup_key"] == "shipment_at_risk:FLAP"
            ]
            assert ("resolve", t0 + 250 * MIN) in got, got
            return got

        got = wait_until(flap, 180, "FLAP's shipment_at_risk resolve on delivery")
    finally:
        proc.stop()
    picked = [
        scan_of("FLAP", 1, ScanType.PICKED_UP, t0, promised_by=t0 + 270 * MIN, truck_id="T7"),
        scan_of("FLAP", 2, ScanType.DELIVERED, t0 + 250 * MIN, truck_id="T7"),
    ]
    model = at_risk_model(picked, pings, CFG, t0 + 5 * HOUR)
    assert [a for a, _ in model] == ["trigger", "resolve"]
    assert got == model
