"""The tracking job with real Kafka, Redis and Flink: dead letters, Redis model, restarts."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import orjson
import pytest
import redis
from jobs import ScrapeLoop, flink_conf_dir, job_process, job_samples, labelled, produce, read_topic

from fleetpulse.waiting import free_port, wait_until
from udfs.contract import TopicNames

pytestmark = pytest.mark.integration
MIN = 60_000
# The job's counters as Flink's Prometheus reporter names them (flink_jobs/runtime/metrics.py)
OP = "flink_taskmanager_job_task_operator_fleetpulse_"
POSITION_WRITES = OP + "kind_redis_writes"


@pytest.fixture
def mode() -> tuple[str, ...]:
    """The job's flags that differ from the defaults: eight shards of trucks."""
    return ("--bundle-shards", "8")


def ping(truck: str, ts: int, lat: float, lng: float, speed: float = 60.0) -> tuple[bytes, bytes]:
    return truck.encode(), orjson.dumps(
        {"truck_id": truck, "ts": ts, "lat": lat, "lng": lng, "speed_kph": speed}
    )


def test_bad_records_reach_the_dlq_with_origin_and_redis_holds_the_contract_model(
    kafka_bootstrap: str,
    redis_url: str,
    redis_client: redis.Redis,
    unique_topics: TopicNames,
    tmp_path: Path,
    mode: tuple[str, ...],
) -> None:
    now = int(time.time() * 1000)
    t0 = now - 30 * MIN
    good = [ping("T1", t0 + i * 30_000, 47.60 + i * 0.001, -122.33) for i in range(10)]
    bad = [
        (b"x", b"{not json"),
        (b"x", b"\xff\xfe\xfd"),
        ping("T2", t0, 0.0, 0.0),
        ping("T3", t0, 91.5, 10.0),
        ping("T4", now + 10 * MIN, 40.0, -100.0),
        (b"T5", orjson.dumps({"truck_id": "T5", "lat": 40.0, "lng": -100.0})),
        ping("T1", t0 + 301_000, 30.0, -122.33),
    ]  # 1900 km in 1 s after the last fix
    produce(kafka_bootstrap, unique_topics.gps, good[:5] + bad + good[5:])
    proc = job_process(
        "flink_jobs.tracking.job",
        tmp_path / "job.log",
        kafka_bootstrap,
        redis_url,
        unique_topics,
        "--bounded",
        "--group-id",
        "it-dlq",
        *mode,
    ).start()
    try:
        assert proc.popen is not None
        assert proc.popen.wait(timeout=240) == 0, proc.log_tail(40)
    finally:
        proc.stop()

    dlq = read_topic(kafka_bootstrap, unique_topics.dlq)
    reasons = sorted(d["reason"] for d in dlq)
    assert reasons == sorted(
        [
            "MALFORMED_JSON",
            "MALFORMED_JSON",
            "BAD_COORDINATES",
            "BAD_COORDINATES",
            "FUTURE_TIMESTAMP",
            "MISSING_FIELD",
            "IMPOSSIBLE_SPEED",
        ]
    )
    for d in dlq:
        assert d["source_topic"] == unique_topics.gps
        assert isinstance(d["partition"], int) and isinstance(d["offset"], int)
        assert d["detail"]
    binary = next(d for d in dlq if d["raw_encoding"] == "base64")
    assert binary["raw"] == "//79"

    truck = {k.decode(): v.decode() for k, v in redis_client.hgetall("truck:T1").items()}
    assert int(truck["ts_ms"]) == t0 + 9 * 30_000
    assert float(truck["lat"]) == pytest.approx(47.609)
    assert truck["region"] == "WEST"
    assert int(truck["updated"]) == (t0 + 9 * 30_000) // 1000
    assert set(truck) >= {
        "lat",
        "lng",
        "speed_kph",
        "heading",
        "status",
        "updated",
        "ts_ms",
        "region",
    }
    assert 3500 < redis_client.ttl("truck:T1") <= 3600
    assert redis_client.geopos("trucks:geo", "T1")[0] is not None
    entries = redis_client.xrange("stream:positions")
    assert [int(f[b"ts_ms"]) for _, f in entries if f[b"status"] == b"MOVING"] == [
        t0 + i * 30_000 for i in range(10)
    ]
    west = redis_client.hgetall("region:WEST")
    assert set(west) >= {b"active_trucks", b"moving_trucks", b"stopped_trucks"}


