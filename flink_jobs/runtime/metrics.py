"""Flink metrics from Python operators: Flink counters, which live in the JVM.

Each count is a Flink counter (``MetricGroup.counter``), so a metric reporter reads a Java
long and never calls into Python. (They were gauges backed by Python callables until
2026-11-27: a Prometheus scrape that landed while a failing task tore its Python operator
down read the gauge through pemja after the interpreter state was gone, and the JVM died with
SIGSEGV.) An increment is one call into the JVM, so callers add up what one operator call
counted and increment once per series (the bundled truck function does it once per bundle); a
series is registered, at zero, on its first increment, and its counter object is kept.

A series is a family name and its labels: one family per concept, the variant in a label,
never in the name (issue #36). Labels are Flink key/value groups
(``add_group(key, value)``, "user variables"), which the Prometheus reporter exposes as labels
while it keeps the key, not the value, in the metric name: ``alerts`` with labels
``(("class", c), ("action", a))`` is scraped as
``flink_taskmanager_job_task_operator_fleetpulse_class_action_alerts{class=c,action=a,...}``
(Flink adds job_name, operator_name, subtask_index, tm_id and more). A family therefore always
names its label keys in the same order.
"""

from __future__ import annotations

from collections import Counter as LocalCounts
from collections.abc import Iterable, Mapping
from typing import Any

Labels = tuple[tuple[str, str], ...]
"""A series' labels: ``(key, value)`` pairs in the family's order."""
Series = tuple[str, Labels]
"""A family name and its labels: the key counters are kept and totals read by."""


def series(name: str, *labels: tuple[str, str]) -> Series:
    """``series("alerts", ("class", "truck_offline"), ("action", "trigger"))``."""
    return (name, labels)


class _Unpublished:
    """The counter of a series when there is no metric group (tests, local runs)."""

    def inc(self, n: int = 1) -> None:
        pass

    def dec(self, n: int = 1) -> None:
        pass


def _prefix_group(metric_group: Any, prefix: str) -> Any:
    return metric_group.add_group(prefix) if metric_group is not None else None


def _register(group: Any, key: Series) -> Any:
    """A series' Flink counter, in its key/value groups under ``group``. Each series is
    registered once: callers keep the counter (Flink warns about, and reporters ignore, a name
    registered twice in one group)."""
    if group is None:
        return _Unpublished()
    name, labels = key
    for label, value in labels:
        group = group.add_group(label, value)
    return group.counter(name)


def _matching(
    keys: Iterable[Series], name: str, labels: Mapping[str, str] | None
) -> Iterable[Series]:
    wanted = set((labels or {}).items())
    return (k for k in keys if k[0] == name and wanted <= set(k[1]))


class OperatorCounts:
    """Monotonic counts by series, each a Flink counter registered on its first increment (the
    totals are also kept in Python, by series, for tests: see :meth:`total`)."""

    def __init__(self, metric_group: Any, prefix: str = "fleetpulse") -> None:
        self._group = _prefix_group(metric_group, prefix)
        self._counters: dict[Series, Any] = {}
        self.totals: LocalCounts[Series] = LocalCounts()

    def inc(self, name: str, n: int = 1, labels: Labels = ()) -> None:
        self.add((name, labels), n)

    def add(self, key: Series, n: int) -> None:
        """Add ``n`` to a series (registering it, at zero, on first use)."""
        counter = self._counters.get(key)
        if counter is None:
            counter = self._counters[key] = _register(self._group, key)
            self.totals[key] += 0
        if n:
            self.totals[key] += n
            counter.inc(n)

    def add_all(self, counts: Mapping[Series, int]) -> None:
        """A call's tally, one JVM call per series counted (series at zero are skipped)."""
        for key, n in counts.items():
            if n:
                self.add(key, n)

    def total(self, name: str, labels: Mapping[str, str] | None = None) -> int:
        """The sum of a family's series whose labels include ``labels`` (all of them: None)."""
        return sum(self.totals[k] for k in _matching(self.totals, name, labels))


class OperatorLevels:
    """Values that go up and down (what a gauge reports), each kept in a Flink counter moved by
    the difference at every :meth:`set`: the reporter reads a Java long, as for
    :class:`OperatorCounts`, and never calls into Python. A restarted operator's counter starts
    at zero and its first ``set`` brings it to the current value."""

    def __init__(self, metric_group: Any, prefix: str = "fleetpulse") -> None:
        self._group = _prefix_group(metric_group, prefix)
        self._counters: dict[Series, Any] = {}
        self.values: dict[Series, int] = {}

    def set(self, name: str, value: int, labels: Labels = ()) -> None:
        key = (name, labels)
        counter = self._counters.get(key)
        if counter is None:
            counter = self._counters[key] = _register(self._group, key)
        delta = value - self.values.get(key, 0)
        if delta > 0:
            counter.inc(delta)
        elif delta < 0:
            counter.dec(-delta)
        self.values[key] = value

    def value(self, name: str, labels: Mapping[str, str] | None = None) -> int:
        """The sum of a family's levels whose labels include ``labels``."""
        return sum(self.values[k] for k in _matching(self.values, name, labels))


# The families more than one operator counts (see the module docstring for how each is scraped).
def records_series(outcome: str) -> Series:
    """Records an operator read, by what became of them (``parsed``, ``ignored``,
    ``duplicate``, ``late``, ...; its dead letters are ``dead_letters``)."""
    return ("records", (("outcome", outcome),))


def dead_letter_series(reason: str) -> Series:
    """Dead letters an operator wrote, by reason code (lower case, as ``malformed_json``)."""
    return ("dead_letters", (("reason", reason.lower()),))


def alert_series(alert_class: str, action: str) -> Series:
    """Alert events an operator emitted, by class and action (``trigger``, ``resolve``)."""
    return ("alerts", (("class", alert_class), ("action", action)))
