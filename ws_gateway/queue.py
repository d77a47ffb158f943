"""Per-client outgoing queue that coalesces: the newest position of a truck replaces a queued
older one, so a client that reads slowly gets fewer, fresher messages instead of a backlog.

Bounded by the number of distinct keys; the owner decides what to do when it is full or when its
oldest entry gets too old (the gateway tells the client it is lagging and closes it).
"""

from __future__ import annotations

from collections.abc import Hashable


class QueueFull(Exception):  # noqa: N818 - a signal, not an error of the program
    """The queue holds ``max_items`` distinct keys already."""


class CoalescingQueue:
    """Keyed FIFO: ``put`` on a queued key replaces its frame in place (keeps its turn).

    A plain dict: insertion-ordered, and assigning to a present key keeps its place.
    """

    __slots__ = ("max_items", "_items", "coalesced", "_serial")

    def __init__(self, max_items: int) -> None:
        self.max_items = max_items
        # key -> (frame, enqueued_at)
        self._items: dict[Hashable, tuple[bytes, float]] = {}
        self.coalesced = 0
        self._serial = 0

    def __len__(self) -> int:
        return len(self._items)

    def put(self, key: Hashable | None, frame: bytes, now: float) -> bool:
        """Queue ``frame``; ``key=None`` never coalesces. True if it replaced a queued frame.

        A replaced frame keeps the enqueue time of the first one, so the age of the queue says
        how long the client has been behind, not how recent the data is.
        """
        if key is None:
            self._serial += 1
            key = ("_", self._serial)
        items = self._items
        old = items.get(key)
        if old is not None:
            items[key] = (frame, old[1])
            self.coalesced += 1
            return True
        if len(items) >= self.max_items:
            raise QueueFull(f"{len(items)} frames queued")
        items[key] = (frame, now)
        return False

    def drop_where(self, predicate: object) -> int:
        """Remove queued frames whose key satisfies ``predicate(key)``; how many."""
        keys = [k for k in self._items if predicate(k)]  # type: ignore[operator]
        for k in keys:
            del self._items[k]
        return len(keys)

    def oldest_age(self, now: float) -> float:
        """Seconds the oldest queued frame has waited (0 if empty)."""
        if not self._items:
            return 0.0
        return now - next(iter(self._items.values()))[1]

    def pop_batch(self, limit: int) -> list[bytes]:
        """Up to ``limit`` frames in queue order."""
        items = self._items
        if len(items) <= limit:  # the usual case: take everything
            out = [v[0] for v in items.values()]
            items.clear()
            return out
        keys = []
        out = []
        for k, v in items.items():
            if len(out) >= limit:
                break
            keys.append(k)
            out.append(v[0])
        for k in keys:
            del items[k]
        return out

    def clear(self) -> int:
        n = len(self._items)
        self._items.clear()
        return n
