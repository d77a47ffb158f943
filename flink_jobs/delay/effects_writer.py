"""The delay job's Redis writer operator: shipments' effects buffered in checkpointed list
state and applied in order by an idempotent script (:mod:`flink_jobs.delay.redis_writer`)."""

from __future__ import annotations

from typing import Any

from flink_jobs.runtime.buffered_writer import BufferedWriterFunction
from udfs.shipment_state import RedisEffect


class DelayRedisFunction(BufferedWriterFunction):
    """Applies the shipments' Redis effects in order
    (see :mod:`flink_jobs.runtime.buffered_writer`).
    Also publishes gauges of `delays` by severity (read back from Redis, so they survive
    restarts)."""

    buffer_state = "pending_effects"
    written_count = "redis_effects"

    def open_writer(self, runtime_context: Any) -> None:
        from flink_jobs.delay.redis_writer import RedisDelayWriter

        self.writer = RedisDelayWriter(self.settings.redis_url)
        self.late_counts: dict[int, int] = dict.fromkeys(range(1, 6), 0)
        self.last_gauge_read = 0
        group = runtime_context.get_metrics_group().add_group("fleetpulse")
        for sev in range(1, 6):
            group.gauge(f"delays_severity_{sev}", lambda s=sev: self.late_counts[s])

    def close(self) -> None:
        self.writer.close()

    def write(self, items: list[RedisEffect]) -> None:
        self.writer.apply(items)

    def after_flush(self) -> None:
        now = self.clock()
        if now - self.last_gauge_read > 5000:
            self.last_gauge_read = now
            self.late_counts = self.writer.late_counts()
