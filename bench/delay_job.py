"""Benchmark of the delay job (a script, not a test): sustained rate and deadline-to-alert latency.

    python -m bench.delay_job [--open 100000] [--rate 10000] [--seconds 60]

1. Sustained rate: ``--open`` shipments are picked up (PICKED_UP, promised far ahead) and then
   ``--rate`` x ``--seconds`` hub scans on them are written to Kafka before the job starts;
   the job reads the backlog as fast as it can. The rate is taken from Redis: the job counts
   each pick-up once in ``region:*`` ``total_shipments``, and the scans that follow are counted
   by the job's Kafka consumer lag (end offsets against the committed group offsets).
2. Latency, at half the sustained rate, live: scans carry the wall clock as ``ts``; some
   shipments are promised at instants during the run. The watermark passes a deadline ``D``
   when every partition has a record with ``ts >= D + out_of_orderness``, i.e. at wall time
   ``D + out_of_orderness`` (traffic is continuous on all partitions); the latency is the time
   from then to the ``shipment_late`` trigger being readable in ``fleet.alerts``.

Starts its own Kafka and Redis (the project's launchers) unless ``--bootstrap``/``--redis-url``
are given. Prints one JSON line of results.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
import redis
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from fleetpulse.services.flink import flink_env
from fleetpulse.services.kafka import create_topics, given_or_private_broker
from fleetpulse.services.process import ManagedProcess
from fleetpulse.services.redis_server import RedisServer
from fleetpulse.waiting import free_port, wait_until
from udfs.contract import TopicNames, contract_topics

OOO_MS = 2_000
HUBS = ["ARRIVED_HUB", "DEPARTED_HUB"]


def pickup(sid: str, ts: int, promised_by: int) -> bytes:
    return orjson.dumps(
        {
            "scan_id": f"{sid}-p",
            "shipment_id": sid,
            "type": "PICKED_UP",
            "ts": ts,
            "lat": 47.61,
            "lng": -122.33,
            "promised_by": promised_by,
            "dest_lat": 45.52,
            "dest_lng": -122.68,
        }
    )


def hub_scan(sid: str, n: int, ts: int) -> bytes:
    return orjson.dumps(
        {
            "scan_id": f"{sid}-{n}",
            "shipment_id": sid,
            "type": HUBS[n % 2],
            "ts": ts,
            "hub_id": "HUB-SEA",
        }
    )


def start_job(
    work: Path, kafka: str, redis_url: str, topics: TopicNames, group: str
) -> ManagedProcess:
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
        "--group-id",
        group,
        "--no-at-risk",
        "--out-of-orderness-ms",
        str(OOO_MS),
        "--idle-timeout-ms",
        "2000",
        "--checkpoint-dir",
        str(work / "ckpt" / group),
        "--checkpoint-interval-ms",
        "5000",
    ]
    return ManagedProcess(f"delay-{group}", argv, work / f"{group}.log", env=flink_env()).start()


def lag(kafka: str, topic: str, group: str) -> int:
    consumer = KafkaConsumer(bootstrap_servers=kafka, group_id=group, enable_auto_commit=False)
    try:
        parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or []]
        ends = consumer.end_offsets(parts)
        return sum(ends[tp] - (consumer.committed(tp) or 0) for tp in parts)
    finally:
        consumer.close()


def sustained(
    work: Path, kafka: str, redis_url: str, n_open: int, rate: int, seconds: int
) -> dict[str, Any]:
    topics = _topics(kafka)
    now = int(time.time() * 1000)
    producer = KafkaProducer(
        bootstrap_servers=kafka, linger_ms=20, batch_size=256 * 1024, compression_type="lz4"
    )
    for i in range(n_open):
        sid = f"B{i:06d}"
        producer.send(
            topics.scans,
            key=sid.encode(),
            value=pickup(sid, now - 3_600_000, now + 30 * 86_400_000),
        )
    total = rate * seconds
    for k in range(total):
        sid = f"B{random.randrange(n_open):06d}"
        ts = now - 3_600_000 + 1000 + k * 1000 // max(rate, 1)
        producer.send(topics.scans, key=sid.encode(), value=hub_scan(sid, k + 1, ts))
    producer.flush()
    producer.close()
    db = redis.Redis.from_url(redis_url)
    db.flushdb()
    group = f"bench-sustained-{uuid.uuid4().hex[:6]}"
    proc = start_job(work, kafka, redis_url, topics, group)
    try:

        def counted() -> int:
            return int(db.hget("region:WEST", "total_shipments") or 0)  # type: ignore[arg-type]

        wait_until(lambda: counted() > 0, 300, "the first pick-up to be counted")
        t_first = time.monotonic()
        wait_until(lambda: counted() >= n_open, 1800, "every pick-up to be counted", interval_s=0.5)
        t_open = time.monotonic()
        wait_until(
            lambda: lag(kafka, topics.scans, group) == 0,
            1800,
            "the job to commit the end of the backlog",
            interval_s=2.0,
        )
        t_all = time.monotonic()
    finally:
        proc.stop()
    # Committed offsets trail the job by up to one checkpoint interval (5 s): both rates
    # measured up to the end of the backlog are lower bounds.
    return {
        "records": n_open + total,
        "pickups_per_s": round(n_open / (t_open - t_first)),
        "hub_scans_per_s": round(total / (t_all - t_open)),
        "records_per_s": round((n_open + total) / (t_all - t_first)),
    }


def latency(
    work: Path, kafka: str, redis_url: str, n_open: int, rate: int, seconds: int
) -> dict[str, Any]:
    topics = _topics(kafka)
    group = f"bench-live-{uuid.uuid4().hex[:6]}"
    redis.Redis.from_url(redis_url).flushdb()
    proc = start_job(work, kafka, redis_url, topics, group)
    producer = KafkaProducer(bootstrap_servers=kafka, linger_ms=5, compression_type="lz4")
    deadlines: dict[str, int] = {}
    received: dict[str, float] = {}
    stop = threading.Event()

    def consume() -> None:
        consumer = KafkaConsumer(
            topics.alerts,
            bootstrap_servers=kafka,
            auto_offset_reset="earliest",
            consumer_timeout_ms=500,
        )
        while not stop.is_set():
            for m in consumer:
                a = orjson.loads(m.value)
                if a["event_action"] == "trigger" and a["dedup_key"].startswith("shipment_late"):
                    received.setdefault(a["dedup_key"].split(":", 1)[1], time.time() * 1000)
        consumer.close()

    reader = threading.Thread(target=consume, daemon=True)
    reader.start()
    try:
        now = int(time.time() * 1000)
        for i in range(n_open):  # open shipments, promised far ahead
            sid = f"L{i:06d}"
            producer.send(topics.scans, key=sid.encode(), value=pickup(sid, now, now + 86_400_000))
        producer.flush()
        wait_until(
            lambda: (
                int(
                    redis.Redis.from_url(redis_url).hget(  # type: ignore[arg-type]
                        "region:WEST", "total_shipments"
                    )
                    or 0
                )
                >= n_open
            ),
            1800,
            "the open shipments",
        )
        start = time.time()
        sent, k = 0, 0
        while time.time() - start < seconds:
            tick = time.time()
            wall = int(tick * 1000)
            for _ in range(rate // 10):
                k += 1
                if k % 200 == 0:  # a probe: promised 5 s from now
                    sid = f"P{k:08d}"
                    deadlines[sid] = wall + 5_000
                    producer.send(
                        topics.scans, key=sid.encode(), value=pickup(sid, wall, wall + 5_000)
                    )
                else:
                    sid = f"L{random.randrange(n_open):06d}"
                    producer.send(topics.scans, key=sid.encode(), value=hub_scan(sid, k, wall))
                sent += 1
            time.sleep(max(0.0, 0.1 - (time.time() - tick)))
        end_send = time.time()
        wait_until(
            lambda: all(
                s in received for s, d in deadlines.items() if d + OOO_MS < end_send * 1000 - 1000
            ),
            120,
            "the late alerts of the probes",
            interval_s=0.5,
        )
    finally:
        stop.set()
        producer.close()
        proc.stop()
    lat = sorted(
        received[s] - (d + OOO_MS)
        for s, d in deadlines.items()
        if s in received and d + OOO_MS < end_send * 1000 - 1000
    )
    return {
        "offered_per_s": round(sent / (end_send - start)),
        "probes": len(lat),
        "p50_ms": round(statistics.median(lat)) if lat else None,
        "p99_ms": round(lat[min(len(lat) - 1, int(len(lat) * 0.99))]) if lat else None,
    }


def _topics(kafka: str) -> TopicNames:
    s = uuid.uuid4().hex[:6]
    names = TopicNames(f"b.gps.{s}", f"b.scans.{s}", f"b.alerts.{s}", f"b.geo.{s}", f"b.dlq.{s}")
    create_topics(kafka, contract_topics(names))
    return names


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--open", type=int, default=100_000)
    p.add_argument("--rate", type=int, default=10_000)
    p.add_argument("--seconds", type=int, default=60)
    p.add_argument("--bootstrap", default="")
    p.add_argument("--redis-url", default="")
    p.add_argument("--skip-sustained", action="store_true")
    ns = p.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bench-delay-"))
    with contextlib.ExitStack() as stack:
        kafka = stack.enter_context(given_or_private_broker(ns.bootstrap))
        redis_url = ns.redis_url
        if not redis_url:
            server = RedisServer(work / "redis", port=free_port(), persist=False)
            stack.callback(server.start(work / "redis.log").stop)
            redis_url = server.url
        result: dict[str, Any] = {"open": ns.open, "rate": ns.rate, "seconds": ns.seconds}
        if not ns.skip_sustained:
            result["sustained"] = sustained(work, kafka, redis_url, ns.open, ns.rate, ns.seconds)
            # The live phase offers hub scans (and a few pick-up probes): half their rate.
            half = result["sustained"]["hub_scans_per_s"] // 2
        else:
            half = ns.rate // 2
        result["latency"] = latency(work, kafka, redis_url, ns.open, max(half, 10), ns.seconds)
        print(orjson.dumps(result).decode())


if __name__ == "__main__":
    main()
