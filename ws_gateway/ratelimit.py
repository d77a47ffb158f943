"""Token bucket for client messages: a burst is fine, a sustained flood is not."""

from __future__ import annotations


class TokenBucket:
    """``rate_per_s`` tokens per second up to ``burst``; the clock is passed in."""

    __slots__ = ("rate_per_s", "burst", "_tokens", "_last")

    def __init__(self, rate_per_s: float, burst: float, now: float) -> None:
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._tokens = burst
        self._last = now

    def allow(self, now: float, cost: float = 1.0) -> bool:
        """Take ``cost`` tokens if there are enough."""
        elapsed = max(0.0, now - self._last)
        self._last = now
        self._tokens = min(self.burst, self._tokens + elapsed * self.rate_per_s)
        if self._tokens >= cost:
            self._tokens -= cost
            return True
        return False
