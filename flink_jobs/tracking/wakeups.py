"""When the trucks of a shard wake up, in the bundled tracking job (pure: no Flink).

Per-record, each truck has its own event-time timer. Keyed by shard, the job keeps one timer per
shard and *second* instead (Flink keeps one timer per key and time, so every truck due within a
second shares it) and an index from that second to the trucks due in it. A truck's timeouts
carry their own event times (``udfs.truck_state.advance`` interleaves them), so waking up to a
second later changes when an alert is sent, never what it says.

When all traffic stops the watermark stops too, and with it every event-time timer. One
processing-time tick per shard watches the watermark against the wall clock
(:func:`stalled_event_time`) and, once the watermark has fallen behind by more than a grace
period, takes event time to be the watermark last seen keeping pace plus the wall-clock time
elapsed since.
"""

from __future__ import annotations

# A watermark reference: (watermark, wall clock in ms when it was seen).
Reference = tuple[int, int]


def wake_second(due_ms: int) -> int:
    """The whole second (in ms) at or after ``due_ms``: the timer that wakes a truck due then."""
    return -(-due_ms // 1000) * 1000


def tick_period_ms(grace_ms: int) -> int:
    """How often the stall check runs: often enough to notice a stall soon after the grace,
    rarely enough to cost nothing (one call per shard)."""
    return max(1000, min(grace_ms, 5000))


def next_tick(now_ms: int, period_ms: int) -> int:
    """The next multiple of ``period_ms``: ticks aligned to the wall clock coincide, so a tick
    chain registered again after a restore merges with the restored one."""
    return now_ms - now_ms % period_ms + period_ms


def stalled_event_time(
    reference: Reference | None, watermark: int | None, now_ms: int, grace_ms: int
) -> tuple[int | None, Reference | None]:
    """The event time to assume at wall-clock ``now_ms`` if the watermark has stalled, else
    None; and the reference to keep for the next check.

    The reference moves to ``(watermark, now_ms)`` whenever the watermark has advanced at least
    as far as the wall clock since the last one (it keeps pace: a backfill or live traffic).
    Otherwise it stays, and once the watermark lags the wall clock by more than ``grace_ms``
    event time is the reference watermark plus the wall-clock time elapsed since (never less
    than the watermark). ``watermark`` None: none known yet, nothing to judge.
    """
    if watermark is None:
        return None, reference
    if reference is None:
        return None, (watermark, now_ms)
    ref_watermark, ref_wall = reference
    elapsed = now_ms - ref_wall
    advanced = watermark - ref_watermark
    if advanced >= elapsed:
        return None, (watermark, now_ms)
    if advanced >= elapsed - grace_ms:
        return None, reference
    return max(watermark, ref_watermark + elapsed), reference
