"""The exporter's plumbing without servers: the reader's time bounds and failure handling, the
Flink REST reading (answers faked), the cache, the metric families and the settings."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from fleetpulse.exporter import ExporterError
from fleetpulse.exporter.cache import Cached
from fleetpulse.exporter.readings import JobReading, LagReading, Readings, RedisReading
from fleetpulse.exporter.readings import RegionReading as Region
from fleetpulse.exporter.service import ReadingsCollector
from fleetpulse.exporter.settings import ExporterSettings
from fleetpulse.exporter.sources import Budget, FlinkJobs, Reader, normalize_url, source_of

pytestmark = pytest.mark.unit


def test_reader_names_failing_and_hanging_sources_and_keeps_the_others() -> None:
    release = threading.Event()

    def hang() -> tuple[LagReading, ...]:
        release.wait(10)
        return ()

    def broken() -> RedisReading:
        raise ConnectionError("refused")

    reader = Reader(0.2, redis=broken, kafka=hang)
    try:
        first = reader.read()
        assert first.redis is None and first.lags is None
        assert first.errors == {
            "redis": "ConnectionError: refused",
            "kafka": "no answer within 0.2 s",
        }
        # the hung read is not started a second time while it still runs
        second = reader.read()
        assert second.errors["kafka"] == "the previous read has not returned yet"
    finally:
        release.set()
        reader.close()


def test_reader_without_flink_has_no_job_readings() -> None:
    reader = Reader(1.0, kafka=lambda: (LagReading("g", "t", 1),))
    try:
        r = reader.read()
    finally:
        reader.close()
    assert r.jobs is None and r.lags == (LagReading("g", "t", 1),) and r.errors == {}


class FakeRest:
    """Answers of a Flink REST API by path; ``down`` makes every call fail."""

    def __init__(self) -> None:
        self.down = False
        self.bad: set[str] = set()  # paths answering something that is not JSON
        self.calls: list[str] = []
        self.answers: dict[str, Any] = {
            "/jobs/overview": {
                "jobs": [
                    {
                        "jid": "a1",
                        "name": "fleetpulse-tracking",
                        "state": "RUNNING",
                        "start-time": 1_000,
                    },
                    {
                        "jid": "b1",
                        "name": "fleetpulse-delay",
                        "state": "FAILING",
                        "start-time": 2_000,
                    },
                ]
            },
            "/jobs/a1/checkpoints": {"latest": {"completed": {"latest_ack_timestamp": 7_000}}},
            "/jobs/a1/metrics?get=numRestarts": [{"id": "numRestarts", "value": "3"}],
        }

    def get(self, url: str, timeout_s: float) -> Any:
        assert timeout_s > 0
        path = url.removeprefix("http://flink:8081")
        self.calls.append(path)
        if self.down:
            raise ConnectionRefusedError("refused")
        if path in self.bad:
            raise ValueError("bad json")
        return self.answers[path]


def test_flink_jobs_read_details_of_running_jobs_only() -> None:
    rest = FakeRest()
    jobs = FlinkJobs("flink:8081", 3.0, get=rest.get, now_ms=lambda: 10_000)
    assert jobs.read() == [
        JobReading("fleetpulse-delay", "http://flink:8081", "FAILING"),
        JobReading("fleetpulse-tracking", "http://flink:8081", "RUNNING", 3, 3.0),
    ]
    assert "/jobs/b1/checkpoints" not in rest.calls


def test_flink_jobs_seen_before_read_as_unreachable_when_the_api_stops_answering() -> None:
    rest = FakeRest()
    jobs = FlinkJobs("http://flink:8081/", 3.0, get=rest.get, now_ms=lambda: 10_000)
    jobs.read()
    rest.down = True
    reader = Reader(3.0, flink=[jobs])
    try:
        r = reader.read()
    finally:
        reader.close()
    assert r.jobs is not None
    assert [(j.name, j.state, j.up) for j in r.jobs] == [
        ("fleetpulse-delay", "UNREACHABLE", False),
        ("fleetpulse-tracking", "UNREACHABLE", False),
    ]
    assert list(r.errors) == ["flink http://flink:8081"]
    assert source_of("flink http://flink:8081") == "flink"


def test_flink_job_details_that_fail_leave_the_job_up_without_details() -> None:
    rest = FakeRest()
    rest.bad.add("/jobs/a1/checkpoints")
    reader = Reader(3.0, flink=[FlinkJobs("flink:8081", 3.0, get=rest.get)])
    try:
        r = reader.read()
    finally:
        reader.close()
    assert r.jobs is not None
    tracking = {j.name: j for j in r.jobs}["fleetpulse-tracking"]
    assert tracking.up and tracking.restarts is None and tracking.checkpoint_age_s is None
    assert "bad json" in r.errors["flink http://flink:8081"]


def test_budget_runs_out() -> None:
    now = [0.0]
    budget = Budget(2.0, clock=lambda: now[0])
    now[0] = 1.5
    assert budget.left() == pytest.approx(0.5)
    now[0] = 2.0
    with pytest.raises(TimeoutError):
        budget.left()


def test_normalize_url() -> None:
    assert normalize_url("127.0.0.1:8081") == "http://127.0.0.1:8081"
    assert normalize_url("https://f:1/ ") == "https://f:1"


def test_cache_reads_once_per_interval_and_reports_each_new_reading() -> None:
    now = [0.0]
    reads: list[int] = []
    refreshed: list[int] = []

    def read() -> int:
        reads.append(1)
        return len(reads)

    cached = Cached(read, 5.0, on_refresh=refreshed.append, clock=lambda: now[0])
    assert [cached.get(), cached.get()] == [1, 1]
    now[0] = 4.9
    assert cached.get() == 1
    now[0] = 5.0
    assert cached.get() == 2
    assert refreshed == [1, 2]


SAMPLE = Readings(
    redis=RedisReading(
        (Region("WEST", {"active": 3.0, "moving": 2.0, "stopped": None}, 40.0, 1.5),),
        {1: 2, 2: 0, 3: 0, 4: 0, 5: 1},
        12.5,
    ),
    lags=(LagReading("fleetpulse-tracking", "fleet.gps", 42),),
    jobs=(
        JobReading("fleetpulse-tracking", "u", "RUNNING", 0, 4.0),
        JobReading("fleetpulse-delay", "u", "UNREACHABLE"),
    ),
)


def scrape(readings: Readings) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(ReadingsCollector(Cached(lambda: readings, 5.0)))
    return registry


def test_families_carry_every_reading_under_the_spec_names() -> None:
    r = scrape(SAMPLE)
    value = r.get_sample_value
    assert (
        value(
            "fleetpulse_kafka_consumer_lag_records",
            {"group": "fleetpulse-tracking", "topic": "fleet.gps"},
        )
        == 42
    )
    assert value("fleetpulse_position_age_seconds") == 12.5
    assert value("fleetpulse_region_trucks", {"region": "WEST", "state": "moving"}) == 2
    assert value("fleetpulse_region_trucks", {"region": "WEST", "state": "stopped"}) is None
    assert value("fleetpulse_region_shipments", {"region": "WEST"}) == 40
    assert value("fleetpulse_region_delay_hours", {"region": "WEST"}) == 1.5
    assert value("fleetpulse_delayed_shipments", {"severity": "5"}) == 1
    assert value("fleetpulse_delayed_shipments", {"severity": "2"}) == 0
    assert value("fleetpulse_flink_job_up", {"job": "fleetpulse-tracking"}) == 1
    assert value("fleetpulse_flink_job_up", {"job": "fleetpulse-delay"}) == 0
    assert value("fleetpulse_flink_job_restarts", {"job": "fleetpulse-tracking"}) == 0
    assert value("fleetpulse_flink_checkpoint_age_seconds", {"job": "fleetpulse-tracking"}) == 4
    assert value("fleetpulse_flink_job_restarts", {"job": "fleetpulse-delay"}) is None


def test_a_source_that_failed_leaves_its_gauges_absent() -> None:
    text = generate_latest(scrape(Readings(errors={"redis": "down"}))).decode()
    samples = [line for line in text.splitlines() if not line.startswith("#")]
    assert samples == []
    assert "# TYPE fleetpulse_position_age_seconds gauge" in text


def test_settings_refuse_bad_values_naming_the_flag() -> None:
    ExporterSettings().validate()
    ExporterSettings(flink_urls=("127.0.0.1:8081", "https://f.example:443")).validate()
    for bad, flag in (
        (ExporterSettings(port=70000), "--port"),
        (ExporterSettings(bootstrap="kafka"), "--bootstrap"),
        (ExporterSettings(redis_url="http://r:6379"), "--redis-url"),
        (ExporterSettings(flink_urls=("ftp://f:1",)), "--flink-url"),
        (ExporterSettings(flink_urls=("f:99999",)), "--flink-url"),
        (ExporterSettings(alerts_topic="bad topic"), "--alerts-topic"),
        (ExporterSettings(regions=("west!",)), "--region"),
        (ExporterSettings(cache_s=0), "--cache-seconds"),
        (ExporterSettings(timeout_s=0), "--timeout"),
        (ExporterSettings(label_limit=0), "--label-limit"),
    ):
        with pytest.raises(ExporterError, match=flag):
            bad.validate()
