"""Per-region counts of trucks by status, from the truck function's census deltas.

The deltas arrive keyed by region (in the JVM); the counts are keyed state, and a
processing-time tick writes them to ``region:{R}`` as absolute values, so a replay after a
restore never counts twice. The end of a bounded input writes them once more.
"""

from __future__ import annotations

from typing import Any

from pyflink.common import Types
from pyflink.datastream import KeyedProcessFunction
from pyflink.datastream.state import ValueStateDescriptor

from flink_jobs.runtime.timers import END_OF_INPUT, END_OF_INPUT_TIMER, TimersOnce
from flink_jobs.tracking.settings import TrackingSettings


class RegionCensusFunction(KeyedProcessFunction):
    """Per-region counts of trucks by status, written as absolute values on a timer."""

    def __init__(self, settings: TrackingSettings) -> None:
        self.settings = settings

    def open(self, runtime_context: Any) -> None:
        from flink_jobs.tracking.redis_writer import open_truck_writer

        self.counts = runtime_context.get_state(
            ValueStateDescriptor("census", Types.PICKLED_BYTE_ARRAY())
        )
        self.writer = open_truck_writer(self.settings.redis_url)
        self.timers = TimersOnce()

    def close(self) -> None:
        self.writer.close()

    def process_element(self, value: list[tuple[str, int]], ctx: KeyedProcessFunction.Context):  # type: ignore[no-untyped-def]
        counts = self.counts.value()
        if counts is None:
            counts = {}
            now = ctx.timer_service().current_processing_time()
            ctx.timer_service().register_processing_time_timer(
                now + self.settings.region_refresh_ms
            )
        for status, delta in value:
            counts[status] = counts.get(status, 0) + delta
        self.counts.update(counts)
        self.timers.event(ctx, END_OF_INPUT_TIMER)
        return iter(())

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext):  # type: ignore[no-untyped-def]
        from flink_jobs.tracking.redis_writer import region_count_fields

        counts = self.counts.value() or {}
        self.writer.write_region_counts({ctx.get_current_key(): region_count_fields(counts)})
        ended = ctx.timer_service().current_watermark() >= END_OF_INPUT
        if ctx.time_domain().name != "EVENT_TIME" and not ended:
            ctx.timer_service().register_processing_time_timer(
                timestamp + self.settings.region_refresh_ms
            )
        return iter(())
