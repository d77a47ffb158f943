"""The delay job's processing-time fallback for a stalled watermark (pure).

When all traffic stops the watermark stops, and with it every event-time timer. Both of the
delay job's keyed operators (the shipment operator's deadlines, the truck feed's held inputs)
then follow one documented rule: a processing-time timer, set when event time was last seen,
takes event time to have followed the wall clock since, less a grace period.
"""

from __future__ import annotations


def fallback_event_time(
    watermark: int, base_then: int, wall_then_ms: int, now_ms: int, grace_ms: int, no_watermark: int
) -> int | None:
    """Event time to assume on a processing-time timer when the watermark has stalled: None
    if the watermark advanced at least the wall-clock time elapsed since ``base_then`` was
    seen, less the grace; otherwise that base plus the elapsed time less the grace."""
    elapsed = now_ms - wall_then_ms
    if watermark > no_watermark and watermark - base_then >= elapsed - grace_ms:
        return None
    return max(watermark, base_then + elapsed - grace_ms)


def fallback_fire_at(due: int, base: int, now_ms: int, grace_ms: int) -> int:
    """Wall-clock time of the processing-time timer for event time ``due`` (a deadline, held
    inputs' release) should the watermark stall: when ``due`` would be reached if event time
    followed the wall clock from ``base`` on, plus the grace; whole seconds, rounded up so
    ``due`` is reached."""
    fire = now_ms + max(due - base, 1000) + grace_ms
    return fire + (-fire % 1000)
