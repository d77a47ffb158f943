"""TimersOnce: a key's timer is registered once per time, whatever the number of records."""

from __future__ import annotations

from typing import Any

import pytest

from flink_jobs.timers import TimersOnce

pytestmark = pytest.mark.unit


class FakeContext:
    """The slice of a KeyedProcessFunction context the helper uses, recording registrations."""

    def __init__(self) -> None:
        self.key: Any = None
        self.now = 0
        self.registered: list[tuple[str, Any, int]] = []

    def get_current_key(self) -> Any:
        return self.key

    def timer_service(self) -> FakeContext:
        return self

    def current_processing_time(self) -> int:
        return self.now

    def register_processing_time_timer(self, at: int) -> None:
        self.registered.append(("processing", self.key, at))

    def register_event_time_timer(self, at: int) -> None:
        self.registered.append(("event", self.key, at))


def test_a_tick_is_registered_once_per_key_and_again_for_the_next_tick() -> None:
    ctx, timers = FakeContext(), TimersOnce()
    for key, now in [(1, 1_010), (1, 1_150), (2, 1_190), (1, 1_199), (1, 1_200), (2, 1_420)]:
        ctx.key, ctx.now = key, now
        timers.processing_tick(ctx, 200)
    assert ctx.registered == [("processing", 1, 1_200), ("processing", 2, 1_200),
                              ("processing", 1, 1_400), ("processing", 2, 1_600)]


def test_an_event_timer_is_registered_once_per_key_and_time() -> None:
    ctx, timers = FakeContext(), TimersOnce()
    for key, at in [("WEST", 9), ("WEST", 9), ("SOUTH", 9), ("WEST", 12), ("WEST", 12)]:
        ctx.key = key
        timers.event(ctx, at)
    assert ctx.registered == [("event", "WEST", 9), ("event", "SOUTH", 9), ("event", "WEST", 12)]
