"""A bundled function's keyed map state held in Python memory between checkpoints.

PyFlink's thread mode has no state cache: every map-state read or write of a Python function
crosses into the JVM and pickles or unpickles its value, which cost the bundled truck function
about a third of its time (docs/tracking.md, "State in Python memory"). Its key is a shard of
trucks, so :class:`WriteBackState` reads a shard's whole map state the first time the instance
meets the shard (at start, or after a restore) and keeps it in a dict; changes are written back
when the shard's checkpoint marker arrives, the empty bundle ``io.fleetpulse.flink.ShardBundler``
sends every shard just before it forwards a checkpoint barrier. With aligned checkpoints
(``flink_jobs.runtime.environment.flink_configuration``) nothing from an input reaches the
function between
that input's marker and its barrier, so the snapshot holds every change made by the records
ahead of the barrier, and a restore resumes from exactly that.

Two exceptions write through at once instead: work not driven by the input (a processing-time
timer may run between the last marker and the barrier; the caller calls :meth:`write_back`
after it), and shards spilled past ``limit`` entries in memory (then read and written per key
through Flink's state, as without this class).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class CodedMapState(Generic[K, V]):
    """A PyFlink map state whose values are stored encoded (``encode`` on the way in,
    ``decode`` on the way out): the calls :class:`WriteBackState` makes, passed through.
    PyFlink still pickles what it is handed, but a ``bytes`` pickles in well under a
    microsecond."""

    def __init__(self, state: Any, encode: Callable[[V], Any], decode: Callable[[Any], V]) -> None:
        self.state = state
        self.encode = encode
        self.decode = decode

    def items(self) -> Iterator[tuple[K, V]]:
        decode = self.decode
        for key, value in self.state.items():
            yield key, decode(value)

    def keys(self) -> Iterator[K]:
        return iter(self.state.keys())

    def get(self, key: K) -> V | None:
        value = self.state.get(key)
        return self.decode(value) if value is not None else None

    def put_all(self, values: dict[K, V]) -> None:
        encode = self.encode
        self.state.put_all({key: encode(value) for key, value in values.items()})

    def remove(self, key: K) -> None:
        self.state.remove(key)


class WriteBackState(Generic[K, V]):
    """One PyFlink map state, per shard (the function's current key): a dict in memory, written
    back at :meth:`write_back`. Every call names the shard, which must be the current key."""

    def __init__(self, state: Any, limit: int | None = None) -> None:
        self.state = state
        self.limit = limit
        self.shards: dict[int, dict[K, V]] = {}
        self.dirty: dict[int, set[K]] = {}
        self.removed: dict[int, set[K]] = {}
        self.spilled: set[int] = set()
        self.size = 0  # entries held, over all shards

    def _entries(self, shard: int) -> dict[K, V] | None:
        """The shard's dict, read whole from the state on first use; None once spilled."""
        entries = self.shards.get(shard)
        if entries is None and shard not in self.spilled:
            entries = dict(self.state.items())
            self.shards[shard] = entries
            self.size += len(entries)
        return entries

    def get(self, shard: int, key: K) -> V | None:
        entries = self._entries(shard)
        return entries.get(key) if entries is not None else self.state.get(key)

    def keys(self, shard: int) -> list[K]:
        entries = self._entries(shard)
        return list(entries) if entries is not None else list(self.state.keys())

    def items(self, shard: int) -> Iterator[tuple[K, V]]:
        """Every entry of the shard, to read (not to change: nothing is written back)."""
        entries = self._entries(shard)
        return iter(entries.items()) if entries is not None else self.state.items()

    def put_all(self, shard: int, values: dict[K, V]) -> None:
        """Store ``values`` (also after changing a value read by :meth:`get` in place: the
        change is written back only for keys put)."""
        entries = self._entries(shard)
        if entries is None:
            self.state.put_all(values)
            return
        before = len(entries)
        entries.update(values)
        self.size += len(entries) - before
        self.dirty.setdefault(shard, set()).update(values)
        removed = self.removed.get(shard)
        if removed:
            removed.difference_update(values)
        if self.limit is not None and self.size > self.limit:
            self._spill(shard)

    def remove(self, shard: int, key: K) -> None:
        entries = self._entries(shard)
        if entries is None:
            self.state.remove(key)
            return
        if key in entries:
            del entries[key]
            self.size -= 1
        dirty = self.dirty.get(shard)
        if dirty:
            dirty.discard(key)
        self.removed.setdefault(shard, set()).add(key)

    def write_back(self, shard: int) -> None:
        """Write the shard's changes since the last write-back to Flink's state (at its
        checkpoint marker, or after work that no marker follows)."""
        dirty = self.dirty.pop(shard, None)
        entries = self.shards.get(shard)
        if dirty and entries is not None:
            self.state.put_all({key: entries[key] for key in dirty})
        for key in self.removed.pop(shard, ()):
            self.state.remove(key)

    def _spill(self, shard: int) -> None:
        """Over the limit: write this shard back and serve it from Flink's state from now on."""
        self.write_back(shard)
        self.size -= len(self.shards.pop(shard))
        self.spilled.add(shard)
