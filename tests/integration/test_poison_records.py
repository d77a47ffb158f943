"""Hostile input through real Kafka into both Flink jobs (issue 27): every record of the poison
corpus (tests/poison_corpus.py) comes out as one bounded dead letter with its reason at its
partition and offset, no task fails (the JobManager's exception history stays empty), a valid
sentinel record sent after the corpus is processed, and the job is still running."""

from __future__ import annotations

import base64
import hashlib
import time
import urllib.request
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
from jobs import job_process, read_topic
from kafka import KafkaProducer
from poison_corpus import poison_records

from fleetpulse.waiting import free_port, wait_until
from udfs.contract import TopicNames
from udfs.models import (
    DEAD_LETTER_KEY_BYTES,
    DEAD_LETTER_MAX_BYTES,
    DEAD_LETTER_PRODUCER_MAX_BYTES,
    DEAD_LETTER_RAW_BYTES,
    Rejection,
)
from udfs.ping_validation import parse_ping
from udfs.scan_validation import parse_scan

pytestmark = pytest.mark.integration
HOUR = 3_600_000

Record = tuple[str, bytes | None, bytes | None]


def send(kafka: str, topic: str, records: list[Record]) -> dict[tuple[int, int], Record]:
    """Each record by the (partition, offset) the broker gave it."""
    producer = KafkaProducer(
        bootstrap_servers=kafka, linger_ms=5, max_request_size=DEAD_LETTER_PRODUCER_MAX_BYTES
    )
    futures = [
        (producer.send(topic, key=key, value=value), (name, key, value))
        for name, key, value in records
    ]
    placed = {}
    for future, record in futures:
        meta = future.get(timeout=30)
        placed[(meta.partition, meta.offset)] = record
    producer.close()
    return placed


def ping(truck: str, ts: int) -> bytes:
    """A valid GPS ping of ``truck`` at ``ts``."""
    return orjson.dumps({"truck_id": truck, "ts": ts, "lat": 47.6, "lng": -122.3, "speed_kph": 50})


def scan_poison(now: int) -> list[Record]:
    """Scan-specific hostile values: valid JSON of the right shape, values out of range."""

    def scan(sid: str, **fields: Any) -> bytes:
        return orjson.dumps(
            {
                "scan_id": f"{sid}-1",
                "shipment_id": sid,
                "type": "PICKED_UP",
                "ts": now - HOUR,
                "lat": 47.6,
                "lng": -122.3,
                "dest_lat": 45.5,
                "dest_lng": -122.6,
                "promised_by": now,
                **fields,
            }
        )

    big = (
        b'{"scan_id":"S-1","shipment_id":"BIG","type":"PICKED_UP","ts":%d,"lat":47.6,'
        b'"lng":-122.3,"dest_lat":45.5,"dest_lng":-122.6,"promised_by":%d}'
    )
    return [
        ("promised_by_past_java_long", b"P1", big % (now - HOUR, 2**63 + 5)),
        ("promised_by_at_java_long", b"P2", big % (now - HOUR, 2**63 - 1)),
        ("promised_by_400_days_out", b"P3", scan("FAR", promised_by=now + 400 * 24 * HOUR)),
        ("ts_in_1970", b"P4", scan("OLD", ts=5)),
        ("ts_next_year", b"P5", scan("FUT", ts=now + 365 * 24 * HOUR)),
        # after ANCHOR (below) on the same partition: a valid scan, but 9 days behind
        (
            "ts_stale_9_days",
            b"ANCHOR",
            scan("STALE", ts=now - 9 * 24 * HOUR, promised_by=now - 8 * 24 * HOUR),
        ),
    ]


# Valid records read before the corpus, so that a reader's event time is ``now``: the
# corpus's ``*_stale_*`` records (same key, so same partition) are then STALE_TIMESTAMP.
STALE = "STALE_TIMESTAMP"


def with_tombstone(records: list[Record]) -> list[Record]:
    """The poison corpus and a record with no value at all (a tombstone: not b"")."""
    return [*records, ("tombstone", b"TOMBSTONE", None)]


def expected_reason(parse: Any, name: str, value: bytes, now: int) -> str:
    if "_stale_" in name:
        return STALE  # valid alone: stale against what its reader accepted before
    verdict = parse(value, now)
    assert isinstance(verdict, Rejection), "a poison record the parser accepts"
    return str(verdict.reason.value)


def key_text(key: bytes | None) -> tuple[str | None, str | None]:
    """A dead letter's ``key`` and ``key_encoding`` for an original Kafka key (contract)."""
    if key is None:
        return None, None
    try:
        text = key.decode("utf-8")
    except UnicodeDecodeError:
        return base64.b64encode(key[:DEAD_LETTER_KEY_BYTES]).decode(), "base64"
    return text, None