def fleet_stream(t0: int, trucks: int, pings: int) -> list[tuple[bytes, bytes]]:
    """Interleaved pings of a fleet; some trucks go silent or stop to raise alerts."""
    out = []
    for i in range(pings):
        for t in range(trucks):
            if t % 7 == 3 and 40 <= i < 70:  # silent 15 min -> offline + resolve
                continue
            speed = 0.0 if t % 5 == 1 and i >= 20 else 60.0  # stopped from minute 10
            lat = 35.0 + t * 0.1 + (0 if speed == 0 else i * 0.0015)
            out.append(ping(f"T{t:03d}", t0 + i * 30_000, lat, -100.0 + t * 0.05, speed))
    return out


def redis_picture(client: redis.Redis) -> dict[str, object]:
    trucks = {}
    for key in client.scan_iter("truck:*"):
        trucks[key.decode()] = client.hgetall(key)
    geo = {
        m.decode(): tuple(round(x, 4) for x in client.geopos("trucks:geo", m)[0])
        for m in client.zrange("trucks:geo", 0, -1)
    }
    regions = {k.decode(): client.hgetall(k) for k in client.scan_iter("region:*")}
    # Entries carry the live status at write time, which depends on arrival speed; the
    # positions themselves (and every final truck hash, status included) must match.
    stream = {(f[b"truck_id"], f[b"ts_ms"]) for _, f in client.xrange("stream:positions")}
    return {"trucks": trucks, "geo": geo, "regions": regions, "stream": stream}


def alert_set(kafka: str, topic: str) -> set[tuple[str, str, int]]:
    return {
        (a["dedup_key"], a["event_action"], a["payload"]["custom_details"]["event_ts"])
        for a in read_topic(kafka, topic)
    }


