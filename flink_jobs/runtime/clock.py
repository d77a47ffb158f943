"""The wall clock, injected into every operator that reads it.

Event time drives the jobs; the wall clock is read only for what has no event time: the
future bound of validation, the stall fallback once the watermark stops, dead letters'
``failed_at``. Operators take a :data:`Clock` (tests pass one they move by hand) and default
to :func:`wall_clock_ms`.
"""

from __future__ import annotations

import time
from collections.abc import Callable

# Milliseconds since the epoch.
Clock = Callable[[], int]


def wall_clock_ms() -> int:
    """The system's wall clock in milliseconds."""
    return time.time_ns() // 1_000_000
