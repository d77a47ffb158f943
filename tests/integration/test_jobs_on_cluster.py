"""Both jobs, from Kafka, against a three-master Redis Cluster given as one node's URL, as a user
would point them at one: the contract's keys end up as on one server. Each job fails fast on a
Redis error (a script touching a key beyond its declared slot is one), so exit code 0 plus the
picture below is the proof that the cluster paths run there."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
from jobs import job_process, produce

from udfs.contract import TopicNames

pytestmark = pytest.mark.integration
MIN = 60_000
HOUR = 60 * MIN
SEA, PDX = (47.61, -122.33), (45.52, -122.68)


def ping(truck: str, ts: int, lat: float, lng: float) -> tuple[bytes, bytes]:
    record = {"truck_id": truck, "ts": ts, "lat": lat, "lng": lng, "speed_kph": 60.0}
    return truck.encode(), orjson.dumps(record)


def scan(sid: str, n: int, typ: str, ts: int, **kw: Any) -> tuple[bytes, bytes]:
    d: dict[str, Any] = {"scan_id": f"{sid}-{n}", "shipment_id": sid, "type": typ, "ts": ts}
    if typ == "PICKED_UP":
        d.update({"lat": SEA[0], "lng": SEA[1], "dest_lat": PDX[0], "dest_lng": PDX[1]})
    d.update(kw)
    return sid.encode(), orjson.dumps(d)


def test_both_jobs_write_the_contract_model_to_a_redis_cluster(
    kafka_bootstrap: str, redis_cluster_url: str, unique_topics: TopicNames, tmp_path: Path
) -> None:
    client = redis.RedisCluster.from_url(redis_cluster_url)
    client.flushall(target_nodes=redis.RedisCluster.PRIMARIES)
    now = int(time.time() * 1000)
    t0 = now - 30 * MIN
    pings = [
        ping(f"C{t}", t0 + i * 30_000, 47.0 + t * 0.5 + i * 0.001, -122.0 + t * 0.1)
        for i in range(4)
        for t in range(5)
    ]
    s0 = now - 6 * HOUR
    scans = [
        scan("LATE", 1, "PICKED_UP", s0, promised_by=s0 + HOUR),
        scan("LATE", 2, "DELIVERED", s0 + 3 * HOUR),  # 2 h late: region:WEST delay hours
        scan("LATE", 2, "DELIVERED", s0 + 3 * HOUR),  # a duplicate scan
        scan("OPEN", 1, "PICKED_UP", s0, promised_by=s0 + 30 * MIN),
        scan("OPEN", 2, "ARRIVED_HUB", s0 + 3 * HOUR, hub_id="HUB-PDX"),  # late, not delivered
        scan("EARLY", 1, "PICKED_UP", s0, promised_by=s0 + HOUR),
        scan("EARLY", 2, "DELIVERED", s0 + 50 * MIN),  # on time: never in `delays`
        scan("TICK", 1, "ARRIVED_HUB", now - 1000),
    ]
    produce(kafka_bootstrap, unique_topics.gps, pings)
    produce(kafka_bootstrap, unique_topics.scans, scans)
    common = ("--bounded", "--restart-attempts", "0")
    procs = [
        job_process(
            module,
            tmp_path / f"{module}.log",
            kafka_bootstrap,
            redis_cluster_url,
            unique_topics,
            *common,
            "--group-id",
            f"it-cluster-{module}",
            env={"FLINK_LOG_DIR": str(tmp_path / f"{module}.flink-log")},
        ).start()
        for module in ("flink_jobs.tracking.job", "flink_jobs.delay.job")
    ]
    try:
        for proc in procs:
            assert proc.popen is not None
            assert proc.popen.wait(timeout=300) == 0, proc.log_tail(40)
    finally:
        for proc in procs:
            proc.stop()

    try:
        for t in range(5):
            truck = {k.decode(): v.decode() for k, v in client.hgetall(f"truck:C{t}").items()}
            assert int(truck["ts_ms"]) == t0 + 3 * 30_000
            assert float(truck["lat"]) == pytest.approx(47.0 + t * 0.5 + 0.003)
            assert 3500 < client.ttl(f"truck:C{t}") <= 3600
        assert {m.decode() for m in client.zrange("trucks:geo", 0, -1)} == {
            f"C{t}" for t in range(5)
        }
        entries = {
            (f[b"truck_id"].decode(), int(f[b"ts_ms"]))
            for _, f in client.xrange("stream:positions")
            if f[b"status"] == b"MOVING"
        }
        assert entries == {(f"C{t}", t0 + i * 30_000) for i in range(4) for t in range(5)}
        west = {k.decode(): float(v) for k, v in client.hgetall("region:WEST").items()}
        assert west["total_shipments"] == 3  # LATE, OPEN, EARLY: counted once each
        assert west["total_delay_hours"] == pytest.approx(2.0)
        assert set(west) >= {"active_trucks", "moving_trucks", "stopped_trucks"}  # the census
        assert 1 <= (client.zscore("delays", "shipment:OPEN") or 0) <= 5
        assert client.zscore("delays", "shipment:LATE") is None
        assert client.zscore("delays", "shipment:EARLY") is None
    finally:
        client.close()
