"""Per-client outgoing queue that coalesces: the newest position of a truck replaces a queued
older one, so a client that reads slowly gets fewer, fresher messages instead of a backlog.

Bounded by the number of distinct keys; the owner decides what to do when it is full or when its
oldest entry gets too old (the gateway tells the client it is lagging and closes it).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable


class QueueFull(Exception):  # noqa: N818 - a signal, not an error of the program
    """The queue holds ``max_items`` distinct keys already."""


class CoalescingQueue(dict[Hashable, tuple[bytes, float]]):
    """Keyed FIFO: ``put`` on a queued key replaces its frame in place (keeps its turn).

    A dict itself (insertion-ordered, and assigning to a present key keeps its place), so
    ``len(queue)`` and ``if queue`` cost no Python call: the gateway asks them of thousands of
    queues per flush pass. Maps key -> (frame, enqueued_at); change it only through the
    methods.
    """

    __slots__ = ("max_items", "coalesced", "_serial")

    def __init__(self, max_items: int) -> None:
        super().__init__()
        self.max_items = max_items
        self.coalesced = 0
        self._serial = 0

    def put(self, key: Hashable | None, frame: bytes, now: float) -> bool:
        """Queue ``frame``; ``key=None`` never coalesces. True if it replaced a queued frame.

        A replaced frame keeps the enqueue time of the first one, so the age of the queue says
        how long the client has been behind, not how recent the data is.
        """
        if key is None:
            self._serial += 1
            key = ("_", self._serial)
        old = self.get(key)
        if old is not None:
            self[key] = (frame, old[1])
            self.coalesced += 1
            return True
        if len(self) >= self.max_items:
            raise QueueFull(f"{len(self)} frames queued")
        self[key] = (frame, now)
        return False

    def drop_where(self, predicate: Callable[[Hashable], bool]) -> int:
        """Remove queued frames whose key satisfies ``predicate(key)``; how many."""
        keys = [k for k in self if predicate(k)]
        for k in keys:
            del self[k]
        return len(keys)

    def oldest_age(self, now: float) -> float:
        """Seconds the oldest queued frame has waited (0 if empty)."""
        if not self:
            return 0.0
        return now - next(iter(self.values()))[1]

    def take(self, limit: int) -> tuple[list[bytes], float]:
        """Up to ``limit`` frames in queue order, and when the oldest of them was queued
        (``([], 0.0)`` when empty): all a write needs, in one call."""
        if not self:
            return [], 0.0
        since = next(iter(self.values()))[1]
        if len(self) <= limit:  # the usual case: take everything
            out = [v[0] for v in self.values()]
            super().clear()
            return out, since
        keys = []
        out = []
        for k, v in self.items():
            if len(out) >= limit:
                break
            keys.append(k)
            out.append(v[0])
        for k in keys:
            del self[k]
        return out, since

    def pop_batch(self, limit: int) -> list[bytes]:
        """Up to ``limit`` frames in queue order."""
        return self.take(limit)[0]

    def drop_all(self) -> int:
        """Empty the queue; how many frames were dropped."""
        n = len(self)
        super().clear()
        return n
