"""Flink metrics from Python operators: Flink counters, which live in the JVM.

Each count is a Flink counter (``MetricGroup.counter``), so a metric reporter reads a Java
long and never calls into Python. (They were gauges backed by Python callables until
2026-11-27: a Prometheus scrape that landed while a failing task tore its Python operator
down read the gauge through pemja after the interpreter state was gone, and the JVM died with
SIGSEGV.) An increment is one call into the JVM, so callers add up what one operator call
counted and increment once per name (the bundled truck function does it once per bundle); a
name is registered, at zero, on its first increment. The Prometheus reporter exposes them as
``flink_taskmanager_job_task_operator_fleetpulse_<name>``.
"""

from __future__ import annotations

from collections import Counter as LocalCounts
from typing import Any


class _Unpublished:
    """The counter of a name when there is no metric group (tests, local runs)."""

    def inc(self, n: int = 1) -> None:
        pass

    def dec(self, n: int = 1) -> None:
        pass


class OperatorCounts:
    """Monotonic counts by name, each a Flink counter registered on its first increment (the
    totals are also kept in Python, for tests)."""

    def __init__(self, metric_group: Any, prefix: str = "fleetpulse") -> None:
        self._group = metric_group.add_group(prefix) if metric_group is not None else None
        self._counters: dict[str, Any] = {}
        self.totals: LocalCounts[str] = LocalCounts()

    def inc(self, name: str, n: int = 1) -> None:
        counter = self._counters.get(name)
        if counter is None:
            counter = self._counters[name] = (
                self._group.counter(name) if self._group is not None else _Unpublished()
            )
            self.totals[name] += 0
        if n:
            self.totals[name] += n
            counter.inc(n)


class OperatorLevels:
    """Values that go up and down (what a gauge reports), each kept in a Flink counter moved by
    the difference at every :meth:`set`: the reporter reads a Java long, as for
    :class:`OperatorCounts`, and never calls into Python. A restarted operator's counter starts
    at zero and its first ``set`` brings it to the current value."""

    def __init__(self, metric_group: Any, prefix: str = "fleetpulse") -> None:
        self._group = metric_group.add_group(prefix) if metric_group is not None else None
        self._counters: dict[str, Any] = {}
        self.values: dict[str, int] = {}

    def set(self, name: str, value: int) -> None:
        counter = self._counters.get(name)
        if counter is None:
            counter = self._counters[name] = (
                self._group.counter(name) if self._group is not None else _Unpublished()
            )
        delta = value - self.values.get(name, 0)
        if delta > 0:
            counter.inc(delta)
        elif delta < 0:
            counter.dec(-delta)
        self.values[name] = value
