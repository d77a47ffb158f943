"""The truck state machine: newest position wins, duplicates, jumps, motion, alerts, geofences."""

from __future__ import annotations

import copy
import random
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from udfs.models import AlertEvent, GeofenceTransition, Ping
from udfs.truck_state import (
    CensusDelta,
    Counters,
    PositionWrite,
    SpeedRejection,
    TrackingConfig,
    TruckState,
    advance,
    catch_up,
    expire,
    next_wakeup,
    on_ping,
    open_alerts,
)

pytestmark = pytest.mark.unit
CFG = TrackingConfig()
T0 = 1_764_000_000_000
MIN = 60_000


def region(_lat: float, _lng: float) -> str:
    return "WEST"


def no_fences(_lat: float, _lng: float) -> list[str]:
    return []


def hub_fence(lat: float, lng: float) -> list[str]:
    return ["HUB-A"] if 40.0 <= lat <= 40.01 and -100.0 <= lng <= -99.99 else []


class Truck:
    """Drives the pure functions the way the Flink adapter does."""

    def __init__(self, fences=no_fences) -> None:  # type: ignore[no-untyped-def]
        self.state = TruckState("T1")
        self.counters = Counters()
        self.out: list[object] = []
        self.fences = fences

    def ping(
        self, ts: int, lat: float = 40.0, lng: float = -100.0, speed: float | None = 60.0
    ) -> list[object]:
        res = on_ping(self.state, Ping("T1", ts, lat, lng, speed), CFG, region, self.counters)
        self.out += res
        return list(res)

    def advance(self, now: int) -> list[object]:
        res = advance(self.state, now, CFG, self.fences)
        self.out += res
        return list(res)

    def alerts(self) -> list[tuple[str, str, int]]:
        return [
            (a.alert_class, a.event_action, a.event_ts)
            for a in self.out
            if isinstance(a, AlertEvent)
        ]


def test_newest_ping_wins_and_out_of_order_does_not_move_back() -> None:
    t = Truck()
    t.ping(T0 + 10_000, lat=40.0010)
    out = t.ping(T0 + 5_000, lat=40.0005)
    assert not any(isinstance(o, PositionWrite) for o in out)
    assert (t.state.pos_ts, t.state.lat) == (T0 + 10_000, 40.0010)
    assert t.counters.out_of_order == 1


def test_exact_duplicate_is_dropped_and_counted() -> None:
    t = Truck()
    t.ping(T0, lat=40.0)
    assert t.ping(T0, lat=40.0) == []
    assert t.counters.duplicates == 1
    assert t.counters.accepted == 1


def test_impossible_jump_is_rejected_against_last_accepted_fix() -> None:
    t = Truck()
    t.ping(T0, lat=40.0)
    out = t.ping(T0 + 60_000, lat=45.0)  # ~556 km in a minute
    assert len(out) == 1 and isinstance(out[0], SpeedRejection)
    assert "km/h" in out[0].detail
    assert t.state.lat == 40.0
    ok = t.ping(T0 + 120_000, lat=40.02)  # 2.2 km in 2 min from the accepted fix: fine
    assert any(isinstance(o, PositionWrite) for o in ok)


def test_repeated_disagreement_reanchors_on_the_new_position() -> None:
    t = Truck()
    t.ping(T0, lat=30.0)  # a bad first fix
    for i in range(1, CFG.reanchor_after_rejections):
        assert isinstance(t.ping(T0 + i * 5000, lat=40.0 + i * 1e-4)[0], SpeedRejection)
    out = t.ping(T0 + 60_000, lat=40.001)
    assert any(isinstance(o, PositionWrite) for o in out)


def test_stopped_after_two_minutes_slow_then_moving() -> None:
    t = Truck()
    for i in range(0, 13):  # 0..120 s, slow
        t.ping(T0 + i * 10_000, speed=1.0)
    t.advance(T0 + 110_000)
    assert t.state.status == "MOVING"
    t.advance(T0 + 120_000)
    assert t.state.status == "STOPPED"
    t.ping(T0 + 130_000, speed=50.0)
    t.advance(T0 + 130_000)
    assert t.state.status == "MOVING"


