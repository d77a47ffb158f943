"""The pure parts of `fleetpulse backfill`: times, ranges of offsets, staging, the report."""

from __future__ import annotations

from typing import Any

import pytest

from fleetpulse.backfill import BackfillError
from fleetpulse.backfill.cli import parse_allowed
from fleetpulse.backfill.compare import Snapshot, Thresholds, compare, distance_m
from fleetpulse.backfill.io import alerts_by_class, event_ms
from fleetpulse.backfill.ranges import (
    OffsetRange,
    describe_rate,
    parse_time,
    range_offsets,
    redis_db,
    staging_db,
    with_db,
)
from fleetpulse.backfill.run import BackfillPlan, pass_through, staging_topics
from udfs.contract import TopicNames

pytestmark = pytest.mark.unit


def test_times_are_epoch_ms_or_iso_8601_in_utc() -> None:
    assert parse_time("1764099641123") == 1764099641123
    assert parse_time("2026-12-07T10:00:00Z") == 1796637600000
    assert parse_time("2026-12-07T10:00:00") == 1796637600000  # no zone: UTC
    assert parse_time("2026-12-07T11:00:00+01:00") == 1796637600000
    with pytest.raises(BackfillError, match="ISO 8601"):
        parse_time("yesterday")
    with pytest.raises(BackfillError, match="before 1970"):
        parse_time("-5")


def test_the_range_counts_the_records_between_the_offsets_for_the_two_times() -> None:
    ends = {("g", 0): 100, ("g", 1): 50, ("g", 2): 10}
    span = range_offsets(
        {("g", 0): 20, ("g", 1): None, ("g", 2): 0},  # partition 1: nothing that late
        {("g", 0): 70, ("g", 1): None, ("g", 2): None},  # None: up to the end offset
        ends,
    )
    assert span.start == {("g", 0): 20, ("g", 1): 50, ("g", 2): 0}
    assert span.stop == {("g", 0): 70, ("g", 1): 50, ("g", 2): 10}
    assert span.total == 60
    assert span.done({}) == 0
    assert span.done({("g", 0): 45}) == 25
    assert span.done({("g", 0): 90, ("g", 2): 10}) == 60  # past the stop counts as the stop


def test_progress_line_gives_rate_and_eta() -> None:
    assert describe_rate(0, 1.0, 100) == "starting"
    assert describe_rate(1000, 2.0, 61_000) == "500 rec/s, ETA 2:00"
    assert OffsetRange({}, {}).total == 0


def test_staging_is_another_database_of_the_same_redis() -> None:
    url = "redis://:secret@10.0.0.5:6380/2?socket_timeout=5"
    assert redis_db(url) == 2
    assert staging_db(url, None) == 3
    assert staging_db("redis://h:1", None) == 1
    assert redis_db("redis://h:1?db=4") == 4
    assert with_db(url, 3) == "redis://:secret@10.0.0.5:6380/3?socket_timeout=5"
    assert with_db("redis://h:1?db=4", 5) == "redis://h:1/5"
    with pytest.raises(BackfillError, match="must not be the live one"):
        staging_db(url, 2)


def test_the_backfill_writes_staging_topics_only_and_refuses_flags_it_sets() -> None:
    live = TopicNames()
    staged = staging_topics(live, ".staging")
    assert staged.alerts == "fleet.alerts.staging" and staged.gps == "fleet.gps"
    with pytest.raises(BackfillError):
        staging_topics(live, "")
    plan = BackfillPlan("tracking", 1, 2, "k:9092", "redis://h/1", live, staged, "g")
    argv = plan.argv()
    assert argv[argv.index("--alerts-topic") + 1] == "fleet.alerts.staging"
    assert argv[argv.index("--geofence-topic") + 1] == "fleet.geofence-events.staging"
    assert "--redis-url" not in argv  # by environment: it may hold a password
    assert plan.input_topics() == ["fleet.gps"]
    with pytest.raises(BackfillError, match="--alerts-topic is set by the backfill"):
        pass_through(["--alerts-topic=fleet.alerts"])
    assert pass_through(["--detection-slack-ms", "0"]) == ("--detection-slack-ms", "0")


