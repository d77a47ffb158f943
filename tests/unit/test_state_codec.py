"""A truck's state through its checkpoint form (compact JSON) and back is the same state, at
every step of its life, and behaves the same from there on."""

from __future__ import annotations

import random

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from flink_jobs.tracking.shard_state import CodedMapState
from flink_jobs.tracking.state_codec import FORMAT, UnknownStateFormat, decode_truck, encode_truck
from flink_jobs.tracking.truck_function import TruckEntry, decode_entry, encode_entry
from tests.unit.flink_fakes import FakeMapState
from tests.unit.test_truck_state import CFG, T0, hub_fence, near_hub_pings, region
from udfs.models import Ping
from udfs.truck_state import Counters, TruckState, catch_up, fingerprint, on_ping, open_alerts

pytestmark = pytest.mark.unit
RECENT = list(TruckState.__dataclass_fields__).index("recent")
# Formats 2 and 3 end with written_rev; format 1 one field before it.
FORMAT_3_FIELDS = list(TruckState.__dataclass_fields__).index("written_rev") + 1


def restored(state: TruckState, second: int | None = None) -> TruckState:
    back, back_second = decode_truck(encode_truck(state, second))
    assert back_second == second
    return back


@given(near_hub_pings, st.randoms(use_true_random=False))
def test_every_state_a_truck_passes_through_round_trips_and_continues_the_same(
    pings: list[Ping], rnd: random.Random
) -> None:
    rnd.shuffle(pings)
    state, copy = TruckState("T1"), TruckState("T1")
    wm = T0 - 10_000
    for p in pings:
        outs = []
        for s in (state, copy):
            outs.append(catch_up(s, wm, CFG, hub_fence) + on_ping(s, p, CFG, region, Counters()))
        assert outs[0] == outs[1]
        copy = restored(copy, p.ts)
        assert copy == state
        wm = max(wm, p.ts - 10_000)


def test_a_state_with_every_kind_of_field_set_round_trips_exactly() -> None:
    state = TruckState(
        "T9",
        1_764_000_000_123,
        40.123456789,
        -100.000001,
        61.25,
        359.9,
        "MIDWEST",
        ("MIDWEST", "MOVING"),
        [Ping("T9", 1_764_000_005_000, 40.2, -100.1, None, 12.5, 4.0, "ok")],
        1_764_000_000_000,
        40.1,
        -100.0,
        "STOPPED",
        1_763_999_000_000,
        True,
        True,
        True,
        {"HUB-A": [1, 1]},
        [fingerprint(1_764_000_000_000, 40.1, -100.0), (1 << 63) - 1],
        2,
        3,
        "WEST",
        "MIDWEST",
        40.099999,
        -100.000002,
    )
    back = restored(state, None)
    assert back == state
    assert isinstance(back.census, tuple) and isinstance(back.recent[0], int)
    assert isinstance(back.pending[0], Ping)


def test_a_layout_this_version_does_not_know_is_refused_by_name() -> None:
    with pytest.raises(UnknownStateFormat, match="format 99"):
        decode_truck(orjson.dumps([99, None, []]))
    with pytest.raises(UnknownStateFormat, match=f"format {FORMAT}"):
        decode_truck(orjson.dumps([FORMAT, None, ["T1", 5]]))  # fields missing


def test_entries_are_stored_as_json_and_a_list_pickled_whole_still_restores() -> None:
    entry = TruckEntry(TruckState("T1", 5, 40.0, -100.0), 7000)
    state = FakeMapState()
    coded: CodedMapState[str, TruckEntry] = CodedMapState(state, encode_entry, decode_entry)
    coded.put_all({"T1": entry})
    assert isinstance(state.stored["T1"], bytes)
    assert coded.get("T1") == entry
    state.stored["T0"] = [TruckState("T0"), None]  # as a checkpoint from before held it
    assert dict(coded.items()) == {"T1": entry, "T0": TruckEntry(TruckState("T0"), None)}
    assert sorted(coded.keys()) == ["T0", "T1"]
    coded.remove("T0")
    assert coded.get("T0") is None


