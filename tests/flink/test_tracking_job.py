"""The tracking job on a Flink MiniCluster at parallelism 2, bounded out-of-order input.

Redis is the real server of the session fixture; the job's Kafka outputs are collected instead.
"""

from __future__ import annotations

import random
import time
from typing import Any

import orjson
import pytest
import redis

from flink_jobs.tracking.settings import TrackingSettings

pytestmark = pytest.mark.flink
MIN = 60_000
T0 = (int(time.time() * 1000) - 3 * 3600_000) // MIN * MIN


def ping(truck: str, ts: int, lat: float, lng: float, speed: float = 60.0) -> bytes:
    return orjson.dumps(
        {"truck_id": truck, "ts": ts, "lat": lat, "lng": lng, "speed_kph": speed, "heading": 90}
    )


def scenario() -> tuple[list[bytes], dict[str, Any]]:
    """Input records (arrival order) and what the job must conclude."""
    rnd = random.Random(7)
    # The test source hands records round-robin to two keying subtasks, so two records of one
    # truck may overtake each other on their way to its state (in the real job each Kafka
    # partition feeds one subtask and keeps a truck's records in order). Arrival therefore
    # follows event time within the watermark's 10 s bound: a record can then never be behind
    # the watermark when it reaches the truck, whichever subtask carried it.
    # T5 first: its anchor fix decides which later fix is the impossible one.
    recs: list[bytes] = [ping("T5", T0, 41.0, -80.0), ping("T5", T0 + 30_000, 41.0005, -80.0)]
    arriving: list[tuple[int, bytes]] = []
    # T1: moving east every 30 s for 10 min; each ping sent twice.
    for i in range(21):
        r = ping("T1", T0 + i * 30_000, 40.0, -100.0 + i * 0.005)
        arriving += [(T0 + i * 30_000, r), (T0 + i * 30_000, r)]
    # T2: arrives shuffled within 8 s windows; final position = newest ping.
    arriving += [
        (
            T0 + i * 4_000 + rnd.randint(0, 8_000),
            ping("T2", T0 + i * 4_000, 35.0 + i * 0.0005, -90.0),
        )
        for i in range(40)
    ]
    # T3: silent for 15 minutes in the middle -> offline at +10 min, resolved at +16 min.
    arriving += [
        (T0 + i * 60_000, ping("T3", T0 + i * 60_000, 33.0, -97.0 + i * 0.01))
        for i in [*range(0, 7), *range(22, 26)]
    ]
    # T4: stopped (speed 0) for 40 minutes in open country -> unplanned stop at +30 min.
    arriving += [
        (T0 + i * 60_000, ping("T4", T0 + i * 60_000, 38.0, -105.0, speed=0.0)) for i in range(41)
    ]
    recs += [r for _, r in sorted(arriving, key=lambda a: a[0])]
    # T5: a fix 500 km away one minute later -> IMPOSSIBLE_SPEED.
    recs += [ping("T5", T0 + MIN, 45.5, -80.0), ping("T5", T0 + 2 * MIN, 41.001, -80.0)]
    recs += [
        b"{broken json",
        b"\xff\xfe",
        ping("T6", T0, 0.0, 0.0),
        orjson.dumps({"truck_id": "T7", "lat": 40, "lng": -100}),
    ]
    expected = {
        "alerts": {
            ("truck_offline:T3", "trigger", T0 + 16 * MIN),
            ("truck_offline:T3", "resolve", T0 + 22 * MIN),
            ("truck_stopped_unplanned:T4", "trigger", T0 + 30 * MIN),
        },
        "dlq": {"MALFORMED_JSON", "BAD_COORDINATES", "IMPOSSIBLE_SPEED", "MISSING_FIELD"},
    }
    return recs, expected


