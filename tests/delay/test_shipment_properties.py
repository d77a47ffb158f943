"""Property tests: the outcome depends only on the set of inputs, not on their arrival order,
duplicates or how the watermark was interleaved with them."""

from __future__ import annotations

import dataclasses
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.hostile_records import NOW, legal_ping_records, legal_scan_records, scan_records
from udfs.models import AlertEvent, Ping, Scan, ScanType
from udfs.ping_validation import parse_ping
from udfs.scan_validation import parse_scan
from udfs.shipment_state import (
    AT_RISK,
    MAX_DEADLINE_MS,
    MAX_DURATION_S,
    MIN_AT_RISK_SPEED_KPH,
    AttemptsMatch,
    DelayCleared,
    DelayConfig,
    DelayScore,
    Output,
    RegionDelayHours,
    RegionShipmentCounted,
    ShipmentState,
    StepCounts,
    TruckFix,
    advance,
    finished,
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
            kw = {
                "promised_by": T0 + draw(st.integers(1, 40)) * HOUR,
                "lat": SEA[0],
                "lng": draw(st.sampled_from([SEA[1], -90.0])),
                "dest_lat": PDX[0],
                "dest_lng": PDX[1],
            }
        kw["truck_id"] = draw(st.sampled_from([None, "T1", "T2"]))
        events.append(Scan(f"S1-{i}", "S1", typ, ts, **kw))  # type: ignore[arg-type]
    for _ in range(draw(st.integers(0, 2))):
        events.append(
            TruckFix(
                "S1",
                draw(st.sampled_from(["T1", "T2"])),
                T0 + draw(st.integers(0, 40)) * HOUR,
                SEA[0],
                SEA[1],
                draw(st.sampled_from([2.0, 30.0, 90.0])),
            )
        )
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
    regions = {
        r: {k: v for k, v in fields.items() if abs(v) > 1e-9} for r, fields in model.region.items()
    }
    return (
        dict(state.open),
        state.score,
        state.counted_region,
        state.delay_hours,
        model.delays,
        {r: f for r, f in regions.items() if f},
        sorted(s.scan_id for s in state.scans),
    )


@settings(max_examples=300, deadline=None)
@given(events=scenario(), data=st.data())
def test_any_arrival_order_with_duplicates_gives_identical_outputs(
    events: list[Scan | TruckFix], data: st.DataObject
) -> None:
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


def but_at_risk(result: tuple[object, ...]) -> tuple[object, ...]:
    """An :func:`outcome` less ``shipment_at_risk``: the one class that depends on the order of
    the inputs (its ``for`` and ``keep_firing_for``), so a late input cannot rewrite its
    history (udfs.shipment_state's docstring; tests/delay/test_at_risk.py)."""
    still_open, *rest = result
    assert isinstance(still_open, dict)
    return ({k: v for k, v in still_open.items() if k != AT_RISK}, *rest)


@settings(max_examples=300, deadline=None)
@given(events=scenario(), data=st.data())
def test_final_state_depends_only_on_the_set_even_with_late_inputs(
    events: list[Scan | TruckFix], data: st.DataObject
) -> None:
    """The watermark may pass inputs before they arrive (late): corrections converge, for
    every class but shipment_at_risk, whose triggers and resolves still alternate."""
    arrival = data.draw(
        st.permutations(events + data.draw(st.lists(st.sampled_from(events), max_size=2)))
    )
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
    assert but_at_risk(outcome(state, outputs)) == but_at_risk(outcome(ref_state, ref_out))
    assert next_deadline(state, CFG) == next_deadline(ref_state, CFG)
    at_risk = [
        o.event_action for o in outputs if isinstance(o, AlertEvent) and o.alert_class == AT_RISK
    ]
    assert at_risk == ["trigger", "resolve"] * (len(at_risk) // 2) + ["trigger"] * (
        len(at_risk) % 2
    )


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
    pickup = Scan(
        "S1-0",
        "S1",
        ScanType.PICKED_UP,
        T0,
        truck_id="T1",
        lat=SEA[0],
        lng=SEA[1],
        promised_by=T0 + HOUR,
        dest_lat=PDX[0],
        dest_lng=PDX[1],
    )
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


# Bounded state (issue 27).


@st.composite
def many_scans(draw: st.DrawFn) -> list[Scan]:
    """10 to 60 scans of one shipment in event-time order, more than a small cap holds: a few
    of any kind, then a flood of few kinds (so that the latest of a kind can be old)."""
    n = draw(st.integers(10, 60))
    times = sorted(T0 + draw(st.integers(0, 200)) * 15 * MIN for _ in range(n))
    head = draw(st.integers(0, 6))
    flood = draw(st.lists(st.sampled_from(TYPES), min_size=1, max_size=2, unique=True))
    located = draw(st.sampled_from([0.0, 0.5]))
    out = []
    for i, ts in enumerate(times):
        typ = draw(st.sampled_from(TYPES if i < head else flood))
        kw: dict[str, object] = {}
        if typ is ScanType.PICKED_UP:
            kw = {
                "promised_by": T0 + draw(st.integers(1, 40)) * HOUR,
                "lat": SEA[0],
                "lng": SEA[1],
                "dest_lat": PDX[0],
                "dest_lng": PDX[1],
            }
        elif draw(st.floats(0, 1)) < (0.5 if i < head else located):
            kw = {"lat": draw(st.sampled_from([SEA[0], PDX[0]])), "lng": -122.0}
        kw["truck_id"] = draw(st.sampled_from([None, "T1", "T2"]) if i < head else st.none())
        kw["hub_id"] = draw(st.sampled_from([None, "H1"]))
        out.append(Scan(f"S1-{i}", "S1", typ, ts, **kw))  # type: ignore[arg-type]
    return out


@settings(max_examples=150, deadline=None)
@given(scans=many_scans(), cap=st.integers(12, 20), data=st.data())
def test_the_scan_cap_changes_nothing_the_shipment_reports(
    scans: list[Scan], cap: int, data: st.DataObject
) -> None:
    """Input in event-time order (the watermark following it), with scans sent again: a state
    capped at ``cap`` scans (12 is one more than the most scans facts can rest on) emits
    exactly what an uncapped one does, though it forgets old scan_ids and takes them again."""
    capped = DelayConfig(region_of=CFG.region_of, max_scans_per_shipment=cap)
    arrivals: list[Scan] = []
    for i, s in enumerate(scans):
        arrivals.append(s)
        if i and data.draw(st.integers(0, 4)) == 0:
            arrivals.append(scans[data.draw(st.integers(0, i - 1))])
    results = []
    for cfg in (capped, CFG):
        state: ShipmentState | None = None
        outputs: list[Output] = []
        counts = StepCounts()
        for s in arrivals:
            state, out = step(state, s, cfg, counts)
            outputs += out
            state, out = advance(state, s.ts, cfg)
            outputs += out
            assert len(state.scans) <= cfg.max_scans_per_shipment
            assert state.scan_ids == {x.scan_id for x in state.scans}
        assert state is not None
        state, out = advance(state, END, cfg)
        outputs += out
        results.append((outputs, outcome(state, outputs)[:4], next_deadline(state, cfg)))
        if cfg is capped:  # (a scan sent again after its eviction may be dropped: it is old)
            assert counts.over_cap >= len(scans) - cap
    assert results[0] == results[1]


JAVA_LONG_MAX = 2**63 - 1
# The widest configuration DelayConfig accepts: deadlines as far out as they can be.
WIDEST = DelayConfig(
    region_of=CFG.region_of,
    stuck_after_s=MAX_DURATION_S,
    no_scan_after_s=MAX_DURATION_S,
    failed_attempts_within_s=MAX_DURATION_S,
    at_risk_margin_s=-MAX_DURATION_S,
    at_risk_resume_speed_kph=MIN_AT_RISK_SPEED_KPH,
    at_risk_hysteresis_s=MAX_DURATION_S,
    at_risk_for_s=MAX_DURATION_S,
    at_risk_keep_firing_for_s=MAX_DURATION_S,
    at_risk_min_speed_kph=MIN_AT_RISK_SPEED_KPH,
    at_risk_arrived_km=0.0,
    severity_bands_s=(1, 2, 3, MAX_DURATION_S),
    retain_after_delivery_s=MAX_DURATION_S,
    expire_after_promise_s=MAX_DURATION_S,
    max_scans_per_shipment=12,
)
CLOCKS = st.sampled_from([NOW, JAVA_LONG_MAX])


def _finite_json(v: object) -> bool:
    """Every number in ``v`` is one JSON, Redis and a Java long or double can hold."""
    if isinstance(v, bool) or v is None or isinstance(v, str):
        return True
    if isinstance(v, int):
        return -JAVA_LONG_MAX - 1 <= v <= JAVA_LONG_MAX
    if isinstance(v, float):
        return math.isfinite(v)
    if isinstance(v, dict):
        return all(_finite_json(x) for x in v.values())
    if isinstance(v, list | tuple):
        return all(_finite_json(x) for x in v)
    return False


def _check_outputs(outputs: list[Output]) -> None:
    for o in outputs:
        if isinstance(o, AlertEvent):
            assert type(o.event_ts) is int and 0 <= o.event_ts <= MAX_DEADLINE_MS
            assert _finite_json(o.custom_details), o.custom_details
            o.to_json()  # the ISO 8601 timestamp can be written
        elif isinstance(o, DelayScore):
            assert type(o.severity) is int and 1 <= o.severity <= 5  # a `delays` score
        elif isinstance(o, RegionDelayHours):
            assert type(o.hours) is float and math.isfinite(o.hours)  # HINCRBYFLOAT's
        else:
            assert isinstance(o, DelayCleared | RegionShipmentCounted)


def _check_state(state: ShipmentState, cfg: DelayConfig) -> None:
    due = next_deadline(state, cfg)
    assert due is None or (
        type(due) is int and state.processed_until < due <= MAX_DEADLINE_MS <= JAVA_LONG_MAX
    )
    assert len(state.scans) <= cfg.max_scans_per_shipment and len(state.matches) <= 1


@settings(max_examples=300, deadline=None)
@given(clock=CLOCKS, cfg=st.sampled_from([CFG, WIDEST]), data=st.data())
def test_accepted_hostile_scans_give_timers_and_scores_in_range(
    clock: int, cfg: DelayConfig, data: st.DataObject
) -> None:
    """Whatever the parsers accept (edges of every range, any clock) and whatever the
    configuration allows: every timer the adapter is given fits a Java long (and an ISO 8601
    timestamp), every `delays` score is a severity, every number in an alert is finite, and
    walking the timers always ends with the state dropped (no input keeps it for ever)."""
    records = data.draw(
        st.lists(st.one_of(legal_scan_records(clock), scan_records()), min_size=1, max_size=12)
    )
    pings = data.draw(st.lists(legal_ping_records(clock), max_size=3))
    inputs: list[Scan | TruckFix | AttemptsMatch] = []
    for raw in records:
        scan = parse_scan(raw, clock)
        if isinstance(scan, Scan):
            inputs.append(dataclasses.replace(scan, shipment_id="S1"))
    for raw in pings:
        p = parse_ping(raw, clock)
        if isinstance(p, Ping):
            inputs.append(TruckFix("S1", "T1", p.ts, p.lat, p.lng, p.speed_kph or 0.0))
    failed = sorted(
        x.ts for x in inputs if isinstance(x, Scan) and x.type is ScanType.DELIVERY_ATTEMPT_FAILED
    )
    if len(failed) >= 2:
        inputs.append(AttemptsMatch("S1", failed[0], failed[1], 2))
    if not inputs:
        return
    state: ShipmentState | None = None
    for e in data.draw(st.permutations(inputs)):
        state, out = step(state, e, cfg)
        _check_outputs(out)
        if data.draw(st.booleans()):
            state, out = advance(state, e.ts, cfg)
            _check_outputs(out)
        _check_state(state, cfg)
    assert state is not None
    for _ in range(100):  # the adapter's timer, fired at each deadline in turn
        due = next_deadline(state, cfg)
        if due is None:
            break
        state, out = advance(state, due, cfg)
        _check_outputs(out)
        _check_state(state, cfg)
    assert finished(state, cfg) and not state.open and state.score == 0
