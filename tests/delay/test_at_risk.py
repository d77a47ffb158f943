"""``shipment_at_risk`` without the noise (issue 29): a flapping condition pages once, a
sustained one still pages after ``at_risk_for_s``, a stationary truck reads as stationary with
no ETA, and a replay, restarts included, gives the same alerts."""

from __future__ import annotations

import pickle
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from udfs.models import AlertEvent, Scan, ScanType
from udfs.shipment_state import (
    AT_RISK,
    CLEAR,
    LATE,
    RISK,
    Output,
    ShipmentState,
    TruckFix,
    advance,
    estimate,
    next_deadline,
    step,
)

from .helpers import CFG, HOUR, MIN, PDX, SEA, T0, alerts, at_risk_model, scan, stop_and_go_pings

pytestmark = pytest.mark.unit

P = T0 + 6 * HOUR  # the promise; SEA -> PDX is 234 km
FAST, SLOW = 200.0, 20.0  # at SEA: ETA about T0 + 1h10m (on schedule), T0 + 11h42m (late)
FOR, KEEP = CFG.at_risk_for_s * 1000, CFG.at_risk_keep_firing_for_s * 1000
# The rule before issue 29: no `for`, no hysteresis, no keep_firing_for.
UNDAMPED = replace(CFG, at_risk_for_s=0, at_risk_keep_firing_for_s=0, at_risk_hysteresis_s=0)


def pickup(promised_by: int = P) -> Scan:
    return scan("S1", 1, ScanType.PICKED_UP, T0, promised_by=promised_by)


def fix(ts: int, kph: float, lat: float = SEA[0], lng: float = SEA[1]) -> TruckFix:
    return TruckFix("S1", "T1", ts, lat, lng, kph)


def run(events: list[Scan | TruckFix], until: int, cfg=CFG) -> list[Output]:  # type: ignore[no-untyped-def]
    """Buffered, then event time to ``until``: the job's in-order case."""
    state: ShipmentState | None = None
    for e in events:
        state, _ = step(state, e, cfg)
    assert state is not None
    return advance(state, until, cfg)[1]


def at_risk(outputs: list[Output]) -> list[tuple[str, int]]:
    return [(action, ts) for action, cls, ts, _ in alerts(outputs) if cls == AT_RISK]


def every_5_min(start: int, end: int) -> range:
    return range(start, end, 5 * MIN)


def alternating(n_slow: int, n_fast: int) -> list[TruckFix]:
    """Fixes every 5 min for four hours: ``n_slow`` slow ones, ``n_fast`` fast ones, again."""
    return [
        fix(ts, SLOW if i % (n_slow + n_fast) < n_slow else FAST)
        for i, ts in enumerate(every_5_min(T0 + 5 * MIN, T0 + 4 * HOUR))
    ]


@pytest.mark.parametrize(("n_slow", "n_fast"), [(7, 1), (7, 5), (9, 3), (12, 4)])
def test_a_speed_oscillating_around_the_threshold_pages_once(n_slow: int, n_fast: int) -> None:
    """The ETA past the promise for 35 to 60 min, then back on schedule for 5 to 25 min, for
    four hours. One page; the rule before issue 29 paged at every swing (3 to 6 times)."""
    fixes = alternating(n_slow, n_fast)
    assert at_risk(run([pickup(), *fixes], T0 + 4 * HOUR)) == [("trigger", T0 + 5 * MIN + FOR)]
    undamped = at_risk(run([pickup(), *fixes], T0 + 4 * HOUR, UNDAMPED))
    swings = len(range(0, len(fixes), n_slow + n_fast))
    assert [a for a, _ in undamped].count("trigger") == swings >= 3


@pytest.mark.parametrize(("n_slow", "n_fast"), [(1, 1), (3, 3), (6, 1), (6, 6)])
def test_a_condition_that_never_holds_for_at_risk_for_s_never_pages(
    n_slow: int, n_fast: int
) -> None:
    """The ETA past the promise for 5 to 30 min at a time: never for the whole of
    ``at_risk_for_s`` (at its 30th minute the fast fix is in effect)."""
    fixes = alternating(n_slow, n_fast)
    assert at_risk(run([pickup(), *fixes], T0 + 4 * HOUR)) == []
    assert at_risk(run([pickup(), *fixes], T0 + 4 * HOUR, UNDAMPED))


