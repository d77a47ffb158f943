"""The delay job's Redis writer operator: shipments' effects buffered in checkpointed list
state and applied in order by an idempotent script (:mod:`flink_jobs.delay.redis_writer`)."""

from __future__ import annotations

from typing import Any

from flink_jobs.runtime.buffered_writer import BufferedWriterFunction
from flink_jobs.runtime.metrics import Labels, OperatorLevels, series
from flink_jobs.runtime.refresh import STALE_REFRESHES
from udfs.shipment_state import RedisEffect

# `delays` members removed because no shipment the job holds asserted them (anti-entropy)
SWEPT = series("delays_swept")


def severity_labels(severity: int) -> Labels:
    return (("severity", str(severity)),)


class DelayRedisFunction(BufferedWriterFunction):
    """Applies the shipments' Redis effects in order
    (see :mod:`flink_jobs.runtime.buffered_writer`).
    Also publishes `delays` by severity as levels (read back from Redis every 5 s, so they
    survive restarts), in Flink counters: no metric calls into Python. And sweeps `delays` of
    the members no shipment re-asserted
    (:meth:`flink_jobs.delay.redis_writer.RedisDelayWriter.sweep`), once per refresh
    period, from ``STALE_REFRESHES`` periods after it started: by then every shipment the
    restored state holds has been refreshed, whatever the downtime was."""

    buffer_state = "pending_effects"
    written_kind = "effect"

    def open_writer(self, runtime_context: Any) -> None:
        from flink_jobs.delay.redis_writer import open_delay_writer

        self.writer = open_delay_writer(self.settings.redis_url)
        self.last_gauge_read = 0
        self.refresh_ms = 0 if self.settings.bounded else self.settings.alert_refresh_s * 1000
        self.next_sweep = self.clock() + STALE_REFRESHES * self.refresh_ms
        self.levels = OperatorLevels(runtime_context.get_metrics_group())
        for sev in range(1, 6):
            self.levels.set("delays", 0, severity_labels(sev))  # listed from the start

    def close(self) -> None:
        self.writer.close()

    def write(self, items: list[RedisEffect]) -> None:
        self.writer.apply(items)

    def after_flush(self) -> None:
        now = self.clock()
        if self.refresh_ms and now >= self.next_sweep:
            self.next_sweep = now + self.refresh_ms
            stale_before = now - STALE_REFRESHES * self.refresh_ms
            _stamped, removed = self.writer.sweep(now, stale_before)
            self.counters.add(SWEPT, removed)
        if now - self.last_gauge_read > 5000:
            self.last_gauge_read = now
            for sev, n in self.writer.late_counts().items():
                self.levels.set("delays", n, severity_labels(sev))
