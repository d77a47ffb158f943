"""Operator counts are Flink gauges reading the Python totals: current at every report."""

from __future__ import annotations

import pytest

from flink_jobs.metrics import OperatorCounts
from tests.unit.flink_fakes import FakeGroup

pytestmark = pytest.mark.unit


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
