"""Flink metrics from Python operators, counted in Python and flushed in batches.

Each Flink counter call crosses into the JVM, so operators count locally and push the sums every
``FLUSH_EVERY`` events or on a timer; the Prometheus reporter exposes them as
``flink_taskmanager_job_task_operator_fleetpulse_<name>``.
"""

from __future__ import annotations

from collections import Counter as LocalCounts
from typing import Any


class BatchedCounters:
    FLUSH_EVERY = 2000

    def __init__(self, metric_group: Any, prefix: str = "fleetpulse") -> None:
        self._group = metric_group.add_group(prefix) if metric_group is not None else None
        self._counters: dict[str, Any] = {}
        self._pending: LocalCounts[str] = LocalCounts()
        self._since_flush = 0

    def inc(self, name: str, n: int = 1) -> None:
        if n:
            self._pending[name] += n
        self._since_flush += 1
        if self._since_flush >= self.FLUSH_EVERY:
            self.flush()

    def flush(self) -> None:
        self._since_flush = 0
        if self._group is None:
            self._pending.clear()
            return
        for name, n in self._pending.items():
            counter = self._counters.get(name)
            if counter is None:
                counter = self._counters[name] = self._group.counter(name)
            counter.inc(n)
        self._pending.clear()
