"""Which shard a truck belongs to, computed in Python exactly as the JVM computes it.

The JVM bundler (``flink_jobs.tracking.bundling``) groups records by
``floorMod(key.hashCode(), shards)``
of the ``truck_id`` it reads from the JSON. The bundled truck function keeps each truck's state
under its shard, so a ping whose parsed ``truck_id`` belongs to another shard than the bundle it
came in (the JVM's JSON reader and the Python parser disagreeing) must not be applied there: its
truck's state would split across two shards.
"""

from __future__ import annotations


def java_string_hash(s: str) -> int:
    """``java.lang.String.hashCode()``: 31-polynomial over UTF-16 code units, as a signed int."""
    units = s.encode("utf-16-be", "surrogatepass")
    h = 0
    for i in range(0, len(units), 2):
        h = (31 * h + (units[i] << 8 | units[i + 1])) & 0xFFFFFFFF
    return h - (1 << 32) if h >= 1 << 31 else h


def java_shard(key: str, shards: int) -> int:
    """``Math.floorMod(key.hashCode(), shards)`` (Python's ``%`` is a floor modulo)."""
    return java_string_hash(key) % shards


class ShardOf:
    """:func:`java_shard` with a memory per key: a truck's id is hashed once per process,
    not once per ping. Bounded: the memory starts over past ``limit`` keys."""

    def __init__(self, shards: int, limit: int = 1_000_000) -> None:
        self.shards = shards
        self.limit = limit
        self._known: dict[str, int] = {}

    def __call__(self, key: str) -> int:
        shard = self._known.get(key)
        if shard is None:
            if len(self._known) >= self.limit:
                self._known.clear()
            shard = self._known[key] = java_shard(key, self.shards)
        return shard
