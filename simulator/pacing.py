"""The event clock of a live run: simulated time runs ``speedup`` times faster than the wall
clock from a start in the past, and never passes the wall clock (pings ahead of it by more than
five minutes are FUTURE_TIMESTAMP dead letters). So a demo backfills its first simulated hours
in minutes, then continues in real time. Clocks are injected so this is testable without
sleeping."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

R = TypeVar("R")


class EventClock:
    """``now_ms()`` = min(start + speedup × wall time elapsed, wall clock)."""

    def __init__(
        self,
        start_ms: int,
        speedup: float,
        wall_ms: Callable[[], int] = lambda: int(time.time() * 1000),
    ) -> None:
        self.start_ms = start_ms
        self.speedup = speedup
        self.wall_ms = wall_ms
        self.wall0 = wall_ms()

    def now_ms(self) -> int:
        wall = self.wall_ms()
        return min(self.start_ms + int((wall - self.wall0) * self.speedup), wall)

    def wall_wait_s(self, event_ms: int) -> float:
        """Wall seconds until the event clock reaches ``event_ms`` (0 if it has)."""
        lag = event_ms - self.now_ms()
        if lag <= 0:
            return 0.0
        wall = self.wall_ms()
        sim = self.start_ms + int((wall - self.wall0) * self.speedup)
        if sim < wall:  # still catching up: speedup applies
            return lag / self.speedup / 1000
        return lag / 1000


def paced(
    records: Iterable[R],
    emit_ms: Callable[[R], int],
    clock: EventClock,
    max_rate: float = 0.0,
    sleep: Callable[[float], None] = time.sleep,
    on_wait: Callable[[], None] | None = None,
    monotonic: Callable[[], float] = time.monotonic,
) -> Iterator[R]:
    """Yield each record once the event clock has reached its emission time, and no faster
    than ``max_rate`` records per wall second (0: no cap). ``on_wait`` runs before a sleep
    (the producer flushes its batches there)."""
    t0 = monotonic()
    for n, rec in enumerate(records):
        wait = clock.wall_wait_s(emit_ms(rec))
        if max_rate > 0:
            wait = max(wait, t0 + n / max_rate - monotonic())
        if wait > 0.002:
            if on_wait is not None:
                on_wait()
            while wait > 0.002:
                sleep(min(wait, 0.2))
                wait = clock.wall_wait_s(emit_ms(rec))
                if max_rate > 0:
                    wait = max(wait, t0 + n / max_rate - monotonic())
        yield rec
