"""The shipment state machine (pure): patterns, resolves, escalation, late corrections."""

from __future__ import annotations

import pytest

from udfs.models import AlertEvent, ScanType
from udfs.shipment_state import (
    AT_RISK,
    ATTEMPTS,
    LATE,
    NO_SCAN,
    STUCK,
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

from .helpers import CFG, HOUR, MIN, PDX, SEA, T0, RedisModel, alerts, region_west, scan

pytestmark = pytest.mark.unit

P = T0 + 12 * HOUR  # promised_by of the default pickup


def feed(state: ShipmentState | None, events: list, cfg: DelayConfig = CFG
         ) -> tuple[ShipmentState, list[Output]]:
    out: list[Output] = []
    for e in events:
        state, o = step(state, e, cfg)
        out += o
    assert state is not None
    return state, out


def run(events: list, until: int, cfg: DelayConfig = CFG) -> tuple[ShipmentState, list[Output]]:
    state, out = feed(None, events, cfg)
    state, o = advance(state, until, cfg)
    return state, out + o


def test_late_triggers_after_promised_by_escalates_and_resolves_on_delivery() -> None:
    st, out = run([scan("S1", 1, ScanType.PICKED_UP, T0)], P + 10 * MIN)
    assert alerts(out) == [("trigger", LATE, P + 1, "info")]
    assert DelayScore("S1", 1) in out and RegionShipmentCounted("WEST", "S1") in out
    st, out = advance(st, P + 3 * HOUR, CFG)
    assert alerts(out) == [("trigger", LATE, P + 30 * MIN + 1, "warning"),
                           ("trigger", LATE, P + 2 * HOUR + 1, "error")]
    assert [o for o in out if isinstance(o, DelayScore)] == [DelayScore("S1", 2),
                                                              DelayScore("S1", 3)]
    late = [o for o in out if isinstance(o, AlertEvent)][-1]
    assert late.dedup_key == "shipment_late:S1" and late.group == "WEST"
    assert late.custom_details["delay_severity"] == 3
    assert late.to_dict()["payload"]["source"] == "fleetpulse/delay-job"
    st, out = step(st, scan("S1", 2, ScanType.DELIVERED, P + 3 * HOUR + 30 * MIN), CFG)[0], []
    st, out = advance(st, P + 4 * HOUR, CFG)
    assert alerts(out) == [("resolve", LATE, P + 3 * HOUR + 30 * MIN, "error")]
    assert DelayCleared("S1") in out and RegionDelayHours("WEST", "S1", 3.5) in out


def test_delivered_a_minute_early_raises_nothing() -> None:
    st, out = run([scan("S1", 1, ScanType.PICKED_UP, T0),
                   scan("S1", 2, ScanType.DELIVERED, P - MIN)], P + 30 * HOUR)
    assert alerts(out) == []
    assert out == [RegionShipmentCounted("WEST", "S1")]


def test_delivered_exactly_at_promised_by_is_on_time() -> None:
    _, out = run([scan("S1", 1, ScanType.PICKED_UP, T0),
                  scan("S1", 2, ScanType.DELIVERED, P)], P + HOUR)
    assert alerts(out) == []


def test_late_delivered_scan_corrects_a_wrong_late_alert() -> None:
    st, out = run([scan("S1", 1, ScanType.PICKED_UP, T0)], P + HOUR)
    assert alerts(out)[-1][:2] == ("trigger", LATE)
    counts = StepCounts()
    st, out = step(st, scan("S1", 2, ScanType.DELIVERED, P - 5 * MIN), CFG, counts)
    assert counts.late == 1
    assert alerts(out) == [("resolve", LATE, P - 5 * MIN, "warning")]
    assert DelayCleared("S1") in out
    assert not any(isinstance(o, RegionDelayHours) for o in out)  # on time: no hours
    assert st.open == {} and st.score == 0


def test_an_earlier_delivered_scan_replaces_the_hours_added() -> None:
    st, out = run([scan("S1", 1, ScanType.PICKED_UP, T0),
                   scan("S1", 2, ScanType.DELIVERED, P + 2 * HOUR)], P + 3 * HOUR)
    assert RegionDelayHours("WEST", "S1", 2.0) in out
    st, out = step(st, scan("S1", 3, ScanType.DELIVERED, P + HOUR), CFG)
    assert out == [RegionDelayHours("WEST", "S1", 1.0)]
    st, out = step(st, scan("S1", 4, ScanType.DELIVERED, P - HOUR), CFG)
    assert out == [RegionDelayHours("WEST", "S1", 0.0)]


def test_stuck_at_hub_and_resolve_on_departure() -> None:
    a = T0 + HOUR
    st, out = run([scan("S1", 1, ScanType.PICKED_UP, T0),
                   scan("S1", 2, ScanType.ARRIVED_HUB, a, hub_id="HUB-PDX")], a + 7 * HOUR)
    assert alerts(out) == [("trigger", STUCK, a + 6 * HOUR, "warning")]
    st, _ = step(st, scan("S1", 3, ScanType.DEPARTED_HUB, a + 8 * HOUR), CFG)
    st, out = advance(st, a + 8 * HOUR, CFG)
    assert alerts(out) == [("resolve", STUCK, a + 8 * HOUR, "warning")]


def test_departure_within_six_hours_is_not_stuck_and_out_for_delivery_counts() -> None:
    a = T0 + HOUR
    _, out = run([scan("S1", 1, ScanType.PICKED_UP, T0),
                  scan("S1", 2, ScanType.ARRIVED_HUB, a),
                  scan("S1", 3, ScanType.OUT_FOR_DELIVERY, a + 6 * HOUR - 1)], a + 10 * HOUR)
    assert STUCK not in {a[1] for a in alerts(out)}


def test_no_scan_for_a_day_and_resolve_on_next_scan() -> None:
    cfg = DelayConfig(region_of=region_west, stuck_after_s=10**9)
    st, out = run([scan("S1", 1, ScanType.PICKED_UP, T0, promised_by=T0 + 100 * HOUR)],
                  T0 + 25 * HOUR, cfg)
    assert alerts(out) == [("trigger", NO_SCAN, T0 + 24 * HOUR, "error")]
    st, _ = step(st, scan("S1", 2, ScanType.ARRIVED_HUB, T0 + 26 * HOUR), cfg)
    st, out = advance(st, T0 + 26 * HOUR, cfg)
    assert alerts(out) == [("resolve", NO_SCAN, T0 + 26 * HOUR, "error")]


def test_two_failed_attempts_within_48h_from_scans() -> None:
    f1, f2 = T0 + 2 * HOUR, T0 + 40 * HOUR
    cfg = DelayConfig(region_of=region_west, no_scan_after_s=10**9)
    st, out = run([scan("S1", 1, ScanType.PICKED_UP, T0, promised_by=T0 + 100 * HOUR),
                   scan("S1", 2, ScanType.DELIVERY_ATTEMPT_FAILED, f1),
                   scan("S1", 3, ScanType.DELIVERY_ATTEMPT_FAILED, f2)], f2 + HOUR, cfg)
    assert alerts(out) == [("trigger", ATTEMPTS, f2, "error")]
    st, _ = step(st, scan("S1", 4, ScanType.DELIVERED, f2 + 2 * HOUR), cfg)
    _, out = advance(st, f2 + 3 * HOUR, cfg)
    assert alerts(out) == [("resolve", ATTEMPTS, f2 + 2 * HOUR, "error")]


def test_failed_attempts_49h_apart_are_not_a_pattern() -> None:
    cfg = DelayConfig(region_of=region_west, no_scan_after_s=10**9)
    _, out = run([scan("S1", 1, ScanType.PICKED_UP, T0, promised_by=T0 + 100 * HOUR),
                  scan("S1", 2, ScanType.DELIVERY_ATTEMPT_FAILED, T0 + HOUR),
                  scan("S1", 3, ScanType.DELIVERY_ATTEMPT_FAILED, T0 + 50 * HOUR)],
                 T0 + 60 * HOUR, cfg)
    assert alerts(out) == []


def test_cep_matches_drive_the_attempts_trigger() -> None:
    cfg = DelayConfig(region_of=region_west, no_scan_after_s=10**9, attempts_from_scans=False)
    f1, f2 = T0 + 2 * HOUR, T0 + 3 * HOUR
    base = [scan("S1", 1, ScanType.PICKED_UP, T0, promised_by=T0 + 100 * HOUR),
            scan("S1", 2, ScanType.DELIVERY_ATTEMPT_FAILED, f1),
            scan("S1", 3, ScanType.DELIVERY_ATTEMPT_FAILED, f2)]
    st, out = run(base, f2 + HOUR, cfg)
    assert alerts(out) == []  # scans alone do not trigger in CEP mode
    st, out = step(st, AttemptsMatch("S1", f1, f2, 2), cfg)  # arrives behind: reconciled now
    assert alerts(out) == [("trigger", ATTEMPTS, f2, "error")]
    st, out = step(st, AttemptsMatch("S1", f1, f2, 2), cfg)
    assert out == []  # duplicate match


def test_cep_match_arriving_after_delivery_reports_incident_and_end_in_order() -> None:
    cfg = DelayConfig(region_of=region_west, no_scan_after_s=10**9, attempts_from_scans=False)
    f1, f2, d = T0 + 2 * HOUR, T0 + 3 * HOUR, T0 + 4 * HOUR
    st, _ = run([scan("S1", 1, ScanType.PICKED_UP, T0, promised_by=T0 + 100 * HOUR),
                 scan("S1", 2, ScanType.DELIVERY_ATTEMPT_FAILED, f1),
                 scan("S1", 3, ScanType.DELIVERY_ATTEMPT_FAILED, f2),
                 scan("S1", 4, ScanType.DELIVERED, d)], d + HOUR, cfg)
    st, out = step(st, AttemptsMatch("S1", f1, f2, 2), cfg)
    assert alerts(out) == [("trigger", ATTEMPTS, f2, "error"), ("resolve", ATTEMPTS, d, "error")]
    _, out = step(st, AttemptsMatch("S1", f1, f2 + 1, 2), cfg)
    assert out == []


def _fix(ts: int, lat: float, lng: float, kph: float, truck: str = "T1") -> TruckFix:
    return TruckFix("S1", truck, ts, lat, lng, kph)


def test_at_risk_warns_before_late_and_resolves_when_recovered() -> None:
    p = T0 + 3 * HOUR  # SEA -> PDX is ~235 km
    pick = scan("S1", 1, ScanType.PICKED_UP, T0, promised_by=p)
    st, out = run([pick, _fix(T0 + 10 * MIN, *SEA, 40.0)], T0 + 20 * MIN)
    assert alerts(out) == [("trigger", AT_RISK, T0 + 10 * MIN, "warning")]
    at_risk = [o for o in out if isinstance(o, AlertEvent)][0]
    assert at_risk.custom_details["avg_speed_kph"] == 40.0
    st, _ = step(st, _fix(T0 + 30 * MIN, *SEA, 100.0), CFG)
    st, out = advance(st, T0 + 40 * MIN, CFG)
    assert alerts(out) == [("resolve", AT_RISK, T0 + 30 * MIN, "warning")]


def test_at_risk_ignores_other_trucks_and_resolves_on_delivery() -> None:
    p = T0 + 3 * HOUR
    pick = scan("S1", 1, ScanType.PICKED_UP, T0, promised_by=p)
    _, out = run([pick, _fix(T0 + 10 * MIN, *SEA, 1.0, truck="T9")], T0 + 20 * MIN)
    assert alerts(out) == []
    st, out = run([pick, _fix(T0 + 10 * MIN, *SEA, 1.0)], T0 + 20 * MIN)
    assert alerts(out)[0][:2] == ("trigger", AT_RISK)
    st, _ = step(st, scan("S1", 2, ScanType.DELIVERED, T0 + 2 * HOUR, lat=PDX[0], lng=PDX[1]),
                 CFG)
    _, out = advance(st, T0 + 2 * HOUR, CFG)
    assert alerts(out) == [("resolve", AT_RISK, T0 + 2 * HOUR, "warning")]


def test_delivered_before_out_for_delivery_arrival_order() -> None:
    d = T0 + 5 * HOUR
    events = [scan("S1", 1, ScanType.PICKED_UP, T0), scan("S1", 3, ScanType.DELIVERED, d),
              scan("S1", 2, ScanType.OUT_FOR_DELIVERY, d - HOUR)]
    st, out = run(events, P + 10 * HOUR)
    assert alerts(out) == [] and st.open == {}


def test_duplicate_scan_id_changes_nothing() -> None:
    counts = StepCounts()
    st, _ = step(None, scan("S1", 1, ScanType.PICKED_UP, T0), CFG, counts)
    st, out = step(st, scan("S1", 1, ScanType.DELIVERED, T0 + HOUR), CFG, counts)
    assert out == [] and counts.duplicates == 1 and len(st.scans) == 1


def test_shipment_counted_once_and_moved_when_an_earlier_pickup_corrects_it() -> None:
    st, out = run([scan("S1", 1, ScanType.PICKED_UP, T0 + HOUR)], T0 + 2 * HOUR)
    assert out.count(RegionShipmentCounted("WEST", "S1")) == 1
    st, out = step(st, scan("S1", 0, ScanType.PICKED_UP, T0, lat=30.0, lng=-90.0), CFG)
    assert out == [RegionShipmentCounted("SOUTH", "S1")]


def test_next_deadline_walks_the_schedule() -> None:
    st, _ = step(None, scan("S1", 1, ScanType.PICKED_UP, T0), CFG)
    assert next_deadline(st, CFG) == T0  # the buffered scan
    st, _ = advance(st, T0, CFG)
    assert next_deadline(st, CFG) == P + 1
    st, _ = advance(st, P + 1, CFG)
    assert next_deadline(st, CFG) == P + 30 * MIN + 1


def test_state_is_finished_a_while_after_delivery() -> None:
    st, _ = run([scan("S1", 1, ScanType.PICKED_UP, T0),
                 scan("S1", 2, ScanType.DELIVERED, T0 + HOUR)], T0 + 2 * HOUR)
    assert not finished(st, CFG)
    due = next_deadline(st, CFG)
    assert due == T0 + HOUR + CFG.retain_after_delivery_s * 1000
    st, _ = advance(st, due, CFG)
    assert finished(st, CFG)


def test_redis_model_ends_consistent_with_state() -> None:
    model = RedisModel()
    st, out = run([scan("S1", 1, ScanType.PICKED_UP, T0)], P + 3 * HOUR)
    model.apply(out)
    assert model.delays == {"shipment:S1": 3}
    st, out = step(st, scan("S1", 2, ScanType.DELIVERED, P + 90 * MIN), CFG)
    model.apply(out)
    assert model.delays == {}
    assert model.region == {"WEST": {"total_shipments": 1, "total_delay_hours": 1.5}}
