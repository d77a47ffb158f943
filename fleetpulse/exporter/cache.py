"""At most one reading of the sources per interval, however many scrapers ask.

Two Prometheus servers, a dashboard and `curl` scraping at once read Redis, Kafka and Flink
once, not four times: a reading younger than ``max_age_s`` is served as it is, and concurrent
scrapes of an old one wait for the single refresh under way.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Cached(Generic[T]):
    def __init__(
        self,
        read: Callable[[], T],
        max_age_s: float,
        on_refresh: Callable[[T], None] = lambda _value: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._read = read
        self.max_age_s = max_age_s
        self._on_refresh = on_refresh  # called once per new reading (error counting)
        self._clock = clock
        self._lock = threading.Lock()
        self._value: T | None = None
        self._at = 0.0

    def get(self) -> T:
        with self._lock:
            if self._value is None or self._clock() - self._at >= self.max_age_s:
                value = self._read()
                self._value, self._at = value, self._clock()
                self._on_refresh(value)
            return self._value
