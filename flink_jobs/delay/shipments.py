"""The delay job's shipment operator: each shipment's state machine (``udfs.shipment_state``),
its deadlines on timers, its alerts and Redis effects."""

from __future__ import annotations

from typing import Any

from pyflink.common import Row, Types
from pyflink.datastream import KeyedProcessFunction, OutputTag
from pyflink.datastream.state import ValueStateDescriptor

from flink_jobs.delay.state import ShipmentBox
from flink_jobs.runtime.clock import Clock, wall_clock_ms
from flink_jobs.runtime.metrics import OperatorCounts, alert_series, records_series
from flink_jobs.runtime.records import KEYED_TEXT
from flink_jobs.runtime.refresh import reassert_series, refresh_slot
from flink_jobs.runtime.settings import JobSettings
from flink_jobs.runtime.timers import END_OF_INPUT, NO_WATERMARK
from udfs.models import AlertEvent
from udfs.shipment_state import (
    DelayConfig,
    Event,
    StepCounts,
    advance,
    finished,
    is_open,
    next_deadline,
    reassert,
    step,
)
from udfs.stall_fallback import assumed_event_time, fire_at

PICKLED = Types.PICKLED_BYTE_ARRAY()
ALERT_TAG = OutputTag("alerts", KEYED_TEXT)
# What became of the scans (StepCounts): over_cap_dropped are the over_cap ones dropped.
DUPLICATE = records_series("duplicate")
LATE = records_series("late")
OVER_CAP = records_series("over_cap")
OVER_CAP_DROPPED = records_series("over_cap_dropped")


