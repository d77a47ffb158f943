"""Token bucket for client messages: a burst is fine, a sustained flood is not.

Work whose size is known only afterwards (a snapshot reads as many trucks as the filter
holds) is :meth:`TokenBucket.charge`d after it is done and may leave the bucket in debt: the
client's next messages are refused until the debt is paid back at ``rate_per_s``, so what a
client makes the gateway read is bounded however it phrases its requests.
"""

from __future__ import annotations


class TokenBucket:
    """``rate_per_s`` tokens per second up to ``burst``; the clock is passed in."""

    __slots__ = ("rate_per_s", "burst", "_tokens", "_last")

    def __init__(self, rate_per_s: float, burst: float, now: float) -> None:
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._tokens = burst
        self._last = now

    def _refill(self, now: float) -> None:
        elapsed = max(0.0, now - self._last)
        self._last = now
        self._tokens = min(self.burst, self._tokens + elapsed * self.rate_per_s)

    def allow(self, now: float, cost: float = 1.0) -> bool:
        """Take ``cost`` tokens if there are enough."""
        self._refill(now)
        if self._tokens >= cost:
            self._tokens -= cost
            return True
        return False

    def charge(self, now: float, cost: float) -> None:
        """Take ``cost`` tokens for work already done, going into debt if need be (uncapped:
        over time a client gets no more work than ``rate_per_s`` pays for)."""
        self._refill(now)
        self._tokens -= cost

    def in_debt(self, now: float) -> bool:
        """Earlier work has overdrawn the bucket: more expensive work waits."""
        self._refill(now)
        return self._tokens < 0.0

    def wait_s(self, now: float, cost: float = 1.0) -> float:
        """Seconds until ``cost`` tokens are there."""
        self._refill(now)
        return max(0.0, (cost - self._tokens) / self.rate_per_s) if self.rate_per_s > 0 else 0.0