def rest(rest_port: int, path: str) -> Any:
    url = f"http://127.0.0.1:{rest_port}{path}"
    return orjson.loads(urllib.request.urlopen(url, timeout=5).read())


def job_report(rest_port: int) -> str:
    """What the JobManager says of the job, for a failure message."""
    try:
        [job] = rest(rest_port, "/jobs/overview")["jobs"]
        detail = rest(rest_port, f"/jobs/{job['jid']}")
        history = rest(rest_port, f"/jobs/{job['jid']}/exceptions")["exceptionHistory"]
        return str(
            {
                "state": job["state"],
                "vertices": [
                    (
                        v["name"][:60],
                        v["status"],
                        v["metrics"]["read-records"],
                        v["metrics"]["write-records"],
                    )
                    for v in detail["vertices"]
                ],
                "exceptions": [e.get("stacktrace", "")[:3000] for e in history["entries"]],
            }
        )
    except Exception as exc:  # noqa: BLE001 - a report, not a check
        return f"no report: {exc!r}"


def exceptions(rest_port: int) -> list[Any]:
    [job] = rest(rest_port, "/jobs/overview")["jobs"]
    return rest(rest_port, f"/jobs/{job['jid']}/exceptions")["exceptionHistory"]["entries"]  # type: ignore[no-any-return]


def dead_letters(kafka: str, topics: TopicNames, source: str) -> list[dict[str, Any]]:
    return [d for d in read_topic(kafka, topics.dlq) if d["source_topic"] == source]


def check_dead_letters(
    kafka: str,
    topics: TopicNames,
    source: str,
    placed: dict[tuple[int, int], Record],
    parse: Any,
    now: int,
) -> None:
    letters = dead_letters(kafka, topics, source)
    by_place = {}
    for d in letters:
        assert (d["partition"], d["offset"]) not in by_place, "two dead letters for one record"
        by_place[(d["partition"], d["offset"])] = d
    assert set(by_place) == set(placed), sorted(placed[p][0] for p in set(placed) - set(by_place))
    for place, (name, key, value) in placed.items():
        d = by_place[place]
        value = value or b""  # a tombstone: read as no bytes
        assert d["reason"] == expected_reason(parse, name, value, now), name
        assert d["raw_size"] == len(value), name
        assert d["raw_sha256"] == hashlib.sha256(value).hexdigest(), name
        assert d["raw_truncated"] == (len(value) > DEAD_LETTER_RAW_BYTES), name
        raw = d["raw"].encode() if d["raw_encoding"] == "utf-8" else base64.b64decode(d["raw"])
        assert len(raw) <= DEAD_LETTER_RAW_BYTES and value.startswith(raw), name
        assert (d["key"], d.get("key_encoding")) == key_text(key), name
        assert d.get("key_truncated", False) == (
            key is not None and len(key) > DEAD_LETTER_KEY_BYTES
        ), name
        assert len(orjson.dumps(d)) < DEAD_LETTER_MAX_BYTES


def run_poisoned(
    module: str,
    topic_of: str,
    extra: tuple[str, ...],
    kafka: str,
    redis_url: str,
    topics: TopicNames,
    tmp_path: Path,
    corpus: list[Record],
    anchor: Record,
    sentinel: Record,
    arrived: Any,
    expect_dead_letters: bool = True,
) -> dict[tuple[int, int], Record]:
    """Start the job, send the anchor, the corpus, then the sentinel to ``topic_of``, wait for
    the sentinel to arrive; assert no task failed and the job runs. Returns where each corpus
    record went."""
    rest_port = free_port()
    proc = job_process(
        module,
        tmp_path / "job.log",
        kafka,
        redis_url,
        topics,
        "--group-id",
        f"poison-{topics.dlq}",
        "--rest-port",
        str(rest_port),
        "--checkpoint-interval-ms",
        "1000",
        *extra,
    ).start()
    try:
        wait_until(lambda: exceptions(rest_port) == [], 180, "the job RUNNING")
        send(kafka, topic_of, [anchor])
        placed = send(kafka, topic_of, corpus)
        send(kafka, topic_of, [sentinel])
        try:
            wait_until(arrived, 180, "the sentinel processed after the corpus")
        except Exception as exc:
            raise AssertionError(job_report(rest_port)) from exc
        if expect_dead_letters:
            wait_until(
                lambda: len(dead_letters(kafka, topics, topic_of)) >= len(corpus),
                60,
                "a dead letter for every poison record",
            )
        report = job_report(rest_port)
        assert exceptions(rest_port) == [], report
        assert "'state': 'RUNNING'" in report, report
        assert proc.popen is not None and proc.popen.poll() is None, proc.log_tail(40)
    finally:
        proc.stop()
    return placed