class ShipmentFunction(KeyedProcessFunction):
    """Thin adapter: read state, call udfs.shipment_state, write state, route, set timers.

    State: ``shipment`` (:class:`flink_jobs.delay.state.ShipmentBox`): the shipment's state,
    its event-time timer (the next deadline), its stall-fallback timer and its refresh timer.

    Refresh (issue 29): every ``--alert-refresh-s`` (at a phase of its own,
    :mod:`flink_jobs.runtime.refresh`) a shipment sends again what it reported
    (:func:`udfs.shipment_state.reassert`): the triggers of its open incidents and its absolute
    Redis values. The timers come back with a restore, and those that fell due during the
    downtime fire at once. A shipment dropped from state sends its final Redis values once."""

    def __init__(
        self, settings: JobSettings, cfg: DelayConfig, clock: Clock = wall_clock_ms
    ) -> None:
        self.settings = settings
        self.cfg = cfg
        self.clock = clock

    def open(self, runtime_context: Any) -> None:
        self.state = runtime_context.get_state(ValueStateDescriptor("shipment", PICKLED))
        self.counters = OperatorCounts(runtime_context.get_metrics_group())
        # Bounded runs end at their last input, and a pending refresh would keep them waiting.
        self.refresh_ms = 0 if self.settings.bounded else self.settings.alert_refresh_s * 1000

    def _load(self, key: str) -> ShipmentBox:
        return ShipmentBox.from_stored(key, self.state.value())

    def process_element(self, value: Event, ctx: KeyedProcessFunction.Context):  # type: ignore[no-untyped-def]
        box = self._load(value.shipment_id)
        was_open = is_open(box.shipment)
        counts = StepCounts()
        box.shipment, outputs = step(box.shipment, value, self.cfg, counts)
        self.counters.add(DUPLICATE, counts.duplicates)
        self.counters.add(LATE, counts.late)
        self.counters.add(OVER_CAP, counts.over_cap)
        self.counters.add(OVER_CAP_DROPPED, counts.over_cap_dropped)
        wm = ctx.timer_service().current_watermark()
        if NO_WATERMARK < wm < END_OF_INPUT and value.ts <= wm:
            box.shipment, more = advance(box.shipment, wm, self.cfg)
            outputs += more
        outputs += self._finish(box, was_open, ctx)
        yield from self._route(outputs)

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext):  # type: ignore[no-untyped-def]
        box = self._load(ctx.get_current_key())
        wm = ctx.timer_service().current_watermark()
        if ctx.time_domain().name == "EVENT_TIME":
            if box.event_timer_at != timestamp:
                return  # superseded timer
            box.event_timer_at = None
            # At the end of a bounded input the watermark jumps to the end of time: walk the
            # deadlines one timer at a time instead.
            now_evt = timestamp if wm >= END_OF_INPUT else max(timestamp, wm)
        else:
            refreshed = box.refresh_at == timestamp  # None for a dropped shipment
            if refreshed:
                box.refresh_at = None
                yield from self._refresh(box)
            if box.fallback_at != timestamp:
                if refreshed:
                    self._schedule(box, ctx)
                    self.state.update(box.to_stored())
                return
            box.fallback_at = None
            fallback = self._fallback_event_time(box, wm)
            if fallback is None:
                self._schedule(box, ctx)
                self.state.update(box.to_stored())
                return
            self.counters.inc("fallback_advances")
            now_evt = fallback
        was_open = is_open(box.shipment)
        # the end of a bounded input walks every deadline but expires nothing (not weeks of
        # silence: a backfill resumed from its savepoint must find its shipments)
        box.shipment, outputs = advance(box.shipment, now_evt, self.cfg, expire=wm < END_OF_INPUT)
        outputs += self._finish(box, was_open, ctx)
        yield from self._route(outputs)

    def _finish(self, box: ShipmentBox, was_open: bool, ctx: Any) -> list[Any]:
        """Count the opening or closing, then store the state and set its timers, or drop it;
        returns what to send on dropping it."""
        now_open = is_open(box.shipment)
        if now_open != was_open:
            self.counters.inc("shipments_opened" if now_open else "shipments_closed")
        if finished(box.shipment, self.cfg):
            self.state.clear()
            # Its last word: the final Redis values, whatever a replay left (nothing is open).
            return reassert(box.shipment, self.cfg) if self.refresh_ms else []
        self._schedule(box, ctx)
        self.state.update(box.to_stored())
        return []

    def _fallback_event_time(self, box: ShipmentBox, wm: int) -> int | None:
        """Event time to assume when the watermark has stalled (:mod:`udfs.stall_fallback`);
        None if it keeps pace."""
        if box.reference is None:
            return None
        known = wm if wm > NO_WATERMARK else None
        return assumed_event_time(
            box.reference, known, self.clock(), self.settings.fallback_grace_ms
        )

    def _event_time_estimate(self, box: ShipmentBox, wm: int) -> int:
        """The watermark, or before the first one, the newest input less the bound."""
        if NO_WATERMARK < wm < END_OF_INPUT:
            return wm
        state = box.shipment
        newest = state.scans[-1].ts if state.scans else state.processed_until
        return max(state.processed_until, newest - self.settings.out_of_orderness_ms)

    def _schedule(self, box: ShipmentBox, ctx: Any) -> None:
        timers = ctx.timer_service()
        if self.refresh_ms and box.refresh_at is None:  # a new shipment, or stored before
            # refreshes (one in the past is a restored timer about to fire: left to it)
            box.refresh_at = refresh_slot(ctx.get_current_key(), self.clock(), self.refresh_ms)
            timers.register_processing_time_timer(box.refresh_at)
        due = next_deadline(
            box.shipment, self.cfg, expire=timers.current_watermark() < END_OF_INPUT
        )
        if due is None:
            return
        if box.event_timer_at != due:
            timers.register_event_time_timer(due)
            box.event_timer_at = due
        base = self._event_time_estimate(box, timers.current_watermark())
        now = self.clock()
        fire = fire_at(due, base, now, self.settings.fallback_grace_ms)
        if box.fallback_at is None or fire < box.fallback_at:
            timers.register_processing_time_timer(fire)  # a replaced one fires and is ignored
            box.fallback_at, box.reference = fire, (base, now)

    def _refresh(self, box: ShipmentBox):  # type: ignore[no-untyped-def]
        """Send again what the shipment reported (its refresh timer fired)."""
        for out in reassert(box.shipment, self.cfg):
            if isinstance(out, AlertEvent):
                self.counters.add(reassert_series(out.alert_class), 1)
                yield ALERT_TAG, Row(out.dedup_key, out.to_json().decode())
            else:
                yield out

    def _route(self, outputs: list[Any]):  # type: ignore[no-untyped-def]
        for out in outputs:
            if isinstance(out, AlertEvent):
                self.counters.add(alert_series(out.alert_class, out.event_action), 1)
                if (
                    isinstance(out.custom_details.get("delay_severity"), int)
                    and out.event_action == "trigger"
                ):
                    severity = str(out.custom_details["delay_severity"])
                    self.counters.inc("late_shipments", 1, (("severity", severity),))
                yield ALERT_TAG, Row(out.dedup_key, out.to_json().decode())
            else:
                yield out