def test_a_stop_and_go_truck_through_the_feed_pages_once() -> None:
    """Through the truck feed (30-minute average): 20 min at 90 km/h, 20 min stopped, for 4 h,
    promise 4h30m out. The old rule paged five times; now once, resolved on delivery. The
    MiniCluster and Kafka tests run the same pings."""
    scans = [
        scan("S1", 1, ScanType.PICKED_UP, T0, promised_by=T0 + 270 * MIN, truck_id="T7"),
        scan("S1", 2, ScanType.DELIVERED, T0 + 250 * MIN, truck_id="T7"),
    ]
    pings = stop_and_go_pings("T7", T0, 4)
    now = at_risk_model(scans, pings, CFG, T0 + 5 * HOUR)
    assert [a for a, _ in now] == ["trigger", "resolve"] and now[1][1] == T0 + 250 * MIN
    old = at_risk_model(
        scans, pings, replace(UNDAMPED, at_risk_resume_speed_kph=0.1), T0 + 5 * HOUR
    )
    assert [a for a, _ in old].count("trigger") == 5


def test_a_sustained_condition_pages_after_for_even_without_another_fix() -> None:
    """One slow fix and then silence: the timer fires at the fix plus ``at_risk_for_s``."""
    state, _ = step(None, pickup(), CFG)
    state, _ = step(state, fix(T0 + 5 * MIN, SLOW), CFG)
    state, out = advance(state, T0 + 5 * MIN, CFG)
    assert at_risk(out) == [] and next_deadline(state, CFG) == T0 + 5 * MIN + FOR
    state, out = advance(state, T0 + 5 * MIN + FOR, CFG)
    assert at_risk(out) == [("trigger", T0 + 5 * MIN + FOR)]
    trigger = next(o for o in out if isinstance(o, AlertEvent))
    assert trigger.custom_details["avg_speed_kph"] == SLOW
    fixes = [fix(ts, SLOW) for ts in every_5_min(T0 + 5 * MIN, T0 + 4 * HOUR)]
    assert at_risk(run([pickup(), *fixes], T0 + 4 * HOUR)) == [("trigger", T0 + 5 * MIN + FOR)]


def test_it_resolves_once_back_on_schedule_for_keep_firing_for() -> None:
    """Slow for 85 min; one fast fix amid it resolves nothing; then fast for good: resolved
    ``at_risk_keep_firing_for_s`` after the first fast fix of that run."""
    slow = [fix(ts, SLOW) for ts in every_5_min(T0 + 5 * MIN, T0 + 90 * MIN)]
    blip = [fix(T0 + 50 * MIN + 1, FAST)]
    fast = [fix(ts, FAST) for ts in every_5_min(T0 + 90 * MIN, T0 + 3 * HOUR)]
    out = run([pickup(), *slow, *blip, *fast], T0 + 3 * HOUR)
    assert at_risk(out) == [("trigger", T0 + 5 * MIN + FOR), ("resolve", T0 + 90 * MIN + KEEP)]


def test_an_eta_just_under_the_promise_keeps_the_warning_open() -> None:
    """Hysteresis: an ETA 5 min before the promise is not back on schedule (15 min needed)."""
    km = estimate(fix(T0, 1.0), PDX, P, CFG).remaining_km
    ts = T0 + HOUR
    just_under = fix(ts, km / ((P - 5 * MIN - ts) / HOUR))
    events = [pickup(), fix(T0 + 5 * MIN, SLOW), just_under]
    assert at_risk(run(events, T0 + 5 * HOUR)) == [("trigger", T0 + 5 * MIN + FOR)]
    no_hysteresis = replace(CFG, at_risk_hysteresis_s=0)
    assert at_risk(run(events, T0 + 5 * HOUR, no_hysteresis)) == [
        ("trigger", T0 + 5 * MIN + FOR),
        ("resolve", ts + KEEP),
    ]


