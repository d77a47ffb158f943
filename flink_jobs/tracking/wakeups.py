"""When the trucks of a shard wake up, in the bundled tracking job (pure: no Flink).

Keyed by shard, the truck function keeps one event-time timer per shard and *second* (Flink
keeps one timer per key and time, so every truck due within a second shares it) and an index
from that second to the trucks due in it. A truck's timeouts
carry their own event times (``udfs.truck_state.advance`` interleaves them), so waking up to a
second later changes when an alert is sent, never what it says.

When all traffic stops the watermark stops too, and with it every event-time timer. One
processing-time tick per shard (every :func:`tick_period_ms`) applies the stall rule of
:mod:`udfs.stall_fallback` and wakes the seconds due by the event time it assumes.
"""

from __future__ import annotations


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