@pytest.mark.parametrize("store", ["local", "s3"])
def test_killed_job_restarted_from_checkpoint_ends_like_one_that_never_stopped(
    kafka_bootstrap: str,
    redis_url: str,
    unique_topics: TopicNames,
    tmp_path: Path,
    mode: tuple[str, ...],
    request: pytest.FixtureRequest,
    store: str,
) -> None:
    """SIGKILLed mid-stream and restarted with --restore latest, from checkpoints on the local
    disk or on s3:// (a local S3 server, through Flink's S3 filesystem plugin)."""
    t0 = int(time.time() * 1000) - 3 * 3600_000
    records = fleet_stream(t0, trucks=40, pings=120)
    last_ts = {r[0]: orjson.loads(r[1])["ts"] for r in records}
    half = len(records) // 2
    produce(kafka_bootstrap, unique_topics.gps, records[:half])

    base = redis_url.rsplit("/", 1)[0]
    killed_url, clean_url = f"{base}/1", f"{base}/2"
    killed_db, clean_db = redis.Redis.from_url(killed_url), redis.Redis.from_url(clean_url)
    killed_db.flushdb()
    clean_db.flushdb()
    killed_topics = TopicNames(
        unique_topics.gps,
        unique_topics.scans,
        unique_topics.alerts,
        unique_topics.geofence_events,
        unique_topics.dlq,
    )
    clean_topics = TopicNames(
        unique_topics.gps,
        unique_topics.scans,
        unique_topics.alerts + ".clean",
        unique_topics.geofence_events + ".clean",
        unique_topics.dlq,
    )
    from fleetpulse.services.kafka import create_topics
    from udfs.contract import contract_topics

    create_topics(kafka_bootstrap, contract_topics(clean_topics))
    ckpt = tmp_path / "checkpoints"
    location, env = str(ckpt), {}

    def checkpointed() -> bool:
        return bool(list(ckpt.glob("*/chk-*/_metadata")))

    if store == "s3":
        s3 = request.getfixturevalue("s3_server")
        bucket = f"ckpt-{unique_topics.gps.rsplit('.', 1)[-1]}".lower()[:60]
        s3.create_bucket(bucket)
        location = f"s3://{bucket}/tracking"
        conf = flink_conf_dir(tmp_path / "flink-conf", s3.flink_config())
        env = {"FLINK_CONF_DIR": str(conf)}

        def checkpointed() -> bool:
            return any(k.endswith("/_metadata") for k in s3.keys(bucket, "tracking/"))

    args = (
        "--group-id",
        f"it-restart-{store}",
        "--checkpoint-dir",
        location,
        "--checkpoint-interval-ms",
        "500",
        "--restore",
        "latest",
        *mode,
    )

    # On S3 the first run starts without --restore latest, so nothing has listed the bucket
    # before its checkpoints are written: the job itself must load the filesystem.
    first_args = (
        args if store == "local" else tuple(a for a in args if a not in ("--restore", "latest"))
    )
    first = job_process(
        "flink_jobs.tracking.job",
        tmp_path / "first.log",
        kafka_bootstrap,
        killed_url,
        killed_topics,
        *first_args,
        env=env,
    ).start()
    try:
        wait_until(
            lambda: checkpointed() and killed_db.dbsize() > 10,
            180,
            "a completed checkpoint and the first positions",
        )
        produce(kafka_bootstrap, unique_topics.gps, records[half:])
        first.kill()  # SIGKILL the whole process group mid-stream
        assert first.exit_code() == -signal.SIGKILL
    finally:
        first.stop()

    second = job_process(
        "flink_jobs.tracking.job",
        tmp_path / "second.log",
        kafka_bootstrap,
        killed_url,
        killed_topics,
        *args,
        env=env,
    ).start()
    if store == "s3":
        wait_until(
            lambda: f"restores from {location}/" in (tmp_path / "second.log").read_text(),
            60,
            "the restarted run to restore from its checkpoint on S3",
        )
    metrics_port = free_port()
    clean = job_process(
        "flink_jobs.tracking.job",
        tmp_path / "clean.log",
        kafka_bootstrap,
        clean_url,
        clean_topics,
        "--group-id",
        "it-clean",
        "--metrics-port",
        str(metrics_port),
        *mode,
    ).start()
    try:

        def caught_up(db: redis.Redis) -> bool:
            return all(
                db.hget(f"truck:{k.decode()}", "ts_ms") == str(v).encode()
                for k, v in last_ts.items()
            )

        wait_until(
            lambda: caught_up(killed_db) and caught_up(clean_db),
            240,
            "both runs to reach the last ping of every truck",
        )
        # Region counts are refreshed every 2 s; detection trails by the watermark bound.
        try:
            wait_until(
                lambda: redis_picture(killed_db) == redis_picture(clean_db),
                60,
                "the restarted run's Redis state to equal the clean run's",
            )
        except Exception:
            a, b = redis_picture(killed_db), redis_picture(clean_db)
            diff = {
                part: (
                    [
                        (k, a[part].get(k), b[part].get(k))  # type: ignore[union-attr]
                        for k in set(a[part]) | set(b[part])  # type: ignore[arg-type]
                        if a[part].get(k) != b[part].get(k)
                    ][:5]  # type: ignore[union-attr]
                    if isinstance(a[part], dict)
                    else (sorted(a[part] - b[part])[:5], sorted(b[part] - a[part])[:5])
                )  # type: ignore[operator]
                for part in a
                if a[part] != b[part]
            }
            raise AssertionError(f"Redis states differ: {diff}") from None
        wait_until(
            lambda: (
                alert_set(kafka_bootstrap, clean_topics.alerts)
                and alert_set(kafka_bootstrap, clean_topics.alerts)
                <= alert_set(kafka_bootstrap, killed_topics.alerts)
            ),
            60,
            "every alert of the clean run in the restarted run's output",
        )

        # The clean run's Prometheus endpoint counts what it did: one family per concept, the
        # variants in labels (Flink keeps the label's key in the name).
        families = {
            "parsed": (OP + "outcome_records", {"outcome": "parsed"}),
            "accepted": (OP + "outcome_records", {"outcome": "accepted"}),
            "offline": (
                OP + "class_action_alerts",
                {"class": "truck_offline", "action": "trigger"},
            ),
            "stopped": (
                OP + "class_action_alerts",
                {"class": "truck_stopped_unplanned", "action": "trigger"},
            ),
            "positions": (POSITION_WRITES, {"kind": "position"}),
        }

        def counted() -> dict[str, float]:
            samples = job_samples(metrics_port)
            got = {k: labelled(samples, name, labels) for k, (name, labels) in families.items()}
            # the stops jump back to base
            rejected = labelled(samples, OP + "reason_dead_letters", {"reason": "impossible_speed"})
            if not (
                got["parsed"] == len(records) == got["accepted"] + rejected and all(got.values())
            ):
                names = sorted({s.name for s in samples if "fleetpulse" in s.name})
                raise AssertionError(f"{got}; fleetpulse metrics: {names[:40]}")
            return got

        wait_until(counted, 60, "the clean run's counters on its metrics endpoint")
    finally:
        second.stop()
        clean.stop()
    clean_alerts = alert_set(kafka_bootstrap, clean_topics.alerts)
    assert any(k.startswith("truck_offline") for k, _, _ in clean_alerts)
    assert any(k.startswith("truck_stopped_unplanned") for k, _, _ in clean_alerts)
    # Repeats after the restart are the same incidents: same key, action and event time.
    assert alert_set(kafka_bootstrap, killed_topics.alerts) == clean_alerts


