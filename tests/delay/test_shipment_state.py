"""The shipment state machine (pure): patterns, resolves, escalation, late corrections."""

from __future__ import annotations

import base64
import math
import pickle

import pytest

from udfs.models import AlertEvent, Scan, ScanType, iso8601
from udfs.shipment_state import (
    AT_RISK,
    ATTEMPTS,
    LATE,
    MAX_DURATION_S,
    NO_SCAN,
    STUCK,
    AttemptsMatch,
    DelayCleared,
    DelayConfig,
    DelayConfigError,
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


def feed(
    state: ShipmentState | None, events: list, cfg: DelayConfig = CFG
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
    assert alerts(out) == [
        ("trigger", LATE, P + 30 * MIN + 1, "warning"),
        ("trigger", LATE, P + 2 * HOUR + 1, "error"),
    ]
    assert [o for o in out if isinstance(o, DelayScore)] == [
        DelayScore("S1", 2),
        DelayScore("S1", 3),
    ]
    late = [o for o in out if isinstance(o, AlertEvent)][-1]
    assert late.dedup_key == "shipment_late:S1" and late.group == "WEST"
    assert late.custom_details["delay_severity"] == 3
    assert late.to_dict()["payload"]["source"] == "fleetpulse/delay-job"
    st, out = step(st, scan("S1", 2, ScanType.DELIVERED, P + 3 * HOUR + 30 * MIN), CFG)[0], []
    st, out = advance(st, P + 4 * HOUR, CFG)
    assert alerts(out) == [("resolve", LATE, P + 3 * HOUR + 30 * MIN, "error")]
    assert DelayCleared("S1") in out and RegionDelayHours("WEST", "S1", 3.5) in out


def test_delivered_a_minute_early_raises_nothing() -> None:
    st, out = run(
        [scan("S1", 1, ScanType.PICKED_UP, T0), scan("S1", 2, ScanType.DELIVERED, P - MIN)],
        P + 30 * HOUR,
    )
    assert alerts(out) == []
    assert out == [RegionShipmentCounted("WEST", "S1")]


def test_delivered_exactly_at_promised_by_is_on_time() -> None:
    _, out = run(
        [scan("S1", 1, ScanType.PICKED_UP, T0), scan("S1", 2, ScanType.DELIVERED, P)], P + HOUR
    )
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
    st, out = run(
        [scan("S1", 1, ScanType.PICKED_UP, T0), scan("S1", 2, ScanType.DELIVERED, P + 2 * HOUR)],
        P + 3 * HOUR,
    )
    assert RegionDelayHours("WEST", "S1", 2.0) in out
    st, out = step(st, scan("S1", 3, ScanType.DELIVERED, P + HOUR), CFG)
    assert out == [RegionDelayHours("WEST", "S1", 1.0)]
    st, out = step(st, scan("S1", 4, ScanType.DELIVERED, P - HOUR), CFG)
    assert out == [RegionDelayHours("WEST", "S1", 0.0)]


def test_stuck_at_hub_and_resolve_on_departure() -> None:
    a = T0 + HOUR
    st, out = run(
        [
            scan("S1", 1, ScanType.PICKED_UP, T0),
            scan("S1", 2, ScanType.ARRIVED_HUB, a, hub_id="HUB-PDX"),
        ],
        a + 7 * HOUR,
    )
    assert alerts(out) == [("trigger", STUCK, a + 6 * HOUR, "warning")]
    st, _ = step(st, scan("S1", 3, ScanType.DEPARTED_HUB, a + 8 * HOUR), CFG)
    st, out = advance(st, a + 8 * HOUR, CFG)
    assert alerts(out) == [("resolve", STUCK, a + 8 * HOUR, "warning")]


def test_departure_within_six_hours_is_not_stuck_and_out_for_delivery_counts() -> None:
    a = T0 + HOUR
    _, out = run(
        [
            scan("S1", 1, ScanType.PICKED_UP, T0),
            scan("S1", 2, ScanType.ARRIVED_HUB, a),
            scan("S1", 3, ScanType.OUT_FOR_DELIVERY, a + 6 * HOUR - 1),
        ],
        a + 10 * HOUR,
    )
    assert STUCK not in {a[1] for a in alerts(out)}


def test_no_scan_for_a_day_and_resolve_on_next_scan() -> None:
    cfg = DelayConfig(region_of=region_west, stuck_after_s=10**9)
    st, out = run(
        [scan("S1", 1, ScanType.PICKED_UP, T0, promised_by=T0 + 100 * HOUR)], T0 + 25 * HOUR, cfg
    )
    assert alerts(out) == [("trigger", NO_SCAN, T0 + 24 * HOUR, "error")]
    st, _ = step(st, scan("S1", 2, ScanType.ARRIVED_HUB, T0 + 26 * HOUR), cfg)
    st, out = advance(st, T0 + 26 * HOUR, cfg)
    assert alerts(out) == [("resolve", NO_SCAN, T0 + 26 * HOUR, "error")]


def test_two_failed_attempts_within_48h_from_scans() -> None:
    f1, f2 = T0 + 2 * HOUR, T0 + 40 * HOUR
    cfg = DelayConfig(region_of=region_west, no_scan_after_s=10**9)
    st, out = run(
        [
            scan("S1", 1, ScanType.PICKED_UP, T0, promised_by=T0 + 100 * HOUR),
            scan("S1", 2, ScanType.DELIVERY_ATTEMPT_FAILED, f1),
            scan("S1", 3, ScanType.DELIVERY_ATTEMPT_FAILED, f2),
        ],
        f2 + HOUR,
        cfg,
    )
    assert alerts(out) == [("trigger", ATTEMPTS, f2, "error")]
    st, _ = step(st, scan("S1", 4, ScanType.DELIVERED, f2 + 2 * HOUR), cfg)
    _, out = advance(st, f2 + 3 * HOUR, cfg)
    assert alerts(out) == [("resolve", ATTEMPTS, f2 + 2 * HOUR, "error")]


def test_failed_attempts_49h_apart_are_not_a_pattern() -> None:
    cfg = DelayConfig(region_of=region_west, no_scan_after_s=10**9)
    _, out = run(
        [
            scan("S1", 1, ScanType.PICKED_UP, T0, promised_by=T0 + 100 * HOUR),
            scan("S1", 2, ScanType.DELIVERY_ATTEMPT_FAILED, T0 + HOUR),
            scan("S1", 3, ScanType.DELIVERY_ATTEMPT_FAILED, T0 + 50 * HOUR),
        ],
        T0 + 60 * HOUR,
        cfg,
    )
    assert alerts(out) == []


def test_cep_matches_drive_the_attempts_trigger() -> None:
    cfg = DelayConfig(region_of=region_west, no_scan_after_s=10**9, attempts_from_scans=False)
    f1, f2 = T0 + 2 * HOUR, T0 + 3 * HOUR
    base = [
        scan("S1", 1, ScanType.PICKED_UP, T0, promised_by=T0 + 100 * HOUR),
        scan("S1", 2, ScanType.DELIVERY_ATTEMPT_FAILED, f1),
        scan("S1", 3, ScanType.DELIVERY_ATTEMPT_FAILED, f2),
    ]
    st, out = run(base, f2 + HOUR, cfg)
    assert alerts(out) == []  # scans alone do not trigger in CEP mode
    st, out = step(st, AttemptsMatch("S1", f1, f2, 2), cfg)  # arrives behind: reconciled now
    assert alerts(out) == [("trigger", ATTEMPTS, f2, "error")]
    st, out = step(st, AttemptsMatch("S1", f1, f2, 2), cfg)
    assert out == []  # duplicate match


def test_cep_match_arriving_after_delivery_reports_incident_and_end_in_order() -> None:
    cfg = DelayConfig(region_of=region_west, no_scan_after_s=10**9, attempts_from_scans=False)
    f1, f2, d = T0 + 2 * HOUR, T0 + 3 * HOUR, T0 + 4 * HOUR
    st, _ = run(
        [
            scan("S1", 1, ScanType.PICKED_UP, T0, promised_by=T0 + 100 * HOUR),
            scan("S1", 2, ScanType.DELIVERY_ATTEMPT_FAILED, f1),
            scan("S1", 3, ScanType.DELIVERY_ATTEMPT_FAILED, f2),
            scan("S1", 4, ScanType.DELIVERED, d),
        ],
        d + HOUR,
        cfg,
    )
    st, out = step(st, AttemptsMatch("S1", f1, f2, 2), cfg)
    assert alerts(out) == [("trigger", ATTEMPTS, f2, "error"), ("resolve", ATTEMPTS, d, "error")]
    _, out = step(st, AttemptsMatch("S1", f1, f2 + 1, 2), cfg)
    assert out == []


def _fix(ts: int, lat: float, lng: float, kph: float, truck: str = "T1") -> TruckFix:
    return TruckFix("S1", truck, ts, lat, lng, kph)


def test_at_risk_warns_before_late_and_resolves_when_recovered() -> None:
    """Past the promise for ``at_risk_for_s`` (30 min): warning; back on schedule for
    ``at_risk_keep_firing_for_s`` (30 min): resolved (tests/delay/test_at_risk.py: flapping)."""
    p = T0 + 3 * HOUR  # SEA -> PDX is ~234 km
    pick = scan("S1", 1, ScanType.PICKED_UP, T0, promised_by=p)
    st, out = run([pick, _fix(T0 + 10 * MIN, *SEA, 40.0)], T0 + 39 * MIN)
    assert alerts(out) == []
    st, out = advance(st, T0 + 40 * MIN, CFG)
    assert alerts(out) == [("trigger", AT_RISK, T0 + 40 * MIN, "warning")]
    at_risk = [o for o in out if isinstance(o, AlertEvent)][0]
    assert at_risk.custom_details["avg_speed_kph"] == 40.0
    eta = at_risk.custom_details["eta_ts"]  # 234 km at 40 km/h from the fix
    assert isinstance(eta, int) and abs(eta - (T0 + 10 * MIN + 234 * HOUR // 40)) < MIN
    assert f"arrives {iso8601(eta)} at 40 km/h" in at_risk.summary
    st, _ = step(st, _fix(T0 + 50 * MIN, *SEA, 150.0), CFG)  # ETA ~T0 + 2h24m
    st, out = advance(st, T0 + 79 * MIN, CFG)
    assert alerts(out) == []
    st, out = advance(st, T0 + 80 * MIN, CFG)
    assert alerts(out) == [("resolve", AT_RISK, T0 + 80 * MIN, "warning")]


def test_at_risk_ignores_other_trucks_and_resolves_on_delivery() -> None:
    p = T0 + 3 * HOUR
    pick = scan("S1", 1, ScanType.PICKED_UP, T0, promised_by=p)
    _, out = run([pick, _fix(T0 + 10 * MIN, *SEA, 1.0, truck="T9")], T0 + 40 * MIN)
    assert alerts(out) == []
    st, out = run([pick, _fix(T0 + 10 * MIN, *SEA, 1.0)], T0 + 40 * MIN)
    assert alerts(out)[0][:2] == ("trigger", AT_RISK)
    st, _ = step(st, scan("S1", 2, ScanType.DELIVERED, T0 + 2 * HOUR, lat=PDX[0], lng=PDX[1]), CFG)
    _, out = advance(st, T0 + 2 * HOUR, CFG)
    assert alerts(out) == [("resolve", AT_RISK, T0 + 2 * HOUR, "warning")]


def test_delivered_before_out_for_delivery_arrival_order() -> None:
    d = T0 + 5 * HOUR
    events = [
        scan("S1", 1, ScanType.PICKED_UP, T0),
        scan("S1", 3, ScanType.DELIVERED, d),
        scan("S1", 2, ScanType.OUT_FOR_DELIVERY, d - HOUR),
    ]
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
    st, _ = run(
        [scan("S1", 1, ScanType.PICKED_UP, T0), scan("S1", 2, ScanType.DELIVERED, T0 + HOUR)],
        T0 + 2 * HOUR,
    )
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


# Bounded state (issue 27): expiry of shipments never delivered, the scan cap, old pickles.

D = CFG.expire_after_promise_s * 1000


def test_an_undelivered_shipment_expires_after_its_promise_resolving_what_is_open() -> None:
    """Late (severity 5) and silent for 30 days: at promise + 30 days the state resolves its
    incidents, leaves `delays`, and the adapter may drop it; the region keeps its count."""
    model = RedisModel()
    st, out = run([scan("S1", 1, ScanType.PICKED_UP, T0)], P + D - 1)
    model.apply(out)
    assert model.delays == {"shipment:S1": 5} and set(st.open) == {LATE, NO_SCAN}
    assert not finished(st, CFG)
    assert next_deadline(st, CFG) == P + D  # the timer the adapter sets
    st, out = advance(st, P + D, CFG)
    model.apply(out)
    assert sorted(alerts(out)) == [
        ("resolve", LATE, P + D, "critical"),
        ("resolve", NO_SCAN, P + D, "error"),
    ]
    resolve = next(o for o in out if isinstance(o, AlertEvent))
    assert "no longer tracked" in resolve.summary
    assert resolve.custom_details["reason"] == "expired"  # as a truck's state's expiry says
    assert DelayCleared("S1") in out and model.delays == {}
    assert model.region == {"WEST": {"total_shipments": 1}}
    assert st.open == {} and st.scans == [] and st.scan_ids == set()
    assert finished(st, CFG) and next_deadline(st, CFG) is None


def test_the_end_of_a_bounded_input_expires_nothing() -> None:
    """There the adapter walks every deadline (the watermark is at the end of time), with
    expire=False: the end of a backfill is not 30 days of silence."""
    st, _ = run([scan("S1", 1, ScanType.PICKED_UP, T0)], P + HOUR)
    out: list[Output] = []
    while (due := next_deadline(st, CFG, expire=False)) is not None:
        st, more = advance(st, due, CFG, expire=False)
        out += more
    assert [a[0] for a in alerts(out)] == ["trigger"] * 4  # severities 3-5, no scan
    assert set(st.open) == {LATE, NO_SCAN} and st.score == 5 and not finished(st, CFG)
    st, out = advance(st, P + D + 1, CFG, expire=False)
    assert out == [] and st.open


def test_a_shipment_still_scanned_after_its_promise_expires_after_its_last_scan() -> None:
    last = P + 10 * 24 * HOUR
    st, _ = run(
        [scan("S1", 1, ScanType.PICKED_UP, T0), scan("S1", 2, ScanType.EXCEPTION, last)], P + D
    )
    assert LATE in st.open and not finished(st, CFG)
    st, out = advance(st, last + D, CFG)
    assert ("resolve", LATE, last + D, "critical") in alerts(out)
    assert finished(st, CFG)


def test_a_shipment_without_promise_expires_after_its_last_scan() -> None:
    """Scans without a pickup (lost, or refused) still raise no-scan and stuck alerts; the
    state expires the same duration after its latest scan."""
    a = T0 + HOUR
    st, out = run([scan("S1", 1, ScanType.ARRIVED_HUB, a, hub_id="HUB-PDX")], a + D - 1)
    assert {x[:2] for x in alerts(out)} == {("trigger", STUCK), ("trigger", NO_SCAN)}
    assert next_deadline(st, CFG) == a + D
    st, out = advance(st, a + D, CFG)
    assert sorted(x[:2] for x in alerts(out)) == [("resolve", NO_SCAN), ("resolve", STUCK)]
    assert finished(st, CFG)


def test_a_scan_after_the_expiry_meets_a_fresh_state_whenever_it_arrives() -> None:
    """Read ahead of the watermark (a replay), the later scan waits in the state through its
    expiry and then stands alone in it, as it would have had it arrived after the drop."""
    later = scan("S1", 2, ScanType.ARRIVED_HUB, P + D + HOUR, hub_id="HUB-PDX")
    st, _ = feed(None, [scan("S1", 1, ScanType.PICKED_UP, T0), later])
    st, out = advance(st, P + D + 2 * HOUR, CFG)
    assert ("resolve", LATE, P + D, "critical") in alerts(out)
    assert st.scans == [later] and st.counted_region is None and not finished(st, CFG)
    fresh, _ = run([later], P + D + 2 * HOUR)
    st, rest = advance(st, P + D + 40 * HOUR, CFG)
    fresh, fresh_rest = advance(fresh, P + D + 40 * HOUR, CFG)
    assert rest == fresh_rest and alerts(rest)  # stuck and no-scan, as for a fresh state
    assert (st.open, st.score) == (fresh.open, fresh.score)


def test_a_state_of_truck_fixes_only_is_dropped_once_they_take_effect() -> None:
    """The truck feed keeps sending fixes to a shipment until it is delivered, also after its
    state expired: such a state reports nothing and must not live on."""
    st, _ = step(None, TruckFix("S1", "T1", P + D + HOUR, *SEA, 50.0), CFG)
    assert not finished(st, CFG) and next_deadline(st, CFG) == P + D + HOUR
    st, out = advance(st, P + D + HOUR, CFG)
    assert out == [] and finished(st, CFG)


def test_state_pickled_past_its_expiry_expires_at_the_next_timer() -> None:
    """State from before expiry existed may already be past it: the next millisecond."""
    st, _ = run([scan("S1", 1, ScanType.PICKED_UP, T0)], P + HOUR)
    st.processed_until = P + D + 5  # as an older version would have left it
    assert next_deadline(st, CFG) == P + D + 6
    st, out = advance(st, P + D + 6, CFG)
    assert ("resolve", LATE, P + D + 6, "warning") in alerts(out) and finished(st, CFG)


def test_delivered_state_is_not_dropped_while_a_later_input_waits() -> None:
    st, _ = run(
        [scan("S1", 1, ScanType.PICKED_UP, T0), scan("S1", 2, ScanType.DELIVERED, T0 + HOUR)],
        T0 + 2 * HOUR,
    )
    retained = T0 + HOUR + CFG.retain_after_delivery_s * 1000
    st, _ = step(st, scan("S1", 3, ScanType.EXCEPTION, retained + HOUR), CFG)
    st, _ = advance(st, retained, CFG)
    assert not finished(st, CFG)
    st, _ = advance(st, retained + HOUR, CFG)
    assert finished(st, CFG)


def _capped(n: int) -> DelayConfig:
    return DelayConfig(region_of=region_west, max_scans_per_shipment=n)


def test_a_flood_of_scans_keeps_the_cap_and_what_the_shipment_reports() -> None:
    """Distinct scan_ids without end: the state keeps at most the cap, evicting old scans no
    fact rests on; the pickup (promise, region) and the newest scans stay, so a delivery at
    the end still resolves the late alert and adds its hours."""
    cap = _capped(20)
    counts = StepCounts()
    st, out = step(None, scan("S1", 0, ScanType.PICKED_UP, T0), cap, counts)
    st, more = advance(st, T0, cap)
    out += more
    for i in range(1, 200):
        ts = T0 + i * 5 * MIN
        st, more = step(
            st, scan("S1", i, ScanType.EXCEPTION, ts, lat=45.0, lng=-122.0), cap, counts
        )
        out += more
        st, more = advance(st, ts, cap)
        out += more
        assert len(st.scans) <= 20 and st.scan_ids == {s.scan_id for s in st.scans}
    assert counts.over_cap == 180 and counts.over_cap_dropped == 0
    ref, ref_out = run(
        [
            scan("S1", i, ScanType.EXCEPTION, T0 + i * 5 * MIN, lat=45.0, lng=-122.0)
            for i in range(1, 200)
        ]
        + [scan("S1", 0, ScanType.PICKED_UP, T0)],
        T0 + 199 * 5 * MIN,
    )
    assert (st.open, st.score, st.counted_region) == (ref.open, ref.score, ref.counted_region)
    assert alerts(out) == alerts(ref_out)
    assert "S1-0" in st.scan_ids  # the pickup
    st, out = step(st, scan("S1", 999, ScanType.DELIVERED, P + HOUR), cap, counts)  # late
    assert ("resolve", LATE, P + HOUR, "error") in alerts(out)
    assert RegionDelayHours("WEST", "S1", 1.0) in out and DelayCleared("S1") in out


def test_a_scan_over_the_cap_is_dropped_when_nothing_can_make_room() -> None:
    """All held scans still ahead of the processed time: the newcomer itself goes."""
    cap = _capped(3)
    counts = StepCounts()
    st: ShipmentState | None = None
    for i in range(4):
        st, out = step(st, scan("S1", i, ScanType.ARRIVED_HUB, T0 + i * HOUR), cap, counts)
        assert out == []
    assert st is not None
    assert [s.scan_id for s in st.scans] == ["S1-0", "S1-1", "S1-2"]
    assert (counts.over_cap, counts.over_cap_dropped, counts.duplicates) == (1, 1, 0)
    st, _ = step(st, scan("S1", 3, ScanType.ARRIVED_HUB, T0 + 3 * HOUR), cap, counts)
    assert counts.over_cap_dropped == 2  # dropped again: an id not held is not a duplicate


def test_a_duplicate_is_found_among_many_scans() -> None:
    counts = StepCounts()
    st, _ = feed(None, [scan("S1", i, ScanType.EXCEPTION, T0 + i) for i in range(500)])
    st, out = step(st, scan("S1", 250, ScanType.DELIVERED, T0), CFG, counts)
    assert out == [] and counts.duplicates == 1 and len(st.scans) == 500


def test_only_the_earliest_match_is_kept() -> None:
    """Facts take the earliest-ending match: a flood of later matches costs no state."""
    counts = StepCounts()
    st: ShipmentState | None = None
    for i in range(50, 0, -1):
        st, _ = step(st, AttemptsMatch("S1", T0, T0 + i * HOUR, 2), CFG, counts)
    assert st is not None and st.matches == [AttemptsMatch("S1", T0, T0 + HOUR, 2)]
    st, _ = step(st, AttemptsMatch("S1", T0, T0 + HOUR, 2), CFG, counts)
    assert counts.duplicates == 1 and len(st.matches) == 1


# ShipmentState as an older version pickled it into Flink state, box and all: [state,
# event-time timer, processing-time timer, event time then, wall clock then]. Taken from the
# commit before scan_ids existed (f75e9f9): pickup at T0, arrival at a hub, one failed
# attempt, a truck fix, processed to T0 + 14 h (late, stuck).
OLD_BOX = base64.b64decode(
    "gASVRgIAAAAAAABdlCiME3VkZnMuc2hpcG1lbnRfc3RhdGWUjA1TaGlwbWVudFN0YXRllJOUKYGUTn2UKIwLc2hp"
    "cG1lbnRfaWSUjAJTMZSMBXNjYW5zlF2UKIwLdWRmcy5tb2RlbHOUjARTY2FulJOUKIwEUzEtMZRoB2gKjAhTY2Fu"
    "VHlwZZSTlIwJUElDS0VEX1VQlIWUUpSKBgDol7aaAYwCVDGUTkdAR84UeuFHrkfAXpUeuFHrhYoGABYruZoBR0BG"
    "wo9cKPXDR8Beq4UeuFHsdJRSlGgMKIwEUzEtMpRoB2gPjAtBUlJJVkVEX0hVQpSFlFKUigaA1s62mgFOjAdIVUIt"
    "UERYlE5OTk5OdJRSlGgMKIwEUzEtM5RoB2gPjBdERUxJVkVSWV9BVFRFTVBUX0ZBSUxFRJSFlFKUigYAxQW3mgFO"
    "Tk5OTk5OdJRSlGWMBWZpeGVzlF2UaAGMCFRydWNrRml4lJOUKYGUXZQoaAdoE4oGwE3qtpoBR0BHgAAAAAAAR8Be"
    "oAAAAAAAR0BOAAAAAAAAZWJhjAdtYXRjaGVzlF2UjA9wcm9jZXNzZWRfdW50aWyUigYA85i5mgGMBG9wZW6UfZQo"
    "jBVzaGlwbWVudF9zdHVja19hdF9odWKUSwCMDXNoaXBtZW50X2xhdGWUSwJ1jAVzY29yZZRLAowOY291bnRlZF9y"
    "ZWdpb26UjARXRVNUlIwLZGVsYXlfaG91cnOUTowQYXR0ZW1wdHNfYWxlcnRlZJSJdYaUYooGAfOYuZoBTk5OZS4="
)


def _old_box_inputs() -> list[Scan | TruckFix]:
    return [
        scan("S1", 1, ScanType.PICKED_UP, T0),
        scan("S1", 2, ScanType.ARRIVED_HUB, T0 + HOUR, hub_id="HUB-PDX"),
        scan("S1", 3, ScanType.DELIVERY_ATTEMPT_FAILED, T0 + 2 * HOUR),
        TruckFix("S1", "T1", T0 + 90 * MIN, 47.0, -122.5, 60.0),
    ]


def test_state_pickled_by_the_previous_version_restores() -> None:
    """Checkpoints and savepoints taken before scan_ids existed restore: the missing field is
    rebuilt from the scans, and the state equals what this version builds from the inputs."""
    box = pickle.loads(OLD_BOX)
    old = box[0]
    assert box[1:] == [T0 + 14 * HOUR + 1, None, None, None]
    assert old.scan_ids == {"S1-1", "S1-2", "S1-3"}
    rebuilt, _ = run(_old_box_inputs(), T0 + 14 * HOUR)
    assert old == rebuilt
    counts = StepCounts()
    old, out = step(old, scan("S1", 2, ScanType.DEPARTED_HUB, T0 + 15 * HOUR), CFG, counts)
    assert out == [] and counts.duplicates == 1
    old, out = advance(old, P + D, CFG)  # and it expires like any other
    assert finished(old, CFG) and DelayCleared("S1") in out


def test_state_pickles_round_trip_and_the_previous_version_reads_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """scan_ids is not pickled: the previous version (no __setstate__, no scan_ids slot) reads
    this one's state, so a job can be rolled back onto its checkpoints."""
    st, _ = run(_old_box_inputs(), T0 + 14 * HOUR)
    data = pickle.dumps([st, 1, None, None, None])
    again = pickle.loads(data)[0]
    assert again == st and again.scan_ids == {"S1-1", "S1-2", "S1-3"}
    monkeypatch.delattr(ShipmentState, "__setstate__")
    previous = pickle.loads(data)[0]
    assert all(
        getattr(previous, name) == getattr(st, name)
        for name in (
            "shipment_id",
            "scans",
            "fixes",
            "matches",
            "processed_until",
            "open",
            "score",
            "counted_region",
            "delay_hours",
            "attempts_alerted",
        )
    )
    assert not hasattr(previous, "scan_ids")


@pytest.mark.parametrize(
    "bad",
    [
        {"expire_after_promise_s": -1},
        {"expire_after_promise_s": MAX_DURATION_S + 1},
        {"stuck_after_s": 10**30},
        {"severity_bands_s": ()},
        {"severity_bands_s": (60, 60)},
        {"severity_bands_s": (0, 60)},
        {"max_scans_per_shipment": 0},
        {"at_risk_min_speed_kph": 0.0},
        {"at_risk_min_speed_kph": math.nan},
        {"at_risk_arrived_km": math.inf},
        {"at_risk_margin_s": -MAX_DURATION_S - 1},
        {"at_risk_resume_speed_kph": 0.0},
        {"at_risk_hysteresis_s": -1},
        {"at_risk_for_s": MAX_DURATION_S + 1},
        {"at_risk_keep_firing_for_s": -1},
    ],
)
def test_a_config_that_would_put_a_deadline_out_of_range_is_refused(bad: dict) -> None:
    with pytest.raises(DelayConfigError):
        DelayConfig(region_of=region_west, **bad)


def test_a_pending_at_risk_change_is_checkpointed_and_the_previous_version_ignores_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``at_risk_since`` (issue 29) is pickled, so a restored job triggers the warning at the
    same event time; the previous version's __setstate__, which knows only its own fields,
    loads the pickle without it (a rollback onto these checkpoints)."""
    import udfs.shipment_state as shipment_state

    pick = scan("S1", 1, ScanType.PICKED_UP, T0, promised_by=T0 + 3 * HOUR)
    st, out = run([pick, _fix(T0 + 10 * MIN, *SEA, 1.0)], T0 + 15 * MIN)
    assert alerts(out) == [] and st.at_risk_since == T0 + 10 * MIN
    data = pickle.dumps([st, next_deadline(st, CFG), None, None, None])
    restored, timer = pickle.loads(data)[:2]
    assert restored == st and timer == T0 + 40 * MIN
    _, out = advance(restored, timer, CFG)
    assert alerts(out) == [("trigger", AT_RISK, T0 + 40 * MIN, "warning")]
    previous_fields = tuple(
        (name, default)
        for name, default in shipment_state._PICKLED_DEFAULTS
        if name != "at_risk_since"
    )
    monkeypatch.setattr(shipment_state, "_PICKLED_DEFAULTS", previous_fields)
    previous = pickle.loads(data)[0]
    assert all(getattr(previous, name) == getattr(st, name) for name, _ in previous_fields)