def test_a_stationary_truck_reads_as_stationary_with_no_eta() -> None:
    """Stopped 234 km out, 3 h before the promise: even leaving now at 60 km/h it would be
    late. The warning says so; it never says "never"."""
    out = run([pickup(T0 + 3 * HOUR), fix(T0 + 5 * MIN, 0.0)], T0 + HOUR)
    assert at_risk(out) == [("trigger", T0 + 5 * MIN + FOR)]
    warning = next(o for o in out if isinstance(o, AlertEvent))
    assert warning.summary == (
        "Shipment S1 at risk: truck T1 is stationary (under 5 km/h), no ETA, 233.9 km to go, "
        "promised 2025-11-24T19:00:00.000Z"
    )
    assert "never" not in warning.summary
    assert warning.custom_details["eta_ts"] is None
    assert warning.custom_details["avg_speed_kph"] == 0.0


def test_a_truck_loading_at_a_hub_warns_only_once_it_cannot_make_it() -> None:
    """Stationary from the pick-up on, promise 6 h out: no ETA, but at 60 km/h the 234 km take
    3h54m, so the shipment is at risk from the first fix after T0 + 2h06m, paged 30 min later."""
    fixes = [fix(ts, 0.0) for ts in every_5_min(T0, T0 + 3 * HOUR)]
    verdicts = {x.ts: estimate(x, PDX, P, CFG).verdict for x in fixes}
    assert verdicts[T0 + 125 * MIN] != RISK and verdicts[T0 + 130 * MIN] == RISK
    assert at_risk(run([pickup(), *fixes], T0 + 3 * HOUR)) == [("trigger", T0 + 130 * MIN + FOR)]


def test_it_does_not_trigger_after_the_promise() -> None:
    """Past the promise for less than ``at_risk_for_s`` when the promise passes:
    ``shipment_late`` takes over, no warning after the fact."""
    p = T0 + HOUR
    events = [pickup(p), fix(T0 + 55 * MIN, SLOW)]
    out = run(events, T0 + 2 * HOUR)
    assert at_risk(out) == [] and ("trigger", LATE, p + 1, "info") in alerts(out)
    assert at_risk(run(events, T0 + 2 * HOUR, UNDAMPED)) == [("trigger", T0 + 55 * MIN)]


def test_a_late_fix_counts_from_the_processed_time() -> None:
    """A fix behind the processed time cannot rewrite the history of verdicts: before the
    promise it starts the `for` from the processed time; after the promise it is moot."""
    state, _ = step(None, pickup(), CFG)
    state, _ = advance(state, T0 + HOUR, CFG)
    state, out = step(state, fix(T0 + 5 * MIN, SLOW), CFG)
    assert out == [] and state.at_risk_since == T0 + HOUR
    state, out = advance(state, T0 + HOUR + FOR, CFG)
    assert at_risk(out) == [("trigger", T0 + HOUR + FOR)]
    state, _ = step(None, pickup(), CFG)
    state, _ = advance(state, P + 1, CFG)
    state, out = step(state, fix(T0 + 5 * MIN, SLOW), CFG)
    state, more = advance(state, P + HOUR, CFG)
    assert at_risk(out + more) == []


# Properties over any fix sequence.

SPEEDS = [0.0, 3.0, 30.0, 47.0, 60.0, FAST]  # stationary, and ETAs around the promise


@st.composite
def fix_sequences(draw: st.DrawFn) -> list[TruckFix]:
    """Fixes before the promise, on a minute grid, of speeds whose ETAs fall on both sides of
    the promise and within the hysteresis band; the truck at SEA or half-way."""
    minutes = draw(st.lists(st.integers(0, 355), min_size=1, max_size=40, unique=True))
    return [
        fix(
            T0 + m * MIN,
            draw(st.sampled_from(SPEEDS)),
            *draw(st.sampled_from([SEA, ((SEA[0] + PDX[0]) / 2, SEA[1])])),
        )
        for m in sorted(minutes)
    ]


def verdict_at(fixes: list[TruckFix], t: int) -> str:
    """The verdict in effect at ``t``: the newest fix's (no fix yet: on schedule)."""
    in_effect = [x for x in fixes if x.ts <= t]
    return estimate(in_effect[-1], PDX, P, CFG).verdict if in_effect else CLEAR


def held(fixes: list[TruckFix], verdict: str, start: int, end: int) -> bool:
    """``verdict`` in effect throughout ``[start, end]``."""
    changes = [start] + [x.ts for x in fixes if start < x.ts <= end]
    return all(verdict_at(fixes, t) == verdict for t in changes)