def test_the_environment_of_the_job_drops_the_live_jobs_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from udfs.kafka_properties import KafkaProperties

    monkeypatch.setenv("FLEETPULSE_RESTORE", "latest")
    monkeypatch.setenv("FLEETPULSE_CHECKPOINT_DIR", "/live/checkpoints")
    live = TopicNames()
    plan = BackfillPlan("delay", 1, 2, "k", "redis://h/1", live, staging_topics(live, ".s"), "g")
    env = plan.environment(KafkaProperties())
    assert "FLEETPULSE_RESTORE" not in env and "FLEETPULSE_CHECKPOINT_DIR" not in env
    assert env["FLEETPULSE_REDIS_URL"] == "redis://h/1"
    assert plan.input_topics() == ["fleet.scans", "fleet.gps"]


def snapshot(**changes: object) -> Snapshot:
    base: dict[str, object] = {
        "regions": {"WEST": {"total_shipments": 4.0, "total_delay_hours": 2.5}},
        "delays": {"shipment:S1": 3.0, "shipment:S2": 1.0},
        "positions": {"T1": {"lat": "47.6", "lng": "-122.3", "status": "MOVING", "ts_ms": "5"}},
        "alerts": {"shipment_late/trigger": 10},
    }
    return Snapshot(**{**base, **changes})  # type: ignore[arg-type]


def test_equal_sides_make_a_clean_report() -> None:
    report = compare(snapshot(), snapshot(), Thresholds())
    assert report.ok and report.differences == ()
    assert report.to_json()["ok"] is True
    assert "regions    ok" in report.summary()


def test_every_kind_of_difference_is_listed_and_breaches_its_section() -> None:
    staging = snapshot(
        regions={"WEST": {"total_shipments": 5.0, "total_delay_hours": 2.5}},
        delays={"shipment:S1": 4.0, "shipment:S3": 1.0},
        positions={"T1": {"lat": "47.7", "lng": "-122.3", "status": "MOVING", "ts_ms": "5"}},
        alerts={"shipment_late/trigger": 9, "shipment_at_risk/trigger": 1},
    )
    report = compare(snapshot(), staging, Thresholds())
    keys = [(d.section, d.key) for d in report.differences]
    assert keys == [
        ("regions", "WEST.total_shipments"),
        ("delays", "shipment:S1"),
        ("delays", "shipment:S2"),
        ("delays", "shipment:S3"),
        ("positions", "T1"),
        ("alerts", "shipment_at_risk/trigger"),
        ("alerts", "shipment_late/trigger"),
    ]
    assert report.breaches == ["regions", "delays", "positions", "alerts"]
    assert not report.ok
    assert "BREACH" in report.summary()


def test_thresholds_forgive_what_they_say() -> None:
    staging = snapshot(
        regions={"WEST": {"total_shipments": 4.0, "total_delay_hours": 2.6}},
        positions={"T1": {"lat": "47.60001", "lng": "-122.3", "status": "MOVING", "ts_ms": "5"}},
        alerts={"shipment_late/trigger": 11},
        delays={"shipment:S1": 3.0},
    )
    lenient = Thresholds(
        max_differences={"delays": 1},
        region_tolerance=0.2,
        position_tolerance_m=5.0,
        alert_tolerance=0.1,
    )
    report = compare(snapshot(), staging, lenient)
    assert [d.section for d in report.differences] == ["delays"]
    assert report.ok
    assert not compare(snapshot(), staging, Thresholds()).ok