@pytest.mark.timeout(600)
def test_the_tracking_job_dead_letters_every_poison_record_and_goes_on(
    kafka_bootstrap: str,
    redis_url: str,
    redis_client: redis.Redis,
    unique_topics: TopicNames,
    tmp_path: Path,
) -> None:
    now = int(time.time() * 1000)
    corpus = with_tombstone(poison_records()) + [
        ("ping_stale_2_days", b"ANCHOR", ping("ANCHOR", now - 48 * HOUR))
    ]
    anchor = ("anchor", b"ANCHOR", ping("ANCHOR", now))
    sentinel = ("sentinel", b"SENTINEL", ping("SENTINEL", now))
    placed = run_poisoned(
        "flink_jobs.tracking.job",
        unique_topics.gps,
        ("--bundle-shards", "8"),
        kafka_bootstrap,
        redis_url,
        unique_topics,
        tmp_path,
        corpus,
        anchor,
        sentinel,
        lambda: redis_client.hget("truck:SENTINEL", "ts_ms") == str(now).encode(),
    )
    check_dead_letters(kafka_bootstrap, unique_topics, unique_topics.gps, placed, parse_ping, now)


@pytest.mark.timeout(600)
def test_the_delay_job_dead_letters_every_poison_record_and_goes_on(
    kafka_bootstrap: str,
    redis_url: str,
    redis_client: redis.Redis,
    unique_topics: TopicNames,
    tmp_path: Path,
) -> None:
    """Both of the job's readers of `fleet.scans` (the Python path and MATCH_RECOGNIZE, which
    reads only validated scans) and its `fleet.gps` reader (the at-risk feed) on poison; the
    sentinel is a shipment late on arrival, which must reach `delays`."""
    now = int(time.time() * 1000)
    corpus = with_tombstone(poison_records()) + scan_poison(now)

    def picked_up(sid: str, ts: int, promised_by: int) -> bytes:
        return orjson.dumps(
            {
                "scan_id": f"{sid}-1",
                "shipment_id": sid,
                "type": "PICKED_UP",
                "ts": ts,
                "lat": 47.6,
                "lng": -122.3,
                "dest_lat": 45.5,
                "dest_lng": -122.6,
                "promised_by": promised_by,
            }
        )

    anchor = ("anchor", b"ANCHOR", picked_up("ANCHOR", now - HOUR, now + 24 * HOUR))
    # promised before it was picked up: late as soon as event time passes its scan
    sentinel = ("sentinel", b"SENTINEL", picked_up("SENTINEL", now - 2 * 60_000, now - 3 * 60_000))
    send(kafka_bootstrap, unique_topics.gps, poison_records())  # read, ignored (not its DLQ)
    placed = run_poisoned(
        "flink_jobs.delay.job",
        unique_topics.scans,
        ("--fallback-grace-ms", "1000", "--idle-timeout-ms", "2000"),
        kafka_bootstrap,
        redis_url,
        unique_topics,
        tmp_path,
        corpus,
        anchor,
        sentinel,
        lambda: redis_client.zscore("delays", "shipment:SENTINEL") is not None,
    )
    check_dead_letters(kafka_bootstrap, unique_topics, unique_topics.scans, placed, parse_scan, now)


@pytest.mark.timeout(600)
def test_dead_letters_that_cannot_be_written_are_counted_and_reading_goes_on(
    kafka_bootstrap: str,
    redis_url: str,
    redis_client: redis.Redis,
    unique_topics: TopicNames,
    tmp_path: Path,
) -> None:
    """The dead-letter topic does not exist (the broker creates no topic by itself): every
    dead letter fails, is counted, and the job neither fails a task nor stalls."""
    from dataclasses import replace

    from jobs import job_metrics, metric

    now = int(time.time() * 1000)
    topics = replace(unique_topics, dlq=f"{unique_topics.dlq}.missing")
    metrics_port = free_port()
    bad: list[Record] = [(f"bad_{i}", b"K", b"{not json") for i in range(20)]
    sentinel = ("sentinel", b"SENTINEL", ping("SENTINEL", now))
    anchor = ("anchor", b"ANCHOR", ping("ANCHOR", now))
    run_poisoned(
        "flink_jobs.tracking.job",
        topics.gps,
        ("--metrics-port", str(metrics_port), "--dlq-topic", topics.dlq),
        kafka_bootstrap,
        redis_url,
        topics,
        tmp_path,
        bad,
        anchor,
        sentinel,
        lambda: (
            redis_client.hget("truck:SENTINEL", "ts_ms") == str(now).encode()
            and metric(job_metrics(metrics_port), "dlq_write_failures") >= len(bad)
        ),
        expect_dead_letters=False,
    )
