"""The delay job's truck feed: each truck's recent speed, applied in event-time order, as fixes
for the shipments it carries (``shipment_at_risk``)."""

from __future__ import annotations

from typing import Any

from pyflink.common import Types
from pyflink.datastream import KeyedCoProcessFunction
from pyflink.datastream.state import MapStateDescriptor, ValueStateDescriptor

from flink_jobs.delay.state import FeedBox
from flink_jobs.runtime.clock import Clock, wall_clock_ms
from flink_jobs.runtime.metrics import OperatorCounts, records_series
from flink_jobs.runtime.settings import JobSettings
from flink_jobs.runtime.timers import END_OF_INPUT, NO_WATERMARK
from udfs.feed_order import (
    FeedInput,
    applies_now,
    apply_in_order,
    assignment_input,
    ping_input,
    release_time,
)
from udfs.stall_fallback import assumed_event_time, fire_at
from udfs.truck_speed import FeedConfig

PICKLED = Types.PICKLED_BYTE_ARRAY()
# an input applied at once: the watermark had passed its second on arrival
LATE = records_series("late")


class TruckFeedFunction(KeyedCoProcessFunction):
    """Keyed by truck: pings (input 1) and assignments (input 2) -> TruckFix per shipment.

    The fixes depend on the order of the inputs (a new shipment is seeded with the truck's
    newest fix), so inputs are held in keyed state until the watermark passes them and then
    applied in event-time order (:mod:`udfs.feed_order`): one event-time timer per truck and
    second, the held inputs in MapState by that second. An input already behind on arrival is
    applied at once. When the watermark stalls, a processing-time timer per truck releases
    held inputs by the same rule as the shipment operator's fallback (see the module notes).

    State: ``feed`` (:class:`flink_jobs.delay.state.FeedBox`); ``held`` = release second ->
    inputs. Both are checkpointed, with the
    timers, so a restored job releases what the stopped one held.
    """

    def __init__(
        self, feed_cfg: FeedConfig, settings: JobSettings, clock: Clock = wall_clock_ms
    ) -> None:
        self.feed_cfg = feed_cfg
        self.settings = settings
        self.clock = clock

    def open(self, runtime_context: Any) -> None:
        self.state = runtime_context.get_state(ValueStateDescriptor("feed", PICKLED))
        self.held = runtime_context.get_map_state(MapStateDescriptor("held", Types.LONG(), PICKLED))
        self.counters = OperatorCounts(runtime_context.get_metrics_group())

    def _load(self, truck_id: str) -> FeedBox:
        return FeedBox.from_stored(truck_id, self.state.value())

    def _store(self, box: FeedBox) -> None:
        self.state.update(box.to_stored())

    def process_element1(self, value: tuple, ctx: Any):  # type: ignore[no-untyped-def, type-arg]
        yield from self._arrive(value[0], ping_input(value[1], value[2], value[3], value[4]), ctx)

    def process_element2(self, value: tuple, ctx: Any):  # type: ignore[no-untyped-def, type-arg]
        yield from self._arrive(value[0], assignment_input(value[1], value[2], value[3]), ctx)

    def _arrive(self, truck_id: str, item: FeedInput, ctx: Any):  # type: ignore[no-untyped-def]
        box = self._load(truck_id)
        timers = ctx.timer_service()
        wm = timers.current_watermark()
        if applies_now(item[0], wm, box.released_until):
            self.counters.add(LATE, 1)
            fixes = apply_in_order(box.feed, [item], self.feed_cfg)
            if box.feed.shipments or box.feed.recent:
                self._store(box)
            yield from fixes
            return
        at = release_time(item[0])
        bucket = self.held.get(at)
        if bucket is None:
            timers.register_event_time_timer(at)
            bucket = []
        bucket.append(item)
        self.held.put(at, bucket)
        if box.fallback_at is None and not self.settings.bounded:
            self._schedule_fallback(box, at, wm, ctx)
            self._store(box)

    def on_timer(self, timestamp: int, ctx: Any):  # type: ignore[no-untyped-def]
        if ctx.time_domain().name == "EVENT_TIME":
            held = self.held.get(timestamp)
            if held is None:
                return  # released earlier by the fallback
            self.held.remove(timestamp)
            box = self._load(ctx.get_current_key())
            out = apply_in_order(box.feed, held, self.feed_cfg)
            self._store(box)
            yield from out
            return
        box = self._load(ctx.get_current_key())
        if box.fallback_at != timestamp:
            return  # superseded
        box.fallback_at = None
        wm = ctx.timer_service().current_watermark()
        if wm >= END_OF_INPUT or self.held.is_empty() or box.reference is None:
            self._store(box)
            return
        upto = assumed_event_time(
            box.reference,
            wm if wm > NO_WATERMARK else None,
            self.clock(),
            self.settings.fallback_grace_ms,
        )
        fixes: list[Any] = []
        if upto is not None:
            keys = list(self.held.keys())
            due = sorted(at for at in keys if at <= upto)
            items = [x for at in due for x in self.held.get(at)]
            for at in due:
                self.held.remove(at)
            box.released_until = max(box.released_until, upto)
            fixes = apply_in_order(box.feed, items, self.feed_cfg)
            self.counters.inc("fallback_releases")
        if not self.held.is_empty():
            self._schedule_fallback(box, min(self.held.keys()), wm, ctx)
        self._store(box)
        yield from fixes

    def _schedule_fallback(self, box: FeedBox, next_release: int, wm: int, ctx: Any) -> None:
        """A processing-time timer for when event time, following the wall clock from the
        watermark or the last fallback point (before any watermark: the held input less the
        out-of-orderness), would reach ``next_release`` (:mod:`udfs.stall_fallback`)."""
        base = (
            max(wm, box.released_until)
            if NO_WATERMARK < wm < END_OF_INPUT
            else max(box.released_until, next_release - 999 - self.settings.out_of_orderness_ms)
        )
        now = self.clock()
        box.fallback_at = fire_at(next_release, base, now, self.settings.fallback_grace_ms)
        box.reference = (base, now)
        ctx.timer_service().register_processing_time_timer(box.fallback_at)
