"""What event time is when the watermark stalls: one rule for every operator (pure).

When all traffic stops the watermark stops, and with it every event-time timer: no truck would
go offline and no shipment deadline would pass. Each operator that waits on event time keeps a
*reference*: an event time it knew and the wall clock when it knew it. While the watermark
advances at least as fast as the wall clock since the reference, less a grace period, it keeps
pace (live traffic, or a backfill) and nothing is assumed. Once it lags by more than the grace,
event time is taken to have followed the wall clock from the reference on, less the grace:

    assumed = reference event time + wall-clock time elapsed - grace   (never below the watermark)

The assumption is continuous: when the lag first exceeds the grace it equals the reference plus
the time the watermark kept pace, and from there it moves with the wall clock. Deadlines due by
then fire with the event times they would have had, about ``out_of_orderness + grace`` later in
wall-clock time than with traffic; inputs that arrive later, behind that point, are late.

The tracking job keeps one reference per shard and moves it on every tick while the watermark
keeps pace (:func:`followed`); the delay job's operators take one when they set a key's
fallback timer (:func:`fire_at`).
"""

from __future__ import annotations

# (event time, wall clock in ms when it was current)
Reference = tuple[int, int]


def assumed_event_time(
    reference: Reference, watermark: int | None, now_ms: int, grace_ms: int
) -> int | None:
    """The event time to assume at wall clock ``now_ms``, or None while the watermark keeps
    pace with the wall clock since ``reference`` (less the grace). ``watermark`` None: none
    known yet (event time then follows the reference alone)."""
    base, wall = reference
    elapsed = now_ms - wall
    if watermark is not None and watermark - base >= elapsed - grace_ms:
        return None
    assumed = base + elapsed - grace_ms
    return assumed if watermark is None else max(watermark, assumed)


def followed(reference: Reference | None, watermark: int | None, now_ms: int) -> Reference | None:
    """The reference to keep after looking at ``watermark`` at ``now_ms``: it moves to
    ``(watermark, now_ms)`` whenever the watermark has advanced at least as far as the wall
    clock since the reference (or there was none), and otherwise stays."""
    if watermark is None:
        return reference
    if reference is None or watermark - reference[0] >= now_ms - reference[1]:
        return (watermark, now_ms)
    return reference


def fire_at(due: int, base: int, now_ms: int, grace_ms: int) -> int:
    """Wall-clock time at which event time ``due`` (a deadline, held inputs' release) is
    reached by the assumption from reference ``(base, now_ms)``: the wall-clock time for event
    time to go from ``base`` to ``due`` plus the grace, at least a second; whole seconds,
    rounded up so ``due`` is reached."""
    fire = now_ms + max(due - base, 1000) + grace_ms
    return fire + (-fire % 1000)