def test_a_truck_missing_from_staging_or_with_another_status_is_a_difference() -> None:
    moved = {"T1": {"lat": "47.6", "lng": "-122.3", "status": "OFFLINE", "ts_ms": "5"}}
    assert [
        d.detail for d in compare(snapshot(), snapshot(positions=moved), Thresholds()).differences
    ] == ["status or ts_ms"]
    assert [
        d.detail for d in compare(snapshot(), snapshot(positions={}), Thresholds()).differences
    ] == ["only in live"]


def test_distance() -> None:
    assert distance_m(47.6, -122.3, 47.6, -122.3) == 0
    assert distance_m(0.0, 0.0, 1.0, 0.0) == pytest.approx(111_195, rel=1e-3)


def test_alerts_are_counted_by_class_and_action_of_the_job_in_the_event_time_range() -> None:
    def alert(source: str, cls: str, action: str, ts: int) -> dict[str, Any]:
        return {
            "event_action": action,
            "payload": {"source": source, "class": cls, "custom_details": {"event_ts": ts}},
        }

    alerts = [
        alert("fleetpulse/delay-job", "shipment_late", "trigger", 100),
        alert("fleetpulse/delay-job", "shipment_late", "trigger", 150),
        alert("fleetpulse/delay-job", "shipment_late", "resolve", 150),
        alert("fleetpulse/delay-job", "shipment_late", "trigger", 200),  # at --to: out
        alert("fleetpulse/tracking-job", "truck_offline", "trigger", 120),  # other job
        {"event_action": "trigger", "payload": {"source": "fleetpulse/delay-job"}},  # no time
    ]
    assert alerts_by_class(alerts, "delay", 100, 200) == {
        "shipment_late/trigger": 2,
        "shipment_late/resolve": 1,
    }
    assert event_ms({"payload": {"timestamp": "1970-01-01T00:00:01Z"}}) == 1000


def test_max_differences_flags() -> None:
    assert parse_allowed(("alerts=3",))["alerts"] == 3
    with pytest.raises(BackfillError, match="SECTION=N"):
        parse_allowed(("nope=1",))


def test_the_jobs_range_settings_must_be_in_order(capsys: pytest.CaptureFixture[str]) -> None:
    from flink_jobs.tracking.settings import TrackingSettings

    ok = TrackingSettings.from_argv(["--start-timestamp-ms", "5", "--stop-timestamp-ms", "6"], {})
    assert (ok.start_timestamp_ms, ok.stop_timestamp_ms) == (5, 6)
    with pytest.raises(SystemExit):
        TrackingSettings.from_argv(["--start-timestamp-ms", "5", "--stop-timestamp-ms", "5"], {})
    assert "--stop-timestamp-ms" in capsys.readouterr().err


class _Tables:
    """Records the SQL a job's table environment is given."""

    def __init__(self) -> None:
        self.sql: list[str] = []

    def execute_sql(self, sql: str) -> None:
        self.sql.append(sql)


def test_the_kafka_source_reads_the_range_by_timestamp_and_otherwise_from_group_offsets() -> None:
    from flink_jobs.runtime.kafka import kafka_raw_table
    from flink_jobs.tracking.settings import TrackingSettings

    ranged, live = _Tables(), _Tables()
    settings = TrackingSettings(start_timestamp_ms=1000, stop_timestamp_ms=2000, bounded=True)
    kafka_raw_table(ranged, settings, "fleet.gps", "gps")  # type: ignore[arg-type]
    kafka_raw_table(live, TrackingSettings(), "fleet.gps", "gps")  # type: ignore[arg-type]
    sql = " ".join(ranged.sql[0].split())
    assert "'scan.startup.mode' = 'timestamp','scan.startup.timestamp-millis' = '1000'" in sql
    assert "'scan.bounded.mode' = 'timestamp','scan.bounded.timestamp-millis' = '2000'" in sql
    assert "latest-offset" not in sql and "group-offsets" not in sql
    plain = " ".join(live.sql[0].split())
    assert "'scan.startup.mode' = 'group-offsets'" in plain and "scan.bounded" not in plain
