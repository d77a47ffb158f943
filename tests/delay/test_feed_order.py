"""The truck feed's event-time order (pure): the fixes a shipment gets depend on the event-time
history only, not on which topic was read faster (udfs.feed_order)."""

from __future__ import annotations

import random

import pytest

from udfs.feed_order import (
    NOTHING_RELEASED,
    FeedInput,
    applies_now,
    apply_in_order,
    assignment_input,
    order_key,
    ping_input,
    release_time,
)
from udfs.shipment_state import TruckFix
from udfs.stall_fallback import assumed_event_time, fire_at
from udfs.truck_speed import FeedConfig, TruckFeed, on_assignment, on_ping

from .helpers import HOUR, MIN, T0

pytestmark = pytest.mark.unit
CFG = FeedConfig(window_s=1800, fix_interval_s=600)
OOO = 10_000  # the watermark trails the newest input of each source by this
NO_WM = -(2**63) + 1


class HeldFeed:
    """What TruckFeedFunction does with Flink state and timers, with a dict and the watermark
    of two sources (pings, scans): hold each input until the watermark passes its second."""

    def __init__(self) -> None:
        self.feed = TruckFeed("T1")
        self.held: dict[int, list[FeedInput]] = {}
        self.newest = {"gps": NO_WM, "scans": NO_WM}
        self.wm = NO_WM
        self.fixes: list[TruckFix] = []

    def arrive(self, source: str, item: FeedInput) -> None:
        if applies_now(item[0], self.wm, NOTHING_RELEASED):
            self.fixes += apply_in_order(self.feed, [item], CFG)
        else:
            self.held.setdefault(release_time(item[0]), []).append(item)
        self.newest[source] = max(self.newest[source], item[0] - OOO)
        self.watermark(min(self.newest.values()))

    def watermark(self, wm: int) -> None:
        self.wm = max(self.wm, wm)
        for at in sorted(a for a in self.held if a <= self.wm):  # timers fire in time order
            self.fixes += apply_in_order(self.feed, self.held.pop(at), CFG)

    def end(self) -> list[TruckFix]:
        self.watermark(2**63 - 1)
        return self.fixes


def history() -> tuple[list[FeedInput], list[FeedInput]]:
    """Truck T1 pings every 5 min for 6 h; S1 is picked up at T0 + 1 h, S2 at T0 + 2 h (at the
    same instant as a ping), S1 delivered at T0 + 4 h."""
    pings = [ping_input(T0 + k * 5 * MIN, 45.0 + k * 0.005, -100.0, 10.0) for k in range(73)]
    scans = [
        assignment_input("S1", T0 + HOUR + 30_000, True),
        assignment_input("S2", T0 + 2 * HOUR, True),
        assignment_input("S1", T0 + 4 * HOUR, False),
    ]
    return pings, scans


def by_event_time(pings: list[FeedInput], scans: list[FeedInput]) -> list[tuple[str, FeedInput]]:
    return sorted(
        [("gps", p) for p in pings] + [("scans", s) for s in scans], key=lambda e: e[1][0]
    )


def run(arrivals: list[tuple[str, FeedInput]]) -> list[tuple[str, int, float]]:
    feed = HeldFeed()
    for source, item in arrivals:
        feed.arrive(source, item)
    return [(f.shipment_id, f.ts, f.avg_speed_kph) for f in feed.end()]


def test_fixes_do_not_depend_on_which_topic_is_read_first() -> None:
    pings, scans = history()
    interleaved = run(by_event_time(pings, scans))
    pings_first = run([("gps", p) for p in pings] + [("scans", s) for s in scans])
    scans_first = run([("scans", s) for s in scans] + [("gps", p) for p in pings])
    assert pings_first == interleaved
    assert scans_first == interleaved
    # S1 gets a fix from the truck's position when it was picked up, well before any deadline
    assert interleaved[0][:2] == ("S1", T0 + HOUR)
    assert {s for s, _, _ in interleaved} == {"S1", "S2"}
    assert max(ts for s, ts, _ in interleaved if s == "S1") < T0 + 4 * HOUR


def test_random_arrival_orders_give_the_same_fixes() -> None:
    pings, scans = history()
    expected = run(by_event_time(pings, scans))
    rng = random.Random(5)
    for _ in range(20):
        # Each source in its own order (as Kafka keeps a partition's order), merged at random.
        p, s, merged = list(pings), list(scans), []
        while p or s:
            src = rng.choice([x for x in (p, s) if x])
            merged.append(("gps" if src is p else "scans", src.pop(0)))
        assert run(merged) == expected


def test_arrival_order_was_the_bug() -> None:
    """The old feed, applying inputs as they arrive: with the pings read first, S1 was seeded
    from the truck's last ping, hours after its pick-up."""
    pings, scans = history()
    feed = TruckFeed("T1")
    fixes = [f for p in pings for f in on_ping(feed, p[0], p[2], p[3], p[4], CFG)]
    fixes += on_assignment(feed, "S1", scans[0][0], True, CFG)
    assert [(f.shipment_id, f.ts) for f in fixes] == [("S1", T0 + 6 * HOUR)]


def test_equal_times_assignment_first_and_content_order() -> None:
    a = assignment_input("S2", T0, True)
    p1 = ping_input(T0, 45.0, -100.0, None)
    p2 = ping_input(T0, 45.0, -100.0, 12.0)
    items = [p2, a, p1, assignment_input("S1", T0, True)]
    assert sorted(items, key=order_key) == [assignment_input("S1", T0, True), a, p1, p2]
    feed = TruckFeed("T1")
    on_ping(feed, T0 - MIN, 44.99, -100.0, 10.0, CFG)
    fixes = apply_in_order(feed, items, CFG)
    # both seeded from the minute-earlier ping, then the ping at T0 reaches both
    assert [(f.shipment_id, f.ts) for f in fixes] == [
        ("S1", T0 - MIN),
        ("S2", T0 - MIN),
        ("S1", T0),
        ("S2", T0),
    ]


def test_release_time_and_what_applies_at_once() -> None:
    assert release_time(T0) == T0 + 999
    assert release_time(T0 + 999) == T0 + 999
    assert release_time(T0 + 1000) == T0 + 1999
    assert not applies_now(T0 + 500, T0 + 998, NOTHING_RELEASED)  # its second is still open
    assert applies_now(T0 + 500, T0 + 999, NOTHING_RELEASED)  # its timer has fired
    assert applies_now(T0 + 500, NO_WM, T0 + 1999)  # a fallback went past it
    assert not applies_now(T0 + 2000, NO_WM, T0 + 1999)


def test_fallback_follows_the_wall_clock_only_when_the_watermark_stalls() -> None:
    grace = 30_000
    # watermark advanced as much as the wall clock: no fallback
    assert assumed_event_time((T0, 0), T0 + 60_000, 60_000, grace) is None
    # stalled for 60 s of wall time: event time is taken to be 30 s (60 - grace) further
    assert assumed_event_time((T0, 0), T0, 60_000, grace) == T0 + 30_000
    assert assumed_event_time((T0, 0), None, 60_000, grace) == T0 + 30_000
    # the timer fires when that estimate reaches the held input, in whole seconds
    assert fire_at(T0 + 5_500, T0, 1_000_000, grace) == 1_036_000
    assert fire_at(T0 + 10, T0, 1_000_000, grace) == 1_031_000
