"""The subscription index finds exactly the interested subscriptions (pure)."""

from __future__ import annotations

import random

import pytest

from ws_gateway.filters import Envelope, Filter, parse_bbox
from ws_gateway.index import SubscriptionIndex

pytestmark = pytest.mark.unit


class Sub:
    def __init__(self, flt: Filter) -> None:
        self.filter = flt

    @property
    def envelope(self) -> Envelope | None:
        return self.filter.envelope

    @property
    def truck_ids(self) -> frozenset[str]:
        return self.filter.truck_ids

    def matches(self, truck_id: str, lat: float, lng: float) -> bool:
        return self.filter.matches(truck_id, lat, lng)


def test_matches_equal_brute_force() -> None:
    rng = random.Random(7)
    index: SubscriptionIndex[Sub] = SubscriptionIndex(cell_deg=1.0, max_cells=200)
    subs = []
    for _ in range(400):
        w, h = rng.uniform(0.05, 30), rng.uniform(0.05, 20)
        x, y = rng.uniform(-125, -70), rng.uniform(25, 49)
        subs.append(Sub(parse_bbox([x, y, min(180, x + w), min(90, y + h)])))
    subs += [Sub(Filter("truck_ids", truck_ids=frozenset({f"T{i}"}))) for i in range(20)]
    for s in subs:
        index.add(s)
    for _ in range(3000):
        lat, lng, tid = rng.uniform(20, 55), rng.uniform(-130, -60), f"T{rng.randrange(40)}"
        want = {id(s) for s in subs if s.matches(tid, lat, lng)}
        assert {id(s) for s in index.match(tid, lat, lng)} == want


def test_candidates_stay_local() -> None:
    """A point looks only at subscriptions near it, not at all of them."""
    index: SubscriptionIndex[Sub] = SubscriptionIndex(cell_deg=1.0)
    for i in range(1000):
        lng = -125 + (i % 50)
        lat = 25 + (i // 50)
        index.add(Sub(parse_bbox([lng + 0.1, lat + 0.1, lng + 0.9, lat + 0.9])))
    assert len(list(index.candidates("T", 30.5, -100.5))) == 1


def test_remove_and_replace() -> None:
    index: SubscriptionIndex[Sub] = SubscriptionIndex(cell_deg=1.0, max_cells=10)
    small = Sub(parse_bbox([0, 0, 1, 1]))
    wide = Sub(parse_bbox([-100, -50, 100, 50]))  # more than max_cells: the wide list
    ids = Sub(Filter("truck_ids", truck_ids=frozenset({"A"})))
    for s in (small, wide, ids):
        index.add(s)
    assert len(index) == 3
    assert {id(s) for s in index.match("A", 0.5, 0.5)} == {id(small), id(wide), id(ids)}
    index.remove(small)
    index.remove(ids)
    assert [id(s) for s in index.match("A", 0.5, 0.5)] == [id(wide)]
    index.add(wide)  # adding again re-indexes instead of duplicating
    assert len(index) == 1
    index.remove(wide)
    assert index.match("A", 0.5, 0.5) == [] and len(index) == 0


class ExactBox(Sub):
    """A bbox whose envelope test is the whole answer (the index skips ``matches``)."""

    envelope_exact = True


def test_a_move_finds_who_wants_the_truck_and_who_it_left() -> None:
    """``match_move`` equals ``match(new)`` and ``match(prev) - match(new)``, for moves inside
    a cell, across cells (to neighbours and far away), onto cell lines, and for every kind of
    subscription (grid, wide, truck ids, envelope-exact or not)."""
    rng = random.Random(11)
    index: SubscriptionIndex[Sub] = SubscriptionIndex(cell_deg=1.0, max_cells=200)
    subs: list[Sub] = []
    for i in range(300):
        w, h = rng.uniform(0.05, 4) if i % 10 else 40, rng.uniform(0.05, 3) if i % 10 else 25
        x, y = rng.uniform(-110, -100), rng.uniform(35, 45)
        cls = ExactBox if i % 2 else Sub
        subs.append(cls(parse_bbox([x, y, x + w, y + h])))
    subs += [Sub(Filter("truck_ids", truck_ids=frozenset({f"T{i}"}))) for i in range(10)]
    for s in subs:
        index.add(s)
    for k in range(4000):
        tid = f"T{rng.randrange(20)}"
        lat, lng = rng.uniform(34, 46), rng.uniform(-111, -99)
        step = (0.01, 0.5, 3.0)[k % 3]
        plat, plng = lat + rng.uniform(-step, step), lng + rng.uniform(-step, step)
        if k % 7 == 0:
            lat, plng = round(lat), round(plng)  # on a cell line
        inside, left = index.match_move(tid, lat, lng, plat, plng)
        now = {id(s) for s in index.match(tid, lat, lng)}
        was = {id(s) for s in index.match(tid, plat, plng)}
        assert sorted(map(id, inside)) == sorted(now)
        assert sorted(map(id, left)) == sorted(was - now)