def run_job(
    records: list[bytes], redis_url: str, parallelism: int, bundle_shards: int = 3
) -> list[tuple[str, str]]:
    """Run to completion; the job's Kafka-bound outputs are captured in a Redis list."""
    from pyflink.common import Duration, Row
    from pyflink.common.watermark_strategy import TimestampAssigner, WatermarkStrategy
    from pyflink.datastream import MapFunction

    from flink_jobs.runtime.environment import create_environment
    from flink_jobs.runtime.records import RAW_RECORD
    from flink_jobs.tracking.job import build, terminate
    from udfs.truck_state import TrackingConfig

    class TsFromJson(TimestampAssigner):
        def extract_timestamp(self, value: Any, record_timestamp: int) -> int:
            try:
                return int(orjson.loads(bytes(value[0]))["ts"])
            except Exception:  # noqa: BLE001 - broken records get time 0, like the SQL source
                return 0

    class Capture(MapFunction):
        """Test sink: appends (kind, record) to the Redis list `test:outputs`."""

        def __init__(self, kind: str) -> None:
            self.kind = kind

        def open(self, runtime_context: Any) -> None:
            self.r = redis.Redis.from_url(redis_url)

        def map(self, value: Any) -> Any:
            self.r.rpush("test:outputs", orjson.dumps([self.kind, value[1]]))
            return value

    settings = TrackingSettings(
        redis_url=redis_url,
        parallelism=parallelism,
        checkpoint_interval_ms=600_000,
        restart_attempts=0,
        bundle_shards=bundle_shards,
        bundle_flush_ms=20,
    )
    env, t_env = create_environment(settings, "tracking-test")
    rows = [Row(r, 0, i, f"k{i}".encode()) for i, r in enumerate(records)]
    source = env.from_collection(rows, type_info=RAW_RECORD).assign_timestamps_and_watermarks(
        WatermarkStrategy.for_bounded_out_of_orderness(
            Duration.of_seconds(10)
        ).with_timestamp_assigner(TsFromJson())
    )
    # Through a view, so the records are keyed (or bundled) by the JVM as the Kafka table's are.
    t_env.create_temporary_view("test_pings", source)
    out = build(env, t_env, "test_pings", settings, TrackingConfig())
    for kind, stream in (("alert", out["alerts"]), ("dlq", out["dlq"]), ("geo", out["geofence"])):
        terminate(stream.map(Capture(kind)))
    env.execute("tracking-test")
    client = redis.Redis.from_url(redis_url)
    captured = [tuple(orjson.loads(x)) for x in client.lrange("test:outputs", 0, -1)]
    client.delete("test:outputs")
    return captured  # type: ignore[return-value]


def test_tracking_job_end_to_end_on_minicluster(redis_client: redis.Redis, redis_url: str) -> None:
    records, expected = scenario()
    results = run_job(records, redis_url, parallelism=2)

    alerts = [orjson.loads(v) for kind, v in results if kind == "alert"]
    got = {
        (a["dedup_key"], a["event_action"], a["payload"]["custom_details"]["event_ts"])
        for a in alerts
    }
    assert expected["alerts"] <= got, sorted((k, a, (t - T0) / MIN) for k, a, t in got)
    # End of input moves event time to the end of time: every truck is offline by then.
    offline = {
        a["dedup_key"]
        for a in alerts
        if a["payload"]["class"] == "truck_offline" and a["event_action"] == "trigger"
    }
    assert offline == {f"truck_offline:T{i}" for i in range(1, 6)}
    for a in alerts:
        assert a["payload"]["source"] == "fleetpulse/tracking-job"
        assert a["payload"]["severity"] in ("critical", "error", "warning", "info")

    dlq = [orjson.loads(v) for kind, v in results if kind == "dlq"]
    assert {d["reason"] for d in dlq} == expected["dlq"]
    assert all(d["source_topic"] == "fleet.gps" and "offset" in d for d in dlq)

    t2 = redis_client.hgetall("truck:T2")
    assert int(t2[b"ts_ms"]) == T0 + 39 * 4_000
    assert float(t2[b"lat"]) == pytest.approx(35.0 + 39 * 0.0005)
    assert redis_client.ttl("truck:T2") > 3500
    t5 = redis_client.hgetall("truck:T5")
    assert float(t5[b"lat"]) == pytest.approx(41.001)  # the impossible fix never landed
    assert redis_client.hget("truck:T1", "status") == b"OFFLINE"
    assert set(redis_client.zrange("trucks:geo", 0, -1)) == {f"T{i}".encode() for i in range(1, 6)}
    positions = redis_client.xrange("stream:positions")
    t1_ts = [int(f[b"ts_ms"]) for _, f in positions if f[b"truck_id"] == b"T1"]
    assert t1_ts == sorted(t1_ts)  # never backwards
    regions = {k.decode(): redis_client.hgetall(k) for k in redis_client.keys("region:*")}
    assert regions, "region counters were written"
    assert all(int(h[b"active_trucks"]) == 0 for h in regions.values())
