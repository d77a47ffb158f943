"""The truck feed for shipment_at_risk (pure): average speed and throttled fan-out."""

from __future__ import annotations

import pytest

from udfs.truck_speed import FeedConfig, TruckFeed, average_speed_kph, on_assignment, on_ping

from .helpers import MIN, T0

pytestmark = pytest.mark.unit
CFG = FeedConfig(window_s=1800, fix_interval_s=300)


def test_average_speed_is_distance_over_time() -> None:
    # 0.01 degree of latitude (~1.11 km) per minute: ~66.7 km/h
    recent = [(T0 + i * MIN, 45.0 + i * 0.01, -100.0, None) for i in range(11)]
    assert average_speed_kph(recent) == pytest.approx(66.7, abs=0.2)
    assert average_speed_kph([(T0, 45.0, -100.0, 50.0)]) == 50.0
    assert average_speed_kph([]) == 0.0


def test_fixes_go_to_assigned_shipments_at_most_every_interval() -> None:
    feed = TruckFeed("T1")
    assert on_ping(feed, T0, 45.0, -100.0, 60.0, CFG) == []  # nothing assigned yet
    first = on_assignment(feed, "S1", T0, True, CFG)
    assert [(f.shipment_id, f.ts) for f in first] == [("S1", T0)]  # a fix straight away
    on_assignment(feed, "S2", T0, True, CFG)
    assert [f.shipment_id for f in on_ping(feed, T0 + MIN, 45.01, -100.0, 60.0, CFG)] == [
        "S1",
        "S2",
    ]
    assert on_ping(feed, T0 + 2 * MIN, 45.02, -100.0, 60.0, CFG) == []  # throttled
    assert on_ping(feed, T0 + MIN, 45.0, -100.0, 60.0, CFG) == []  # out of order: ignored
    on_assignment(feed, "S1", T0 + 3 * MIN, False, CFG)  # delivered
    assert [f.shipment_id for f in on_ping(feed, T0 + 7 * MIN, 45.05, -100.0, 60.0, CFG)] == ["S2"]
    assert feed.recent[0][0] >= T0 + 7 * MIN - 1800 * 1000


def test_a_teleported_fix_is_skipped_and_a_lasting_jump_restarts_the_track() -> None:
    feed = TruckFeed("T1")
    on_assignment(feed, "S1", T0, True, CFG)
    for i in range(5):  # ~66.7 km/h north
        on_ping(feed, T0 + i * MIN, 45.0 + i * 0.01, -100.0, None, CFG)
    # 1,100 km in a minute: the tracking job's IMPOSSIBLE_SPEED, not part of the average
    assert on_ping(feed, T0 + 5 * MIN, 55.0, -100.0, None, CFG) == []
    assert [r[1] for r in feed.recent][-1] == pytest.approx(45.04)
    assert average_speed_kph(feed.recent) == pytest.approx(66.7, abs=0.2)
    # still there ten minutes after the last good fix: the track starts again from it
    fixes = on_ping(feed, T0 + 14 * MIN, 55.0, -100.0, 60.0, CFG)
    assert [(r[0], r[1]) for r in feed.recent] == [(T0 + 14 * MIN, 55.0)]
    assert [f.shipment_id for f in fixes] == ["S1"]
