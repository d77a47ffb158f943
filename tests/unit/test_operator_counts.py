"""Operator counts are Flink counters: a reporter reads them in the JVM, never in Python."""

from __future__ import annotations

import pytest

from flink_jobs.runtime.metrics import OperatorCounts, OperatorLevels
from tests.unit.flink_fakes import FakeGroup

pytestmark = pytest.mark.unit


def test_each_name_is_one_flink_counter_holding_the_running_total() -> None:
    group = FakeGroup()
    counts = OperatorCounts(group)
    counts.inc("dlq_malformed_json")
    assert group.groups == ["fleetpulse"]
    counts.inc("dlq_malformed_json", 4)
    assert group.counters["dlq_malformed_json"].count == 5
    assert counts.totals["dlq_malformed_json"] == 5


def test_a_name_appears_at_zero_and_a_zero_increment_does_not_reach_the_jvm() -> None:
    group = FakeGroup()
    counts = OperatorCounts(group)
    counts.inc("accepted", 0)
    counts.inc("accepted", 0)
    assert group.counters["accepted"].count == 0
    assert group.counters["accepted"].calls == 0
    assert counts.totals["accepted"] == 0 and "accepted" in counts.totals


def test_without_a_metric_group_counts_are_kept_locally() -> None:
    counts = OperatorCounts(None)
    counts.inc("parsed", 3)
    counts.inc("parsed")
    assert counts.totals["parsed"] == 4


def test_a_level_is_a_flink_counter_moved_by_the_difference() -> None:
    group = FakeGroup()
    levels = OperatorLevels(group)
    levels.set("delays_severity_2", 7)
    levels.set("delays_severity_2", 3)
    levels.set("delays_severity_2", 3)  # unchanged: no call into the JVM
    assert group.counters["delays_severity_2"].count == 3
    assert group.counters["delays_severity_2"].calls == 2
    assert levels.values == {"delays_severity_2": 3}


def test_the_delay_writer_publishes_its_levels_without_python_gauges() -> None:
    """FakeGroup has no gauge(): registering a Python-callable gauge would fail here."""
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

    now = [10_000]
    fn = DelayRedisFunction(DelaySettings(), clock=lambda: now[0])
    runtime = Runtime()
    fn.open(runtime)
    fn.writer.close()
    fn.writer = Writer()  # type: ignore[assignment]
    assert {f"delays_severity_{s}" for s in range(1, 6)} <= set(runtime.group.counters)
    fn.after_flush()  # more than 5 s since the last read: read Redis
    assert runtime.group.counters["delays_severity_2"].count == 4
    fn.writer.counts[2] = 1  # type: ignore[attr-defined]
    now[0] += 1000
    fn.after_flush()  # within 5 s: not read again
    assert runtime.group.counters["delays_severity_2"].count == 4
    now[0] += 5000
    fn.after_flush()
    assert runtime.group.counters["delays_severity_2"].count == 1