def is_open_at(events: list[tuple[str, int]], t: int) -> bool:
    before = [a for a, ts in events if ts <= t]
    return bool(before) and before[-1] == "trigger"


@settings(max_examples=300, deadline=None)
@given(fixes=fix_sequences())
def test_the_warning_changes_only_after_its_condition_held(fixes: list[TruckFix]) -> None:
    """Triggers and resolves alternate; each trigger follows ``at_risk_for_s`` of an ETA past
    the promise, each resolve ``at_risk_keep_firing_for_s`` back on schedule, so two pages are
    at least both apart; and a condition that holds that long does change the warning."""
    events = at_risk(run([pickup(), *fixes], P + HOUR))
    actions = [a for a, _ in events]
    assert actions == ["trigger", "resolve"] * (len(actions) // 2) + ["trigger"] * (
        len(actions) % 2
    )
    for action, t in events:
        assert t <= P
        if action == "trigger":
            assert held(fixes, RISK, t - FOR, t), (t - T0) // MIN
        else:
            assert held(fixes, CLEAR, t - KEEP, t), (t - T0) // MIN
    triggers = [t for a, t in events if a == "trigger"]
    assert all(b - a >= FOR + KEEP for a, b in zip(triggers, triggers[1:], strict=False))
    for x in fixes:  # liveness, from each fix that starts a run
        v = verdict_at(fixes, x.ts)
        if v == RISK and x.ts + FOR <= P and held(fixes, RISK, x.ts, x.ts + FOR):
            assert is_open_at(events, x.ts + FOR)
        if v == CLEAR and x.ts + KEEP <= P and held(fixes, CLEAR, x.ts, x.ts + KEEP):
            assert not is_open_at(events, x.ts + KEEP)


def live(inputs: list[Scan | TruckFix], until: int) -> list[Output]:
    """The job's live path: each input, then the watermark to it, then the timer at each
    deadline; the state pickled and restored between every two calls (a restart each time)."""
    state: ShipmentState | None = None
    outputs: list[Output] = []
    for e in inputs:
        state, out = step(state, e, CFG)
        outputs += out
        state, out = advance(pickle.loads(pickle.dumps(state)), e.ts, CFG)
        outputs += out
        state = pickle.loads(pickle.dumps(state))
    assert state is not None
    while (due := next_deadline(state, CFG)) is not None and due <= until:
        state, out = advance(pickle.loads(pickle.dumps(state)), due, CFG)
        outputs += out
    state, out = advance(state, until, CFG)
    return outputs + out


@settings(max_examples=150, deadline=None)
@given(fixes=fix_sequences(), delivered=st.sampled_from([None, 90, 240]))
def test_a_replay_with_restarts_gives_the_same_alerts(
    fixes: list[TruckFix], delivered: int | None
) -> None:
    """The same inputs in event-time order, live with a restart between every two calls, or
    buffered and taken at once: the very same alert events, twice over."""
    inputs: list[Scan | TruckFix] = [pickup(), *fixes]
    if delivered is not None:
        inputs.append(scan("S1", 2, ScanType.DELIVERED, T0 + delivered * MIN))
    inputs.sort(key=lambda e: e.ts)
    reference = run(inputs, P + HOUR)
    assert live(inputs, P + HOUR) == reference == run(inputs, P + HOUR)


def test_the_settings_set_the_rule_and_a_bad_one_names_its_flag(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from flink_jobs.delay.settings import DelaySettings

    cfg = DelaySettings.from_argv(
        ["--at-risk-for-s", "60", "--at-risk-keep-firing-for-s", "0"],
        {"FLEETPULSE_AT_RISK_HYSTERESIS_S": "0", "FLEETPULSE_AT_RISK_RESUME_SPEED_KPH": "80"},
    ).delay_config
    assert (cfg.at_risk_for_s, cfg.at_risk_keep_firing_for_s) == (60, 0)
    assert (cfg.at_risk_hysteresis_s, cfg.at_risk_resume_speed_kph) == (0, 80.0)
    with pytest.raises(SystemExit) as refused:
        DelaySettings.from_argv(["--at-risk-resume-speed-kph", "0"], {})
    assert refused.value.code == 2
    assert "--at-risk-resume-speed-kph '0': at_risk_resume_speed_kph" in capsys.readouterr().err