def test_a_timeout_fires_on_the_wall_clock_when_all_traffic_stops(
    kafka_bootstrap: str,
    redis_url: str,
    redis_client: redis.Redis,
    unique_topics: TopicNames,
    tmp_path: Path,
    mode: tuple[str, ...],
) -> None:
    """The processing-time fallback: once the last record has arrived the watermark stops, yet
    truck A's offline timeout, 6 s of event time past that watermark, fires about that long
    later on the wall clock, with the event time it is due at; truck B's, 10 min away, not."""
    t_a = int(time.time() * 1000) - 30 * MIN
    a_pings = [ping("A", t_a + i * 30_000, 40.0 + i * 0.005, -100.0) for i in range(4)]
    last_a = t_a + 90_000
    clock = ping("B", last_a + 595_000, 35.0, -90.0)  # watermark: last_a + 594 s, then nothing
    # One Kafka key, so one partition: the others are empty and idle after a second.
    produce(kafka_bootstrap, unique_topics.gps, [(b"fleet", v) for _, v in [*a_pings, clock]])
    proc = job_process(
        "flink_jobs.tracking.job",
        tmp_path / "job.log",
        kafka_bootstrap,
        redis_url,
        unique_topics,
        "--group-id",
        "it-fallback",
        "--out-of-orderness-ms",
        "1000",
        "--idle-timeout-ms",
        "1000",
        "--fallback-grace-ms",
        "2000",
        *mode,
    ).start()
    try:

        def offline_alerts() -> list[dict]:  # type: ignore[type-arg]
            return [
                a
                for a in read_topic(kafka_bootstrap, unique_topics.alerts, 500)
                if a["payload"]["class"] == "truck_offline"
            ]

        wait_until(offline_alerts, 180, "truck A's offline alert with no traffic at all")
        [alert] = offline_alerts()
        assert (alert["dedup_key"], alert["event_action"]) == ("truck_offline:A", "trigger")
        assert alert["payload"]["custom_details"]["event_ts"] == last_a + 600_000
        wait_until(
            lambda: redis_client.hget("truck:A", "status") == b"OFFLINE",
            30,
            "truck A shown offline in Redis",
        )
        assert redis_client.hget("truck:B", "status") == b"MOVING"
        assert proc.popen is not None and proc.popen.poll() is None, proc.log_tail(40)
    finally:
        proc.stop()


