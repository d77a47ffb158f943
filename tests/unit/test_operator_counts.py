"""Operator counts are Flink counters: a reporter reads them in the JVM, never in Python."""

from __future__ import annotations

import pytest

from flink_jobs.runtime.metrics import (
    OperatorCounts,
    OperatorLevels,
    alert_series,
    dead_letter_series,
    records_series,
    series,
)
from tests.unit.flink_fakes import FakeGroup

pytestmark = pytest.mark.unit


LETTERS = "fleetpulse.reason.malformed_json.dead_letters"
SEVERITY_2 = "fleetpulse.severity.2.delays"


def test_each_series_is_one_flink_counter_holding_the_running_total() -> None:
    group = FakeGroup()
    counts = OperatorCounts(group)
    counts.inc("dead_letters", 1, (("reason", "malformed_json"),))
    assert group.groups == ["fleetpulse", "reason=malformed_json"]
    counts.add(dead_letter_series("MALFORMED_JSON"), 4)
    assert group.groups == ["fleetpulse", "reason=malformed_json"]  # kept, not looked up again
    assert group.counters[LETTERS].count == 5
    assert group.counters[LETTERS].calls == 2
    assert counts.total("dead_letters", {"reason": "malformed_json"}) == 5


def test_labels_are_key_value_groups_in_the_familys_order() -> None:
    group = FakeGroup()
    counts = OperatorCounts(group)
    counts.add(alert_series("truck_offline", "trigger"), 2)
    counts.add(alert_series("truck_offline", "resolve"), 1)
    counts.add(alert_series("geofence_breach", "trigger"), 1)
    assert set(group.counters) == {
        "fleetpulse.class.truck_offline.action.trigger.alerts",
        "fleetpulse.class.truck_offline.action.resolve.alerts",
        "fleetpulse.class.geofence_breach.action.trigger.alerts",
    }
    assert counts.total("alerts") == 4
    assert counts.total("alerts", {"class": "truck_offline"}) == 3
    assert counts.total("alerts", {"action": "trigger"}) == 3
    assert counts.total("alerts", {"class": "truck_offline", "action": "resolve"}) == 1
    assert counts.total("records") == 0


def test_a_tally_is_added_once_per_series_and_zeros_stay_unregistered() -> None:
    group = FakeGroup()
    counts = OperatorCounts(group)
    tally = {records_series("parsed"): 3, records_series("late"): 0, series("trucks_expired"): 1}
    counts.add_all(tally)
    counts.add_all(tally)
    assert group.counters["fleetpulse.outcome.parsed.records"].calls == 2
    assert group.counters["fleetpulse.trucks_expired"].count == 2
    assert "fleetpulse.outcome.late.records" not in group.counters
    assert counts.total("records", {"outcome": "parsed"}) == 6


def test_a_series_appears_at_zero_and_a_zero_increment_does_not_reach_the_jvm() -> None:
    group = FakeGroup()
    counts = OperatorCounts(group)
    counts.add(records_series("accepted"), 0)
    counts.add(records_series("accepted"), 0)
    accepted = group.counters["fleetpulse.outcome.accepted.records"]
    assert (accepted.count, accepted.calls) == (0, 0)
    assert counts.totals == {records_series("accepted"): 0}


def test_without_a_metric_group_counts_are_kept_locally() -> None:
    counts = OperatorCounts(None)
    counts.inc("trucks_expired", 3)
    counts.inc("trucks_expired")
    assert counts.total("trucks_expired") == 4


def test_a_level_is_a_flink_counter_moved_by_the_difference() -> None:
    group = FakeGroup()
    levels = OperatorLevels(group)
    sev2 = (("severity", "2"),)
    levels.set("delays", 7, sev2)
    levels.set("delays", 3, sev2)
    levels.set("delays", 3, sev2)  # unchanged: no call into the JVM
    levels.set("delays", 1, (("severity", "4"),))
    assert group.counters["fleetpulse.severity.2.delays"].count == 3
    assert group.counters["fleetpulse.severity.2.delays"].calls == 2
    assert levels.values == {("delays", sev2): 3, ("delays", (("severity", "4"),)): 1}
    assert levels.value("delays") == 4 and levels.value("delays", {"severity": "2"}) == 3


def test_the_delay_writer_publishes_its_levels_without_python_gauges(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """FakeGroup has no gauge(): registering a Python-callable gauge would fail here."""
    from flink_jobs.delay import redis_writer
    from flink_jobs.delay.effects_writer import DelayRedisFunction
    from flink_jobs.delay.settings import DelaySettings

    class Runtime:
        def __init__(self) -> None:
            self.group = FakeGroup()

        def get_metrics_group(self) -> FakeGroup:
            return self.group

        def get_list_state(self, descriptor: object) -> object:
            return None

    class Writer:
        def __init__(self) -> None:
            self.counts = {1: 0, 2: 4, 3: 0, 4: 1, 5: 0}

        def late_counts(self) -> dict[int, int]:
            return dict(self.counts)

    # the writer connects when it opens (it asks the node whether it is in a cluster)
    monkeypatch.setattr(redis_writer, "open_delay_writer", lambda url: Writer())
    now = [10_000]
    fn = DelayRedisFunction(DelaySettings(), clock=lambda: now[0])
    runtime = Runtime()
    fn.open(runtime)
    assert {f"fleetpulse.severity.{s}.delays" for s in range(1, 6)} <= set(runtime.group.counters)
    fn.after_flush()  # more than 5 s since the last read: read Redis
    assert runtime.group.counters[SEVERITY_2].count == 4
    fn.writer.counts[2] = 1  # type: ignore[attr-defined]
    now[0] += 1000
    fn.after_flush()  # within 5 s: not read again
    assert runtime.group.counters[SEVERITY_2].count == 4
    now[0] += 5000
    fn.after_flush()
    assert runtime.group.counters[SEVERITY_2].count == 1
