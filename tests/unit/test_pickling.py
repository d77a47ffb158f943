"""Records and state pickle by their fields: equal after a round trip, smaller than the
dataclass default, and pickles written before the change still load."""

from __future__ import annotations

import pickle
from dataclasses import dataclass

import pytest

from udfs.models import Ping
from udfs.pickling import pickled_by_fields
from udfs.truck_state import PositionWrite, TruckState, fingerprint

pytestmark = pytest.mark.unit


def a_truck_state() -> TruckState:
    state = TruckState(
        "TRK-1",
        pos_ts=1_000,
        lat=40.0,
        lng=-100.0,
        region="MIDWEST",
        census=("MIDWEST", "MOVING"),
        det_ts=900,
    )
    state.pending.append(Ping("TRK-1", 1_000, 40.0, -100.0, 55.5, 90.0))
    state.recent.append(fingerprint(1_000, 40.0, -100.0))
    state.inside["HUB-X"] = [1, 0]
    return state


def test_round_trips_are_equal() -> None:
    values: list[object] = [
        a_truck_state(),
        Ping("T", 1, 2.0, 3.0, None, 4.0, 5.0, "ok"),
        PositionWrite("T", 1, 2.0, 3.0, 4.0, 5.0, "MOVING", "WEST"),
    ]
    for value in values:
        assert pickle.loads(pickle.dumps(value)) == value


@dataclass(slots=True)
class Record:
    """Decorated inside the test, after a pickle of the dataclass default was taken."""

    a: int
    b: list[int]


def test_a_pickle_from_the_dataclass_default_still_loads() -> None:
    """Checkpoints taken before this pickling keep restoring."""
    old = pickle.dumps(Record(1, [2]))
    fast = pickled_by_fields(Record)
    assert pickle.loads(old) == fast(1, [2])
    assert len(pickle.dumps(fast(1, [2]))) < len(old)


def test_a_single_field_class_is_refused() -> None:
    @dataclass
    class One:
        a: int

    with pytest.raises(TypeError, match="two fields"):
        pickled_by_fields(One)