def test_a_redis_outage_fails_the_writes_and_the_job_recovers_every_position(
    kafka_bootstrap: str,
    redis_url: str,
    unique_topics: TopicNames,
    tmp_path: Path,
    mode: tuple[str, ...],
) -> None:
    """Redis refuses every write for a few seconds mid-stream (``maxmemory`` 1 byte: writes
    fail with OOM, reads still work). The failed write fails the task, Flink restarts the job
    from its latest checkpoint until Redis takes writes again, and the job ends with every
    truck at its last ping and no position written to the stream twice. Prometheus is scraped
    every 50 ms throughout: a scrape during a failover must not take the JVM down (it did while
    the counts were gauges read from Python, see flink_jobs/metrics.py)."""
    t0 = int(time.time() * 1000) - 3 * 3600_000
    records = fleet_stream(t0, trucks=20, pings=60)
    last_ts = {r[0]: orjson.loads(r[1])["ts"] for r in records}
    half = len(records) // 2
    produce(kafka_bootstrap, unique_topics.gps, records[:half])
    db_url = f"{redis_url.rsplit('/', 1)[0]}/3"
    db = redis.Redis.from_url(db_url)
    db.flushdb()
    ckpt = tmp_path / "checkpoints"
    rest_port, metrics_port = free_port(), free_port()
    proc = job_process(
        "flink_jobs.tracking.job",
        tmp_path / "job.log",
        kafka_bootstrap,
        db_url,
        unique_topics,
        "--group-id",
        "it-redis-outage",
        "--checkpoint-dir",
        str(ckpt),
        "--checkpoint-interval-ms",
        "500",
        "--rest-port",
        str(rest_port),
        "--metrics-port",
        str(metrics_port),
        *mode,
    ).start()

    def failures() -> int:
        """Task failures so far, from the JobManager's REST API."""
        import urllib.request

        def get(path: str) -> dict:  # type: ignore[type-arg]
            url = f"http://127.0.0.1:{rest_port}{path}"
            return orjson.loads(urllib.request.urlopen(url, timeout=5).read())  # type: ignore[no-any-return]

        [job] = get("/jobs/overview")["jobs"]
        return len(get(f"/jobs/{job['jid']}/exceptions")["exceptionHistory"]["entries"])

    try:
        with ScrapeLoop(metrics_port) as scrapes:
            wait_until(
                lambda: list(ckpt.glob("*/chk-*/_metadata")) and db.dbsize() > 10,
                180,
                "a completed checkpoint and the first positions",
            )
            db.config_set("maxmemory", "1")
            try:
                produce(kafka_bootstrap, unique_topics.gps, records[half:])
                wait_until(lambda: failures() >= 1, 120, "a task failure on a refused write")
            finally:
                db.config_set("maxmemory", "0")

            def caught_up() -> bool:
                return all(
                    db.hget(f"truck:{k.decode()}", "ts_ms") == str(v).encode()
                    for k, v in last_ts.items()
                )

            wait_until(caught_up, 180, "every truck at its last ping once Redis takes writes")
            wait_until(
                lambda: labelled(scrapes.last, POSITION_WRITES, {"kind": "position"}) > 0,
                30,
                "the restarted job's counts on the Prometheus endpoint",
            )
        assert proc.popen is not None and proc.popen.poll() is None, proc.log_tail(40)
        assert scrapes.scrapes > 20
    finally:
        proc.stop()
    entries = [
        (f[b"truck_id"], f[b"ts_ms"], f[b"status"]) for _, f in db.xrange("stream:positions")
    ]
    assert len(entries) == len(set(entries))  # replays after the outage added no repeats