def test_offline_after_ten_minutes_and_resolved_when_pings_resume() -> None:
    t = Truck()
    t.ping(T0)
    t.advance(T0 + 9 * MIN)
    assert t.alerts() == []
    assert next_wakeup(t.state, CFG) == T0 + 10 * MIN
    t.advance(T0 + 10 * MIN)
    assert t.alerts() == [("truck_offline", "trigger", T0 + 10 * MIN)]
    assert t.state.status == "OFFLINE"
    t.ping(T0 + 15 * MIN)
    t.advance(T0 + 15 * MIN)
    assert t.alerts()[-1] == ("truck_offline", "resolve", T0 + 15 * MIN)
    assert t.state.status == "MOVING"


def test_unplanned_stop_outside_hubs_triggers_after_30_min_and_resolves_on_move() -> None:
    t = Truck()
    for i in range(0, 40):
        t.ping(T0 + i * 60_000, lat=41.0, speed=0.0)  # a ping a minute, stopped
        t.advance(T0 + i * 60_000)
    assert ("truck_stopped_unplanned", "trigger", T0 + 30 * MIN) in t.alerts()
    t.ping(T0 + 41 * MIN, lat=41.01, speed=50.0)
    t.advance(T0 + 41 * MIN)
    assert t.alerts()[-1] == ("truck_stopped_unplanned", "resolve", T0 + 41 * MIN)


def test_stop_inside_a_hub_is_planned() -> None:
    t = Truck(fences=hub_fence)
    for i in range(0, 40):
        t.ping(T0 + i * 60_000, lat=40.005, lng=-99.995, speed=0.0)
        t.advance(T0 + i * 60_000)
    assert [a for a in t.alerts() if a[0] == "truck_stopped_unplanned"] == []
    assert next_wakeup(t.state, CFG) == t.state.det_ts + CFG.offline_after_s * 1000


def test_geofence_enter_and_exit_are_debounced() -> None:
    t = Truck(fences=hub_fence)
    path = [
        (40.02, -99.995),
        (40.005, -99.995),
        (40.02, -99.995),  # one fix inside: nothing
        (40.005, -99.995),
        (40.006, -99.995),  # two inside: enter
        (40.02, -99.995),
        (40.005, -99.995),  # one outside: nothing
        (40.03, -99.995),
        (40.04, -99.995),
    ]  # two outside: exit
    for i, (lat, lng) in enumerate(path):
        t.ping(T0 + i * MIN, lat=lat, lng=lng, speed=20.0)
    t.advance(T0 + len(path) * MIN)
    transitions = [(g.transition, g.ts) for g in t.out if isinstance(g, GeofenceTransition)]
    assert transitions == [("enter", T0 + 4 * MIN), ("exit", T0 + 8 * MIN)]


def test_census_deltas_follow_status_changes() -> None:
    t = Truck()
    t.ping(T0)
    t.advance(T0 + 10 * MIN)
    deltas = [(c.region, c.status, c.delta) for c in t.out if isinstance(c, CensusDelta)]
    assert deltas == [("WEST", "MOVING", 1), ("WEST", "MOVING", -1), ("WEST", "OFFLINE", 1)]


def run(pings: list[Ping], chunk: int, seed: int) -> tuple[TruckState, list[object]]:
    """Arrival in the given order; the watermark trails the max seen ts by 10 s."""
    state, counters = TruckState("T1"), Counters()
    out: list[object] = []
    max_ts = 0
    for i, p in enumerate(pings):
        out += on_ping(state, p, CFG, region, counters)
        max_ts = max(max_ts, p.ts)
        if i % chunk == 0:
            out += advance(state, max_ts - 10_000, CFG, no_fences)
    out += advance(state, max_ts + 3_600_000, CFG, no_fences)
    return state, out


pings_strategy = st.lists(
    st.tuples(st.integers(0, 40), st.floats(0, 0.02), st.sampled_from([0.0, 1.0, 60.0])),
    min_size=1,
    max_size=40,
    unique_by=lambda x: x[0],
).map(lambda xs: [Ping("T1", T0 + k * 60_000, 40.0 + d, -100.0, s) for k, d, s in xs])


