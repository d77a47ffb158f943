"""Timer registration from Python operators without repeats.

Each registration is a call from the Python operator into the JVM, and writers register a
timer for every record they buffer (the next flush tick, the end of a bounded input). Flink
keeps one timer per key and time anyway, so registering a timer a key already has changes
nothing: :class:`TimersOnce` remembers the last time it registered per key and timer kind and
skips the call when asked for that time again. The memory is per operator instance and not
checkpointed: after a restore the timers come back from the checkpoint and it starts empty,
which costs at most one repeated registration per key.
"""

from __future__ import annotations

from typing import Any


class TimersOnce:
    """Per-key memory of the last processing-time and event-time timer registered."""

    def __init__(self) -> None:
        self._processing: dict[Any, int] = {}
        self._event: dict[Any, int] = {}

    def processing_tick(self, ctx: Any, tick_ms: int) -> None:
        """A processing-time timer at the next multiple of ``tick_ms`` (shared by all the
        records of a key that arrive within one tick)."""
        timers = ctx.timer_service()
        now = timers.current_processing_time()
        at = now - now % tick_ms + tick_ms
        key = ctx.get_current_key()
        if self._processing.get(key) != at:
            timers.register_processing_time_timer(at)
            self._processing[key] = at

    def event(self, ctx: Any, at: int) -> None:
        """An event-time timer at ``at`` for the current key."""
        key = ctx.get_current_key()
        if self._event.get(key) != at:
            ctx.timer_service().register_event_time_timer(at)
            self._event[key] = at


# Below this, Flink has not emitted a watermark yet.
NO_WATERMARK = -(2**63) + 1
# The watermark a bounded source sends when its input is done (Long.MAX_VALUE).
END_OF_INPUT = 2**63 - 1
# A timer at this time fires only when the input ends (udfs.truck_state.END_OF_INPUT_MS).
END_OF_INPUT_TIMER = END_OF_INPUT - 1
