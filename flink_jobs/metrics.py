"""Flink metrics from Python operators: counted in Python, read by Flink when it reports.

A Flink counter call from Python crosses into the JVM on every increment, and counts batched
in Python reach Flink only when a batch is pushed, so a quiet operator (a handful of dead
letters) would never show them. Instead each count is a Flink gauge whose value Flink reads
from the Python total when its reporter runs: no crossing per event, and always current. The
Prometheus reporter exposes them as ``flink_taskmanager_job_task_operator_fleetpulse_<name>``
(Flink exports counters as gauges too, so dashboards see the same series either way).
"""

from __future__ import annotations

from collections import Counter as LocalCounts
from typing import Any


class OperatorCounts:
    """Monotonic counts by name, each published as a Flink gauge on its first increment."""

    def __init__(self, metric_group: Any, prefix: str = "fleetpulse") -> None:
        self._group = metric_group.add_group(prefix) if metric_group is not None else None
        self.totals: LocalCounts[str] = LocalCounts()

    def inc(self, name: str, n: int = 1) -> None:
        if name not in self.totals:
            self._publish(name)
        self.totals[name] += n

    def _publish(self, name: str) -> None:
        self.totals[name] = 0
        if self._group is not None:
            self._group.gauge(name, lambda: self.totals[name])
