"""Retry policy and circuit breaker (pure; clock and randomness injected).

- Which outcomes are retried: 429, 5xx, timeouts and connection errors; other 4xx are final.
- Backoff: exponential with full jitter, ``uniform(0, min(max, initial * 2**(attempt-1)))``,
  at least ``initial/2``; a ``Retry-After`` from the receiver is honoured (capped at max).
- Circuit breaker per receiver: ``closed`` -> ``open`` after ``failure_threshold`` consecutive
  retryable failures; after ``reset_timeout`` one probe is let through (``half_open``); its
  success closes the breaker, its failure opens it again.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from datetime import UTC
from email.utils import parsedate_to_datetime

from alerting.config import BreakerConfig, RetryConfig


@dataclass(frozen=True)
class Outcome:
    """Result of one HTTP attempt: ``status`` (None for no response) and an error text."""

    status: int | None
    error: str = ""
    retry_after_ms: int | None = None

    @property
    def delivered(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def retryable(self) -> bool:
        if self.status is None:
            return True  # timeout, connection refused/reset
        return self.status == 429 or self.status >= 500 or self.status == 408

    def describe(self) -> str:
        if self.status is None:
            return self.error or "no response"
        return f"HTTP {self.status}" + (f": {self.error}" if self.error else "")


MAX_RETRY_AFTER_MS = 86_400_000  # a day; the retry policy caps it again at max_backoff
_DELTA_SECONDS = re.compile(r"^([0-9]+)(?:\.([0-9]*))?$")


def parse_retry_after(value: str | None, now_ms: int) -> int | None:
    """Retry-After (delta-seconds or HTTP date) -> milliseconds to wait, or None.

    Never raises: a value from the receiver is untrusted. Garbage, ``inf``, ``nan``, negative
    numbers and dates that cannot be read give None (the usual backoff applies); a past date
    gives 0; anything longer than :data:`MAX_RETRY_AFTER_MS` is cut to it."""
    if not value:
        return None
    value = value.strip()
    m = _DELTA_SECONDS.match(value)
    if m:
        whole, frac = m.group(1).lstrip("0"), (m.group(2) or "") + "000"
        if len(whole) > 12:  # no float or int of a 10,000-digit string
            return MAX_RETRY_AFTER_MS
        return min(MAX_RETRY_AFTER_MS, int(whole or "0") * 1000 + int(frac[:3]))
    try:
        when = parsedate_to_datetime(value)
        if when.tzinfo is None:  # "-0000": UTC
            when = when.replace(tzinfo=UTC)
        at_ms = int(when.timestamp() * 1000)
    except (TypeError, ValueError, OverflowError, IndexError, AttributeError):
        return None
    return min(MAX_RETRY_AFTER_MS, max(0, at_ms - now_ms))


def backoff_ms(
    attempt: int, cfg: RetryConfig, rng: random.Random, retry_after_ms: int | None = None
) -> int:
    """Delay before retry number ``attempt`` (1 = first retry)."""
    if retry_after_ms is not None:
        return min(max(retry_after_ms, 0), cfg.max_backoff_ms)
    ceiling = min(cfg.max_backoff_ms, cfg.initial_backoff_ms * (2 ** min(attempt - 1, 30)))
    floor = min(cfg.initial_backoff_ms // 2, ceiling)
    return int(floor + rng.random() * (ceiling - floor))


@dataclass(frozen=True)
class Decision:
    action: str  # delivered | retry | dead_letter
    delay_ms: int = 0
    reason: str = ""


def decide(
    outcome: Outcome, attempts: int, age_ms: int, cfg: RetryConfig, rng: random.Random
) -> Decision:
    """What to do after attempt number ``attempts`` of an alert queued ``age_ms`` ago."""
    if outcome.delivered:
        return Decision("delivered")
    if not outcome.retryable:
        return Decision("dead_letter", reason=f"{outcome.describe()} (not retried)")
    if attempts >= cfg.max_attempts:
        return Decision(
            "dead_letter", reason=f"{outcome.describe()} (gave up after {attempts} attempts)"
        )
    delay = backoff_ms(attempts, cfg, rng, outcome.retry_after_ms)
    if age_ms + delay > cfg.max_age_ms:
        return Decision(
            "dead_letter",
            reason=f"{outcome.describe()} (retry budget {cfg.max_age_ms} ms exhausted)",
        )
    return Decision("retry", delay_ms=delay, reason=outcome.describe())


CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"
STATE_VALUE = {CLOSED: 0, OPEN: 1, HALF_OPEN: 2}


class CircuitBreaker:
    def __init__(self, cfg: BreakerConfig) -> None:
        self.cfg = cfg
        self.state = CLOSED
        self.failures = 0
        self.opened_at_ms = 0
        self.probing = False

    def allow(self, now_ms: int) -> bool:
        """May an attempt start now? In half-open state, only one probe at a time."""
        if self.state == CLOSED:
            return True
        if self.state == OPEN and now_ms >= self.opened_at_ms + self.cfg.reset_timeout_ms:
            self.state = HALF_OPEN
        if self.state == HALF_OPEN and not self.probing:
            self.probing = True
            return True
        return False

    def retry_at_ms(self) -> int:
        """When an attempt may next be allowed (for waiting)."""
        return self.opened_at_ms + self.cfg.reset_timeout_ms

    def record(self, outcome: Outcome, now_ms: int) -> None:
        self.probing = False
        if outcome.delivered or not outcome.retryable:
            # the endpoint answered: it is alive even if it rejected this body
            self.state, self.failures = CLOSED, 0
            return
        self.failures += 1
        if self.state == HALF_OPEN or self.failures >= self.cfg.failure_threshold:
            self.state, self.opened_at_ms = OPEN, now_ms
