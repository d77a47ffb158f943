"""The exporter's readings from raw answers (no servers): lag, position age, region hashes,
Flink jobs by name, checkpoint age and restarts, and the labels of counted records."""

from __future__ import annotations

import orjson
import pytest

from fleetpulse.exporter.readings import (
    JobReading,
    checkpoint_age_s,
    job_reading,
    lag_per_topic,
    lag_readings,
    merge_jobs,
    num_restarts,
    pick_jobs,
    position_age_s,
    redis_reading,
    region_reading,
    unreachable_jobs,
)
from fleetpulse.exporter.records import (
    OTHER,
    REASSERT,
    UNREADABLE,
    LabelGuard,
    Reassertions,
    RecordLabels,
)

pytestmark = pytest.mark.unit


def test_lag_sums_end_minus_committed_over_committed_partitions() -> None:
    committed = {("fleet.gps", 0): 10, ("fleet.gps", 1): 5, ("fleet.scans", 0): 7}
    ends = {("fleet.gps", 0): 15, ("fleet.gps", 1): 5, ("fleet.scans", 0): 9}
    assert lag_per_topic(committed, ends) == {"fleet.gps": 5, "fleet.scans": 2}


def test_lag_skips_partitions_without_commit_or_end_and_is_never_negative() -> None:
    committed = {("t", 0): -1001, ("t", 1): 20, ("t", 2): 3, ("u", 0): 4}
    ends = {("t", 0): 50, ("t", 1): 18, ("t", 2): 8}  # u: end unknown (topic deleted)
    assert lag_per_topic(committed, ends) == {"t": 5}


def test_lag_readings_are_per_group_and_topic() -> None:
    out = lag_readings({"b": {("t", 0): 1}, "a": {("t", 0): 3}, "empty": {}}, {("t", 0): 4})
    assert [(x.group, x.topic, x.lag) for x in out] == [("a", "t", 1), ("b", "t", 3)]


def test_position_age_uses_the_entry_id_and_redis_clock() -> None:
    newest = [(b"1764099641123-0", {b"truck_id": b"T1"})]
    assert position_age_s(newest, (1764099646, 623000)) == pytest.approx(5.5)
    assert position_age_s([], (1764099646, 0)) is None
    assert position_age_s([(b"garbage", {})], (1764099646, 0)) is None
    # an entry "from the future" (clocks moved) is not a negative age
    assert position_age_s(newest, (1764099640, 0)) == 0.0


def test_region_reading_parses_numbers_and_leaves_bad_fields_out() -> None:
    r = region_reading(
        "WEST",
        {
            b"active_trucks": b"12",
            b"moving_trucks": b"9",
            b"stopped_trucks": b"x",
            b"total_shipments": b"40",
            b"total_delay_hours": b"3.25",
        },
    )
    assert r is not None
    assert r.trucks == {"active": 12.0, "moving": 9.0, "stopped": None}
    assert (r.shipments, r.delay_hours) == (40.0, 3.25)
    assert region_reading("EAST", {}) is None
    nan = region_reading("X", {"total_shipments": "nan", "active_trucks": "inf"})
    assert nan is not None and nan.shipments is None and nan.trucks["active"] is None


def test_redis_reading_keeps_existing_regions_and_counts_per_severity() -> None:
    r = redis_reading(
        ["WEST", "SOUTH"], [{b"active_trucks": b"1"}, {}], [3, 0, 1, 0, 2], [], (100, 0)
    )
    assert [x.region for x in r.regions] == ["WEST"]
    assert r.delayed == {1: 3, 2: 0, 3: 1, 4: 0, 5: 2}
    assert r.position_age_s is None


def job(name: str, state: str, start: int, jid: str = "j") -> dict[str, object]:
    return {"jid": jid, "name": name, "state": state, "start-time": start}


def test_pick_jobs_prefers_the_running_job_then_the_newest() -> None:
    picked = pick_jobs(
        [
            job("fleetpulse-delay", "CANCELED", 5, "old"),
            job("fleetpulse-delay", "RUNNING", 3, "live"),
            job("fleetpulse-tracking", "FAILED", 1, "a"),
            job("fleetpulse-tracking", "CANCELED", 9, "b"),
            {"jid": "x", "state": "RUNNING"},  # no name: cannot be labelled
        ]
    )
    assert [(j["name"], j["jid"]) for j in picked] == [
        ("fleetpulse-delay", "live"),
        ("fleetpulse-tracking", "b"),
    ]


def test_checkpoint_age_from_the_latest_completed_else_from_the_start() -> None:
    done = {"latest": {"completed": {"id": 7, "latest_ack_timestamp": 10_000}}}
    assert checkpoint_age_s(done, 1_000, 25_000) == 15.0
    none_yet = {"counts": {"completed": 0}, "latest": {"completed": None}}
    assert checkpoint_age_s(none_yet, 1_000, 25_000) == 24.0
    assert checkpoint_age_s(None, 1_000, 25_000) is None  # the details did not answer


