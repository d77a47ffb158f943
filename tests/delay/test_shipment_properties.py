"""Property tests: the outcome depends only on the set of inputs, not on their arrival order,
duplicates or how the watermark was interleaved with them."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from udfs.models import AlertEvent, Scan, ScanType
from udfs.shipment_state import (
    Output,
    ShipmentState,
    TruckFix,
    advance,
    next_deadline,
    step,
)

from .helpers import CFG, HOUR, MIN, PDX, SEA, T0, RedisModel

pytestmark = pytest.mark.unit

END = T0 + 80 * HOUR
TYPES = list(ScanType)


@st.composite
def scenario(draw: st.DrawFn) -> list[Scan | TruckFix]:
    n = draw(st.integers(1, 7))
    events: list[Scan | TruckFix] = []
    for i in range(n):
        typ = draw(st.sampled_from(TYPES))
        ts = T0 + draw(st.integers(0, 60)) * 30 * MIN
        kw: dict[str, object] = {}
        if typ is ScanType.PICKED_UP:
            kw = {"promised_by": T0 + draw(st.integers(1, 40)) * HOUR, "lat": SEA[0],
                  "lng": draw(st.sampled_from([SEA[1], -90.0])), "dest_lat": PDX[0],
                  "dest_lng": PDX[1]}
        kw["truck_id"] = draw(st.sampled_from([None, "T1", "T2"]))
        events.append(Scan(f"S1-{i}", "S1", typ, ts, **kw))  # type: ignore[arg-type]
    for _ in range(draw(st.integers(0, 2))):
        events.append(TruckFix("S1", draw(st.sampled_from(["T1", "T2"])),
                               T0 + draw(st.integers(0, 40)) * HOUR, SEA[0], SEA[1],
                               draw(st.sampled_from([2.0, 30.0, 90.0]))))
    return events


def reference(events: list[Scan | TruckFix]) -> tuple[ShipmentState, list[Output]]:
    """In event-time order, all before the watermark moves: the live, well-behaved case."""
    state: ShipmentState | None = None
    for e in sorted(events, key=lambda e: (e.ts, repr(e))):
        state, _ = step(state, e, CFG)
    assert state is not None
    return advance(state, END, CFG)


def outcome(state: ShipmentState, outputs: list[Output]) -> tuple[object, ...]:
    model = RedisModel()
    model.apply(outputs)
    last_action: dict[str, str] = {}
    for o in outputs:
        if isinstance(o, AlertEvent):
            last_action[o.alert_class] = o.event_action
    still_open = {cls for cls, a in last_action.items() if a == "trigger"}
    assert still_open == set(state.open), (last_action, state.open)
    regions = {r: {k: v for k, v in fields.items() if abs(v) > 1e-9}
               for r, fields in model.region.items()}
    return (dict(state.open), state.score, state.counted_region, state.delay_hours,
            model.delays, {r: f for r, f in regions.items() if f},
            sorted(s.scan_id for s in state.scans))


@settings(max_examples=300, deadline=None)
@given(events=scenario(), data=st.data())
def test_any_arrival_order_with_duplicates_gives_identical_outputs(
        events: list[Scan | TruckFix], data: st.DataObject) -> None:
    """Buffered until the watermark passes them, inputs give the very same alert sequence."""
    dups = data.draw(st.lists(st.sampled_from(events), max_size=3))
    arrival = data.draw(st.permutations(events + dups))
    ref_state, ref_out = reference(events)
    state: ShipmentState | None = None
    for e in arrival:
        state, out = step(state, e, CFG)
        assert out == []
    assert state is not None
    state, out = advance(state, END, CFG)
    assert out == ref_out
    assert outcome(state, out) == outcome(ref_state, ref_out)


@settings(max_examples=300, deadline=None)
@given(events=scenario(), data=st.data())
def test_final_state_depends_only_on_the_set_even_with_late_inputs(
        events: list[Scan | TruckFix], data: st.DataObject) -> None:
    """The watermark may pass inputs before they arrive (late): corrections converge."""
    arrival = data.draw(st.permutations(events + data.draw(
        st.lists(st.sampled_from(events), max_size=2))))
    ref_state, ref_out = reference(events)
    state: ShipmentState | None = None
    outputs: list[Output] = []
    wm = T0 - 1
    for e in arrival:
        state, out = step(state, e, CFG)
        outputs += out
        if data.draw(st.booleans()):
            wm = max(wm, T0 + data.draw(st.integers(0, 70)) * HOUR)
            state, out = advance(state, wm, CFG)
            outputs += out
    assert state is not None
    state, out = advance(state, END, CFG)
    outputs += out
    assert outcome(state, outputs) == outcome(ref_state, ref_out)
    assert next_deadline(state, CFG) == next_deadline(ref_state, CFG)


@settings(max_examples=200, deadline=None)
@given(events=scenario())
def test_alerts_come_out_in_event_time_order(events: list[Scan | TruckFix]) -> None:
    _, out = reference(events)
    times = [o.event_ts for o in out if isinstance(o, AlertEvent)]
    assert times == sorted(times)


@pytest.mark.parametrize("other_truck", ["T1", "T2"])
def test_equal_time_fixes_give_the_same_alerts_in_any_arrival_order(other_truck: str) -> None:
    """Found by the property above: two fixes at the same time (one truck, other speeds; or
    two trucks) once kept whichever arrived first, and the ETA followed arrival order."""
    pickup = Scan("S1-0", "S1", ScanType.PICKED_UP, T0, truck_id="T1", lat=SEA[0], lng=SEA[1],
                  promised_by=T0 + HOUR, dest_lat=PDX[0], dest_lng=PDX[1])
    fast = TruckFix("S1", "T1", T0, SEA[0], SEA[1], 30.0)
    slow = TruckFix("S1", other_truck, T0, SEA[0], SEA[1], 2.0)
    outcomes = []
    for order in ([pickup, fast, slow], [pickup, slow, fast], [slow, pickup, fast]):
        state: ShipmentState | None = None
        for e in order:
            state, _ = step(state, e, CFG)
        assert state is not None
        outcomes.append(advance(state, END, CFG)[1])
    assert outcomes[0] == outcomes[1] == outcomes[2]
    assert any(isinstance(o, AlertEvent) for o in outcomes[0])