@given(pings_strategy, st.randoms(use_true_random=False), st.integers(1, 5))
def test_final_position_is_the_newest_ping_whatever_the_order(
    pings: list[Ping], rnd: random.Random, chunk: int
) -> None:
    shuffled = pings[:]
    rnd.shuffle(shuffled)
    with_dups = shuffled + [copy.copy(p) for p in shuffled[: len(shuffled) // 2]]
    state, out = run(with_dups, chunk, 0)
    newest = max(pings, key=lambda p: p.ts)
    assert (state.pos_ts, state.lat) == (newest.ts, newest.lat)
    written = [w.ts for w in out if isinstance(w, PositionWrite)]
    # Writes never move backwards in time.
    assert all(b >= a for a, b in zip(written, written[1:], strict=False))


@given(pings_strategy, st.randoms(use_true_random=False))
def test_duplicates_are_idempotent(pings: list[Ping], rnd: random.Random) -> None:
    once = run(pings, 1, 0)
    doubled = [p for p in pings for _ in range(2)]
    twice = run(doubled, 1, 0)
    assert once[0] == twice[0]
    assert [o for o in once[1]] == [o for o in twice[1]]


dense_pings = st.lists(
    st.tuples(st.integers(0, 200), st.floats(0, 0.0003), st.sampled_from([0.0, 1.0, 60.0])),
    min_size=1,
    max_size=60,
    unique_by=lambda x: x[0],
).map(lambda xs: [Ping("T1", T0 + k * 5_000, 40.0 + d, -100.0, s) for k, d, s in xs])


@given(dense_pings, st.randoms(use_true_random=False))
def test_alerts_depend_on_event_time_only_within_the_watermark_bound(
    pings: list[Ping], rnd: random.Random
) -> None:
    """Pings 5 s apart arriving up to 10 s out of order (the watermark bound) change no
    alert and no geofence or status decision."""
    in_order = sorted(pings, key=lambda p: p.ts)
    jittered = sorted(in_order, key=lambda p: p.ts + rnd.randint(0, 9_999))
    a = [o for o in run(in_order, 1, 0)[1] if isinstance(o, AlertEvent | CensusDelta)]
    b = [o for o in run(jittered, 1, 0)[1] if isinstance(o, AlertEvent | CensusDelta)]
    assert a == b


def test_next_wakeup_waits_the_detection_slack_after_the_oldest_buffered_ping() -> None:
    t = Truck()
    t.ping(T0)
    t.ping(T0 + 5_000)
    assert next_wakeup(t.state, CFG) == T0 + CFG.detection_slack_ms
    assert next_wakeup(t.state, replace(CFG, detection_slack_ms=0)) == T0


def test_catch_up_detects_only_what_the_watermark_has_passed() -> None:
    t = Truck()
    t.ping(T0, speed=1.0)
    t.ping(T0 + 130_000, speed=1.0)
    assert catch_up(t.state, T0 - 1, CFG, no_fences) == []
    assert t.state.det_ts == -1
    catch_up(t.state, T0 + 129_999, CFG, no_fences)
    assert t.state.det_ts == T0 and [p.ts for p in t.state.pending] == [T0 + 130_000]
    out = catch_up(t.state, T0 + 130_000, CFG, no_fences)
    assert t.state.status == "STOPPED"  # slow for 130 s of event time
    assert [w.status for w in out if isinstance(w, PositionWrite)] == ["STOPPED"]


def drive(
    arrivals: list[Ping],
    slack_ms: int,
    fences=no_fences,  # type: ignore[no-untyped-def]
) -> tuple[TruckState, Counters, list[object]]:
    """The adapter's event loop with Flink's timer rules: before each record the watermark
    (max ts seen - 10 s) fires every due timer (one per truck, at :func:`next_wakeup`), then
    the arrival catches up and applies the ping; a final watermark an hour past the end."""
    cfg = replace(CFG, detection_slack_ms=slack_ms)
    state, counters = TruckState("T1"), Counters()
    out: list[object] = []
    timer: int | None = None
    wm = -(2**63) + 1

    def fire_until(watermark: int) -> None:
        nonlocal timer
        while timer is not None and timer <= watermark:
            due, timer = timer, None
            out.extend(advance(state, max(due, watermark), cfg, fences))
            timer = next_wakeup(state, cfg)

    for p in arrivals:
        fire_until(wm)
        out.extend(catch_up(state, wm, cfg, fences))
        out.extend(on_ping(state, p, cfg, region, counters))
        timer = next_wakeup(state, cfg)
        wm = max(wm, p.ts - 10_000)
    fire_until(max(p.ts for p in arrivals) + 3_600_000)
    return state, counters, out


def decisions(out: list[object]) -> tuple[list[object], list[object], dict[object, int]]:
    """Alerts and geofence transitions in order, and the census each bucket ends with."""
    census: dict[object, int] = {}
    for c in out:
        if isinstance(c, CensusDelta):
            census[(c.region, c.status)] = census.get((c.region, c.status), 0) + c.delta
    return (
        [o for o in out if isinstance(o, AlertEvent)],
        [o for o in out if isinstance(o, GeofenceTransition)],
        {k: v for k, v in census.items() if v},
    )


near_hub_pings = st.lists(
    st.tuples(st.integers(0, 400), st.floats(0, 0.02), st.sampled_from([0.0, 1.0, 60.0])),
    min_size=1,
    max_size=60,
    unique_by=lambda x: x[0],
).map(lambda xs: [Ping("T1", T0 + k * 15_000, 40.0 + d, -99.995, s) for k, d, s in xs])


@given(near_hub_pings, st.randoms(use_true_random=False), st.sampled_from([5_000, 30_000, 600_000]))
def test_the_detection_slack_changes_when_detection_runs_never_what_it_decides(
    pings: list[Ping], rnd: random.Random, slack_ms: int
) -> None:
    """Detecting on the next arrival (any slack) gives the alerts, geofence transitions,
    census, status and late count of detecting at every ping's own time (slack 0), for any
    arrival order: in time, jittered within the watermark bound, or shuffled (late pings)."""
    in_order = sorted(pings, key=lambda p: p.ts)
    jittered = sorted(in_order, key=lambda p: p.ts + rnd.randint(0, 9_999))
    shuffled = in_order[:]
    rnd.shuffle(shuffled)
    for arrivals in (in_order, jittered, shuffled):
        exact_state, exact_counts, exact = drive(arrivals, 0, hub_fence)
        lazy_state, lazy_counts, lazy = drive(arrivals, slack_ms, hub_fence)
        assert decisions(lazy) == decisions(exact)
        assert lazy_state == exact_state
        assert lazy_counts == exact_counts


def test_writes_at_one_ts_are_numbered_in_order_and_a_new_ping_starts_over() -> None:
    """A ping's own write is 0 and each status change before the next ping counts up, which
    lets Redis refuse a replayed status that a later one had replaced."""
    t = Truck()
    for i in range(0, 13):  # 0..120 s, slow; the last ping at 120 s
        t.ping(T0 + i * 10_000, speed=1.0)
    last = T0 + 120_000
    t.advance(last)  # stopped
    t.advance(last + 10 * MIN)  # offline
    t.ping(last + 11 * MIN)
    writes = [(w.ts, w.status, w.rev) for w in t.out if isinstance(w, PositionWrite)]
    assert writes[:2] == [(T0, "MOVING", 0), (T0 + 10_000, "MOVING", 0)]
    assert writes[-4:] == [
        (last, "MOVING", 0),
        (last, "STOPPED", 1),
        (last, "OFFLINE", 2),
        (last + 11 * MIN, "MOVING", 0),
    ]


def test_a_state_from_before_the_write_numbers_gives_its_first_status_change_one() -> None:
    t = Truck()
    for i in range(0, 13):
        t.ping(T0 + i * 10_000, speed=1.0)
    t.state.written_rev = 0  # as restored from format 1
    t.advance(T0 + 120_000)
    stopped = [w for w in t.out if isinstance(w, PositionWrite)][-1]
    assert (stopped.ts, stopped.status, stopped.rev) == (T0 + 120_000, "STOPPED", 1)


DAY = 24 * 60 * MIN


def test_truck_expires_a_ttl_after_its_last_ping_closing_its_books() -> None:
    t = Truck()
    for i in range(8):  # stopped outside any hub for 35 minutes, then silent
        t.ping(T0 + i * 5 * MIN, speed=0.0)
        t.advance(T0 + i * 5 * MIN)
    t.advance(T0 + 60 * MIN)  # unplanned stop and offline both open
    assert {a[:2] for a in t.alerts()} == {
        ("truck_stopped_unplanned", "trigger"),
        ("truck_offline", "trigger"),
    }
    census = t.state.census
    assert census is not None
    expiry = T0 + 35 * MIN + CFG.state_ttl_s * 1000
    assert next_wakeup(t.state, CFG) == expiry  # the only wake-up left
    assert expire(t.state, expiry - 1, CFG) is None
    closing = expire(t.state, expiry, CFG)
    assert closing is not None
    resolved = [o for o in closing if isinstance(o, AlertEvent)]
    assert sorted((a.alert_class, a.event_action) for a in resolved) == [
        ("truck_offline", "resolve"),
        ("truck_stopped_unplanned", "resolve"),
    ]
    assert all(a.custom_details["reason"] == "expired" and a.event_ts == expiry for a in resolved)
    assert [o for o in closing if isinstance(o, CensusDelta)] == [
        CensusDelta(census[0], census[1], -1)
    ]


def test_a_reporting_truck_never_expires() -> None:
    t = Truck()
    for i in range(10):
        t.ping(T0 + i * DAY)
        t.advance(T0 + i * DAY + MIN)
        assert expire(t.state, T0 + i * DAY + MIN, CFG) is None
        assert next_wakeup(t.state, CFG) == T0 + i * DAY + CFG.offline_after_s * 1000


def test_expiry_waits_for_buffered_pings_to_be_detected() -> None:
    t = Truck()
    t.ping(T0)
    assert expire(t.state, T0 + 8 * DAY, CFG) is None  # the ping is still pending
    t.advance(T0 + 8 * DAY)
    assert expire(t.state, T0 + 8 * DAY, CFG) is not None


def test_the_end_of_a_bounded_input_expires_nothing() -> None:
    t = Truck()
    t.ping(T0)
    t.advance(2**63 - 1)
    assert expire(t.state, 2**63 - 1, CFG) is None


def test_ttl_is_configurable_and_a_fresh_state_never_expires() -> None:
    short = replace(CFG, state_ttl_s=3600)
    t = Truck()
    t.ping(T0)
    t.advance(T0 + 59 * MIN)
    assert expire(t.state, T0 + 59 * MIN, short) is None
    assert expire(t.state, T0 + 60 * MIN, short) is not None
    assert expire(TruckState("T2"), T0 + 100 * DAY, CFG) is None


def by_latitude(lat: float, _lng: float) -> str:
    """Regions that change under a truck standing near 41.0 (jitter across a boundary)."""
    return "NORTH" if lat >= 41.0 else "SOUTH"


def triggers(out: list[object]) -> dict[str, AlertEvent]:
    return {
        a.alert_class: a for a in out if isinstance(a, AlertEvent) and a.event_action == "trigger"
    }


def test_open_alerts_are_the_triggers_as_sent_while_the_state_moves_on() -> None:
    """Re-asserted later, a trigger is byte for byte the one sent when it fired, though the
    truck's region and detected fix have moved since: a stopped truck's GPS jitters (across
    a region boundary, here), and a ping that ends an offline spell changes the region on
    arrival, before detection resolves the alert."""
    state, out = TruckState("T1"), []
    for i in range(40):  # stopped, a ping a minute, jittering around 41.0
        lat = 41.0 + (1e-5 if i % 2 else -1e-5)
        out += on_ping(
            state, Ping("T1", T0 + i * MIN, lat, -100.0, 0.0), CFG, by_latitude, Counters()
        )
        out += advance(state, T0 + i * MIN, CFG, no_fences)
        if i == 30:
            stop = triggers(out)["truck_stopped_unplanned"]
            assert open_alerts(state, CFG) == [stop]
    assert (stop.event_ts, stop.group) == (T0 + 30 * MIN, "SOUTH")
    assert state.det_lat != stop.custom_details["lat"] and state.region == "NORTH"
    [again] = open_alerts(state, CFG)
    assert again.to_json() == stop.to_json()

    out += advance(state, T0 + 49 * MIN, CFG, no_fences)  # silent 10 min: offline as well
    offline = triggers(out)["truck_offline"]
    out += on_ping(
        state, Ping("T1", T0 + 50 * MIN, 40.98, -100.0, 0.0), CFG, by_latitude, Counters()
    )
    assert (offline.group, state.region) == ("NORTH", "SOUTH")  # arrived, not yet detected
    assert [a.to_json() for a in open_alerts(state, CFG)] == [offline.to_json(), stop.to_json()]

    advance(state, T0 + 50 * MIN, CFG, no_fences)  # detected: offline resolves, stop stays
    assert [a.to_json() for a in open_alerts(state, CFG)] == [stop.to_json()]


def test_a_truck_with_nothing_open_has_nothing_to_reassert() -> None:
    t = Truck()
    assert open_alerts(t.state, CFG) == []
    for i in range(5):
        t.ping(T0 + i * MIN, lat=40.0 + i * 0.01)
        t.advance(T0 + i * MIN)
    assert open_alerts(t.state, CFG) == []
    t.advance(T0 + 20 * MIN)
    assert len(open_alerts(t.state, CFG)) == 1
    t.ping(T0 + 21 * MIN, lat=40.06)
    t.advance(T0 + 21 * MIN)  # resolved
    assert open_alerts(t.state, CFG) == []
    assert (t.state.offline_group, t.state.stop_group) == ("", "")
