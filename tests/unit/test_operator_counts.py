"""Operator counts are Flink counters: a reporter reads them in the JVM, never in Python."""

from __future__ import annotations

import pytest

from flink_jobs.runtime.metrics import OperatorCounts
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
