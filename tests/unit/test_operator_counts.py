"""Operator counts are Flink gauges reading the Python totals: current at every report."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from flink_jobs.metrics import OperatorCounts

pytestmark = pytest.mark.unit


class FakeGroup:
    """The two calls of PyFlink's MetricGroup that OperatorCounts uses."""

    def __init__(self) -> None:
        self.gauges: dict[str, Callable[[], Any]] = {}
        self.groups: list[str] = []

    def add_group(self, name: str) -> FakeGroup:
        self.groups.append(name)
        return self

    def gauge(self, name: str, fn: Callable[[], Any]) -> None:
        assert name not in self.gauges, "registered twice"
        self.gauges[name] = fn


def test_each_name_is_one_gauge_that_reads_the_running_total() -> None:
    group = FakeGroup()
    counts = OperatorCounts(group)
    counts.inc("dlq_malformed_json")
    assert group.groups == ["fleetpulse"]
    assert group.gauges["dlq_malformed_json"]() == 1
    counts.inc("dlq_malformed_json", 4)
    counts.inc("accepted", 0)
    assert group.gauges["dlq_malformed_json"]() == 5
    assert group.gauges["accepted"]() == 0


def test_without_a_metric_group_counts_are_kept_locally() -> None:
    counts = OperatorCounts(None)
    counts.inc("parsed", 3)
    assert counts.totals["parsed"] == 3