def test_num_restarts_from_the_metrics_answer() -> None:
    assert num_restarts([{"id": "numRestarts", "value": "2"}]) == 2
    assert num_restarts([]) is None
    assert num_restarts({"error": "x"}) is None
    assert num_restarts([{"id": "numRestarts", "value": "n/a"}]) is None


def test_job_reading_has_details_only_when_running() -> None:
    running = job_reading(
        "http://f",
        job("fleetpulse-tracking", "RUNNING", 0),
        {"latest": {"completed": {"latest_ack_timestamp": 9_000}}},
        [{"id": "numRestarts", "value": "1"}],
        10_000,
    )
    assert running == JobReading("fleetpulse-tracking", "http://f", "RUNNING", 1, 1.0)
    assert running.up
    restarting = job_reading("http://f", job("d", "RESTARTING", 0), None, None, 10_000)
    assert not restarting.up and restarting.restarts is None


def test_unreachable_and_merged_jobs() -> None:
    gone = unreachable_jobs("http://a", {"fleetpulse-delay"})
    assert [(j.name, j.up) for j in gone] == [("fleetpulse-delay", False)]
    live = JobReading("fleetpulse-delay", "http://b", "RUNNING")
    other = JobReading("fleetpulse-tracking", "http://a", "RUNNING")
    merged = merge_jobs([gone, [live, other]])
    assert merged == (live, other)  # one reading per name, the running one


def test_label_guard_bounds_the_values_of_a_label() -> None:
    guard = LabelGuard(limit=2)
    assert [guard(v) for v in ("a", "b", "c", "a", 'x"}\n', None, 3)] == [
        "a",
        "b",
        OTHER,
        "a",
        OTHER,
        OTHER,
        OTHER,
    ]


def alert(cls: object, action: object, source: object) -> bytes:
    return orjson.dumps(
        {"event_action": action, "dedup_key": "k", "payload": {"class": cls, "source": source}}
    )


def test_alert_labels() -> None:
    labels = RecordLabels(limit=10)
    assert labels.alert(alert("shipment_late", "trigger", "fleetpulse/delay-job")) == (
        "shipment_late",
        "trigger",
        "delay-job",
    )
    assert labels.alert(alert("truck_offline", "explode", None)) == ("truck_offline", OTHER, OTHER)
    assert labels.alert(b"not json") is None
    assert labels.alert(b'{"payload": 3}') is None
    assert labels.alert(None) is None


def test_dead_letter_labels() -> None:
    labels = RecordLabels(limit=10)
    letter = {"source_topic": "fleet.gps", "reason": "BAD_COORDINATES", "raw": "{}"}
    assert labels.dead_letter(orjson.dumps(letter)) == ("BAD_COORDINATES", "fleet.gps")
    assert labels.dead_letter(b"\xff\xfe") == (UNREADABLE, OTHER)
    assert labels.dead_letter(b"[1]") == (UNREADABLE, OTHER)
    assert labels.dead_letter(b"{}") == (OTHER, OTHER)


def test_a_trigger_repeating_the_last_of_its_key_counts_as_a_reassertion() -> None:
    """Issue 29: the jobs re-send an open alert's trigger; the exporter counts it apart."""
    labels = RecordLabels()

    def doc(key: str, action: str, summary: str = "s") -> bytes:
        payload = {
            "class": "truck_offline",
            "source": "fleetpulse/tracking-job",
            "summary": summary,
        }
        return orjson.dumps({"event_action": action, "dedup_key": key, "payload": payload})

    actions = [
        labels.alert(d)[1]  # type: ignore[index]
        for d in (
            doc("k1", "trigger"),
            doc("k1", "trigger"),  # the same again: re-asserted
            doc("k2", "trigger"),
            doc("k1", "trigger", "escalated"),  # another trigger of the key: new
            doc("k1", "trigger", "escalated"),
            doc("k1", "resolve"),
            doc("k1", "trigger", "escalated"),  # after the resolve: a new incident
        )
    ]
    assert actions == ["trigger", REASSERT, "trigger", "trigger", REASSERT, "resolve", "trigger"]


def test_reassertions_keep_a_bounded_memory() -> None:
    r = Reassertions(limit=2)
    for key in ("a", "b", "c"):
        assert r.action(b'{"dedup_key": "%s"}' % key.encode(), "trigger") == "trigger"
    assert r.action(b'{"dedup_key": "a"}', "trigger") == "trigger"  # forgotten: counted anew
    assert r.action(b'{"dedup_key": "c"}', "trigger") == REASSERT