def test_a_format_1_state_reads_with_no_write_since_the_restore() -> None:
    """Checkpoints of before 2026-11-28 hold 20 fields under format 1; they restore with the
    write counters at their defaults, every other field as stored."""
    state = TruckState(
        "T9",
        1_764_000_000_123,
        40.5,
        -100.5,
        61.25,
        359.9,
        "MIDWEST",
        ("MIDWEST", "STOPPED"),
        status="STOPPED",
        recent=[fingerprint(1, 2.0, 3.0)],
        written_rev=2,
    )
    _, wake, values = orjson.loads(encode_truck(state, 7))
    values[RECENT] = [[1, 2.0, 3.0]]  # before format 3: fingerprints as [ts, lat, lng]
    format_1 = orjson.dumps([1, wake, values[: FORMAT_3_FIELDS - 1]])
    back, wake_back = decode_truck(format_1)
    assert wake_back == 7
    assert back.written_rev == 0
    assert back == TruckState(
        **{**{f: getattr(state, f) for f in state.__slots__}, "written_rev": 0}
    )
    with pytest.raises(UnknownStateFormat, match="format 1"):
        decode_truck(orjson.dumps([1, wake, values[:FORMAT_3_FIELDS]]))  # never had 21 fields


def test_a_format_2_state_reads_with_its_fingerprints_as_integers() -> None:
    """Format 2 (2026-11-28, before format 3) kept the duplicate fingerprints as [ts, lat, lng]
    arrays: they read as fingerprint() integers, so a duplicate of a ping from before the
    restore is still dropped."""
    state = TruckState(
        "T9",
        1_764_000_000_123,
        40.5,
        -100.5,
        region="MIDWEST",
        written_rev=2,
        recent=[fingerprint(1_764_000_000_123, 40.5, -100.5)],
    )
    _, wake, values = orjson.loads(encode_truck(state, None))
    values[RECENT] = [[1_764_000_000_123, 40.5, -100.5]]
    back, _ = decode_truck(orjson.dumps([2, wake, values[:FORMAT_3_FIELDS]]))
    assert back == state
    counters = Counters()
    assert on_ping(back, Ping("T9", 1_764_000_000_123, 40.5, -100.5), CFG, region, counters) == []
    assert counters.duplicates == 1


def test_fingerprints_tell_pings_apart_and_stay_fixed() -> None:
    """Stored in checkpoints, so the same ping must give the same integer in every process and
    version (pinned here), and near pings different ones."""
    assert fingerprint(1_764_000_000_123, 40.5, -100.5) == 7_007_491_283_793_255_891
    near = {
        fingerprint(1_764_000_000_000 + dt, 40.5 + i * 1e-6, -100.5 - j * 1e-6)
        for dt in range(0, 5)
        for i in range(5)
        for j in range(5)
    }
    assert len(near) == 125
    assert all(0 <= f < 1 << 63 for f in near)


def test_a_format_3_state_with_alerts_open_reads_and_sends_them_again() -> None:
    """Format 3 (before 2026-12-07) kept no trigger details: the truck's alerts stay open, and
    their triggers are sent again with its latest region and fix (same incident, event time and
    details otherwise)."""
    state = TruckState(
        "T9",
        1_764_000_000_000,
        40.5,
        -100.5,
        region="MIDWEST",
        det_ts=1_764_000_000_000,
        det_lat=40.5,
        det_lng=-100.5,
        status="OFFLINE",
        slow_since=1_763_990_000_000,
        offline_open=True,
        stop_alert_open=True,
        stop_judged=True,
    )
    _, wake, values = orjson.loads(encode_truck(state, 9000))
    back, wake_back = decode_truck(orjson.dumps([3, wake, values[:FORMAT_3_FIELDS]]))
    assert (back, wake_back) == (state, 9000)
    offline, stop = open_alerts(back, CFG)
    assert (offline.alert_class, offline.event_ts) == ("truck_offline", 1_764_000_600_000)
    assert (stop.alert_class, stop.event_ts) == ("truck_stopped_unplanned", 1_763_991_800_000)
    assert offline.group == stop.group == "MIDWEST"
    assert stop.custom_details["lat"] == 40.5
