"""TimersOnce: a key's timer is registered once per time, whatever the number of records."""

from __future__ import annotations

import pytest

from flink_jobs.runtime.timers import TimersOnce
from tests.unit.flink_fakes import FakeContext

pytestmark = pytest.mark.unit


def test_a_tick_is_registered_once_per_key_and_again_for_the_next_tick() -> None:
    ctx, timers = FakeContext(), TimersOnce()
    for key, now in [(1, 1_010), (1, 1_150), (2, 1_190), (1, 1_199), (1, 1_200), (2, 1_420)]:
        ctx.key, ctx.now = key, now
        timers.processing_tick(ctx, 200)
    assert ctx.registered == [
        ("processing", 1, 1_200),
        ("processing", 2, 1_200),
        ("processing", 1, 1_400),
        ("processing", 2, 1_600),
    ]


def test_an_event_timer_is_registered_once_per_key_and_time() -> None:
    ctx, timers = FakeContext(), TimersOnce()
    for key, at in [("WEST", 9), ("WEST", 9), ("SOUTH", 9), ("WEST", 12), ("WEST", 12)]:
        ctx.key = key
        timers.event(ctx, at)
    assert ctx.registered == [("event", "WEST", 9), ("event", "SOUTH", 9), ("event", "WEST", 12)]
