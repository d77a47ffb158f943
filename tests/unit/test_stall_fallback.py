"""The one stall rule every operator follows when the watermark stops (udfs.stall_fallback)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from udfs.stall_fallback import assumed_event_time, fire_at, followed

pytestmark = pytest.mark.unit

GRACE = 2000


def test_no_watermark_known_keeps_whatever_reference_there_is() -> None:
    assert followed(None, None, 1000) is None
    assert followed((50_000, 1000), None, 9000) == (50_000, 1000)


def test_the_first_watermark_seen_becomes_the_reference() -> None:
    assert followed(None, 50_000, 1000) == (50_000, 1000)


def test_a_watermark_keeping_pace_moves_the_reference_and_assumes_nothing() -> None:
    # A backfill: 60 s of event time in 5 s of wall clock.
    assert followed((50_000, 1000), 110_000, 6000) == (110_000, 6000)
    assert assumed_event_time((50_000, 1000), 110_000, 6000, GRACE) is None


def test_a_lag_within_the_grace_keeps_the_reference_and_assumes_nothing() -> None:
    assert followed((50_000, 1000), 51_000, 3000) == (50_000, 1000)
    assert assumed_event_time((50_000, 1000), 51_000, 3000, GRACE) is None


def test_a_stalled_watermark_takes_event_time_from_the_wall_clock_less_the_grace() -> None:
    # Stalled 7 s: event time is the reference plus the 7 s less the 2 s grace.
    assert followed((50_000, 1000), 50_000, 8000) == (50_000, 1000)
    assert assumed_event_time((50_000, 1000), 50_000, 8000, GRACE) == 55_000
    # A watermark that crept on, but less than the wall clock minus the grace.
    assert assumed_event_time((50_000, 1000), 52_000, 8000, GRACE) == 55_000
    # No watermark at all: the reference alone (an estimate set before the first one).
    assert assumed_event_time((50_000, 1000), None, 8000, GRACE) == 55_000


def test_the_assumption_is_continuous_where_the_lag_passes_the_grace() -> None:
    # Just past the grace, the assumed time is just past the stalled watermark: no jump.
    assert assumed_event_time((50_000, 1000), 50_000, 3001, GRACE) == 50_001


@given(st.integers(0, 10**6), st.integers(0, 10**6), st.integers(0, 10**6), st.integers(0, 10**6))
def test_assumed_event_time_is_never_behind_the_watermark(
    ref_wm: int, ref_wall: int, advanced: int, elapsed: int
) -> None:
    watermark = ref_wm + advanced
    event_time = assumed_event_time((ref_wm, ref_wall), watermark, ref_wall + elapsed, GRACE)
    if event_time is not None:
        assert event_time >= watermark


@given(st.integers(0, 10**9), st.integers(-(10**6), 10**7), st.integers(0, 10**9))
def test_a_fallback_timer_fires_when_the_assumption_reaches_its_due_time(
    base: int, ahead: int, now: int
) -> None:
    due = base + ahead
    fire = fire_at(due, base, now, GRACE)
    assert fire % 1000 == 0 and fire >= now + 1000 + GRACE
    assumed = assumed_event_time((base, now), None, fire, GRACE)
    assert assumed is not None and assumed >= due
