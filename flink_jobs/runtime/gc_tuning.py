"""The cycle collector's young-generation threshold, raised for the truck functions.

CPython runs a young collection every 700 net container allocations. The truck function
allocates dozens per ping (pings, outputs, tuples) and holds a large live set (every truck's
state in memory, flink_jobs.tracking.shard_state), and in the running job the collector's traversals
took about 7 % of the truck thread (perf, 2026-11-27). Nearly all of that garbage is freed by
reference counting, not by the collector, so collecting 70x less often costs little memory.
The setting is per interpreter, so it also applies to the other Python operators of the
TaskManager; it is only ever raised, never lowered.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 50_000


def relax_young_collections() -> None:
    """Raise generation 0's threshold to :data:`YOUNG_THRESHOLD` (older generations as set)."""
    young, middle, old = gc.get_threshold()
    if young < YOUNG_THRESHOLD:
        gc.set_threshold(YOUNG_THRESHOLD, middle, old)
