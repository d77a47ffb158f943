"""The per-truck state machine of the tracking job (pure: no Flink, Kafka or Redis).

Three entry points, all functions of state and event time only:

* :func:`on_ping` runs when a ping arrives. It drops exact duplicates, rejects impossible
  jumps, upserts the position when the ping is the newest seen (the newest ``ts`` wins, so an
  out-of-order ping never moves the truck backwards) and buffers the ping for detection.
* :func:`advance` runs when event time (the watermark) reaches ``now_ms``. It replays the
  buffered pings up to ``now_ms`` in ``ts`` order through motion, geofence and alert detection,
  then applies the timeouts (offline, unplanned stop) due by ``now_ms``.
* :func:`catch_up` is :func:`advance` to the current watermark, run on a ping's arrival
  before :func:`on_ping`: the buffered pings the watermark has passed are detected then, while
  the state is loaded anyway, instead of on a timer of their own.

And :func:`open_alerts`, the triggers of the alerts the truck has open, as first sent, for
the adapter to send again (``--alert-refresh-s``).

When detection runs: a buffered ping is detected when the truck's next ping arrives after the
watermark has passed it, or, if none does, when the watermark reaches its ``ts`` plus
``detection_slack_ms`` (:func:`next_wakeup`). Timeouts always wake at their own time. So for a
truck that keeps reporting, detection lags its pings by one ping interval and costs no timer
wake-up; ``detection_slack_ms=0`` wakes at every ping's ``ts`` instead (lowest latency, one more
state round trip per ping). What is detected, and the event times it carries, do not depend on
the slack.

Detection therefore depends only on the event-time history, never on arrival speed: a backfill
at full speed raises the same alerts, in the same order, as live traffic (DESIGN.md point 4).
A ping that arrives behind already-detected history (later than the watermark allowed) still
updates the position if it is the newest, but cannot rewrite detection history; it is counted.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from udfs.geo import haversine_km
from udfs.models import AlertEvent, GeofenceTransition, Ping, TruckStatus
from udfs.pickling import pickled_by_fields

SOURCE = "fleetpulse/tracking-job"
OFFLINE = "truck_offline"
STOPPED_UNPLANNED = "truck_stopped_unplanned"
DEFAULT_DETECTION_SLACK_MS = 30_000  # the job's --detection-slack-ms
DEFAULT_STATE_TTL_S = 7 * 24 * 3600  # the job's --truck-state-ttl-s
# Event time from here on is the end of a bounded input, not a time (Flink's last watermark is
# 2**63 - 1; the jobs' end-of-input timers sit one below it).
END_OF_INPUT_MS = 2**63 - 2


@dataclass(frozen=True, slots=True)
class TrackingConfig:
    """Thresholds of the tracking job; units in the names."""

    stopped_below_kph: float = 3.0
    stopped_after_s: int = 120
    offline_after_s: int = 600
    unplanned_stop_after_s: int = 1800
    max_speed_kph: float = 250.0
    gps_tolerance_m: float = 100.0
    reanchor_after_rejections: int = 3
    dedup_memory: int = 16
    # A buffered ping waits for the truck's next ping to be detected, at most this long after
    # the watermark passes it (event time); see the module docstring.
    detection_slack_ms: int = DEFAULT_DETECTION_SLACK_MS
    # A truck with no ping for this long (event time) is forgotten: :func:`expire`.
    state_ttl_s: int = DEFAULT_STATE_TTL_S


@pickled_by_fields
@dataclass(slots=True)
class PositionWrite:
    """The truck's current picture for Redis (`truck:{id}`, `trucks:geo`, `stream:positions`).

    Not ``frozen`` though never changed, like :class:`CensusDelta` and ``udfs.models.Ping``:
    one or two are made per ping, and a frozen dataclass's ``__init__`` sets each field through
    ``object.__setattr__``, 1.5 µs against 0.2 for eight fields (docs/tracking.md)."""

    truck_id: str
    ts: int
    lat: float
    lng: float
    speed_kph: float
    heading: float
    status: str
    region: str
    # The truck's writes at one ``ts`` in order: 0 for the ping's own, then 1, 2, ... for each
    # status change before its next ping. Redis rewrites an equal ``ts`` only for a higher one,
    # which keeps a replay from writing a status again after the one that followed it.
    rev: int = 0


@dataclass(slots=True)
class CensusDelta:
    """One truck entering (+1) or leaving (-1) a (region, status) bucket of `region:{R}`
    (not ``frozen``: see :class:`PositionWrite`)."""

    region: str
    status: str
    delta: int


@dataclass(frozen=True, slots=True)
class SpeedRejection:
    """A ping dropped as ``IMPOSSIBLE_SPEED``; the adapter sends it to the DLQ with its bytes."""

    ping: Ping
    detail: str


Output = PositionWrite | CensusDelta | AlertEvent | GeofenceTransition | SpeedRejection


@pickled_by_fields
@dataclass(slots=True)
class TruckState:
    truck_id: str
    # Position: the newest accepted ping, updated on arrival.
    pos_ts: int = -1
    lat: float = 0.0
    lng: float = 0.0
    speed_kph: float = 0.0
    heading: float = 0.0
    region: str = ""
    # Census bucket last reported (region, status), so deltas stay exact.
    census: tuple[str, str] | None = None
    # Detection: pings waiting for the watermark, and history replayed in ts order.
    pending: list[Ping] = field(default_factory=list)
    det_ts: int = -1
    det_lat: float = 0.0
    det_lng: float = 0.0
    status: str = TruckStatus.MOVING.value
    slow_since: int | None = None
    offline_open: bool = False
    stop_alert_open: bool = False
    stop_judged: bool = False  # the 30-minute mark of the current stop has been evaluated
    inside: dict[str, list[int]] = field(default_factory=dict)  # gid -> [inside 0/1, streak]
    # fingerprint() of the last accepted pings (a per-record job's state from before
    # 2026-11-28 may still hold (ts, lat, lng) tuples: they match nothing and age out)
    recent: list[int] = field(default_factory=list)
    rejections_in_row: int = 0
    # PositionWrite.rev of the last position write. Its ts is always pos_ts: pos_ts only changes
    # with an arrival, and an arrival always writes.
    written_rev: int = 0
    # What an open alert's trigger said that the fields above may no longer hold, so that
    # open_alerts() rebuilds it exactly: its group (the region, which moves with every newer
    # ping) and, for a stop, the fix (det_lat/det_lng move with every ping detected while the
    # truck stands). "": none open, or state from before these fields (format 4).
    offline_group: str = ""
    stop_group: str = ""
    stop_lat: float = 0.0
    stop_lng: float = 0.0


@dataclass(slots=True)
class Counters:
    """Per-call counts the adapter turns into metrics."""

    accepted: int = 0
    duplicates: int = 0
    out_of_order: int = 0
    late: int = 0


RegionFn = Callable[[float, float], str]

_FINGERPRINT_BITS = (1 << 63) - 1


def fingerprint(ts: int, lat: float, lng: float) -> int:
    """A ping's identity for exact-duplicate detection: ``ts``, ``lat`` and ``lng`` as one
    63-bit integer. Kept per truck for its last ``dedup_memory`` pings, in memory and in every
    checkpoint, where an integer costs a tenth of a ``(ts, lat, lng)`` tuple (no tuple, no
    float objects, nothing for the cycle collector) and half the JSON. Built from Python's
    numeric hashes, which the language defines for every version (a tuple's hash is not),
    mixed by odd 64-bit constants: two different pings of one truck share one with odds of
    about 2**-63."""
    return (
        ts * 0x9E3779B97F4A7C15 ^ hash(lat) * 0xC2B2AE3D27D4EB4F ^ hash(lng)
    ) & _FINGERPRINT_BITS


GeofenceFn = Callable[[float, float], list[str]]


def _census(state: TruckState, out: list[Output]) -> None:
    now = (state.region, state.status)
    if state.census == now:
        return
    if state.census is not None:
        out.append(CensusDelta(state.census[0], state.census[1], -1))
    out.append(CensusDelta(now[0], now[1], +1))
    state.census = now


def _position(state: TruckState, arriving: Ping | None = None) -> PositionWrite:
    status = state.status
    if arriving is not None and status == TruckStatus.OFFLINE:
        # A fresh ping proves the truck reports again; detection confirms its motion status
        # once the watermark passes the ping.
        slow = (arriving.speed_kph or 0.0) < 3.0
        status = TruckStatus.STOPPED.value if slow else TruckStatus.MOVING.value
    # the ping's own write is 0 (its ts is new); each status change after it counts up. State
    # restored from before the counters reads 0, so its first status change is 1 and applies.
    state.written_rev = 0 if arriving is not None else state.written_rev + 1
    return PositionWrite(
        state.truck_id,
        state.pos_ts,
        state.lat,
        state.lng,
        state.speed_kph,
        state.heading,
        status,
        state.region,
        state.written_rev,
    )


def on_ping(
    state: TruckState, ping: Ping, cfg: TrackingConfig, region_of: RegionFn, counters: Counters
) -> list[Output]:
    """Arrival of one valid ping. Mutates and returns outputs (``state`` is the adapter's copy):
    a rejected ping returns its :class:`SpeedRejection` alone."""
    seen = fingerprint(ping.ts, ping.lat, ping.lng)
    if seen in state.recent:
        counters.duplicates += 1
        return []
    out: list[Output] = []
    if state.pos_ts >= 0:
        dt_h = max(abs(ping.ts - state.pos_ts), 1000) / 3_600_000
        dist_km = haversine_km(state.lat, state.lng, ping.lat, ping.lng)
        implied = max(0.0, dist_km - cfg.gps_tolerance_m / 1000) / dt_h
        if implied > cfg.max_speed_kph:
            state.rejections_in_row += 1
            if state.rejections_in_row < cfg.reanchor_after_rejections:
                return [
                    SpeedRejection(
                        ping,
                        f"{implied:.0f} km/h implied from the last fix "
                        f"({dist_km:.1f} km in {dt_h * 3600:.0f} s)",
                    )
                ]
            # Several fixes in a row disagree with the anchor: the anchor was the bad one.
            state.pos_ts = -1
    state.rejections_in_row = 0
    state.recent.append(seen)
    if len(state.recent) > cfg.dedup_memory:
        del state.recent[0]
    counters.accepted += 1
    if ping.ts > state.pos_ts:
        state.pos_ts, state.lat, state.lng = ping.ts, ping.lat, ping.lng
        state.speed_kph = ping.speed_kph if ping.speed_kph is not None else state.speed_kph
        state.heading = ping.heading if ping.heading is not None else state.heading
        state.region = region_of(ping.lat, ping.lng)
        out.append(_position(state, ping))
        _census(state, out)
    else:
        counters.out_of_order += 1
    if ping.ts <= state.det_ts:
        counters.late += 1  # behind detected history: cannot change past alerts
    else:
        state.pending.append(ping)
    return out


def _alert(
    state: TruckState,
    action: str,
    cls: str,
    ts: int,
    severity: str,
    summary: str,
    lat: float,
    lng: float,
    group: str = "",
    **details: object,
) -> AlertEvent:
    """``group``: the trigger's region when it fired ("": the truck's region now)."""
    return AlertEvent(
        event_action=action,
        alert_class=cls,
        subject_id=state.truck_id,
        summary=summary,
        source=SOURCE,
        severity=severity,
        event_ts=ts,
        component=f"truck:{state.truck_id}",
        group=group or state.region or "OTHER",
        custom_details={
            "truck_id": state.truck_id,
            "lat": lat,
            "lng": lng,
            "event_ts": ts,
            **details,
        },
    )


def _set_status(state: TruckState, status: str, out: list[Output]) -> None:
    if state.status != status:
        state.status = status
        if state.pos_ts >= 0:
            out.append(_position(state))
            _census(state, out)


def _detect(
    state: TruckState, ping: Ping, cfg: TrackingConfig, geofences: GeofenceFn, out: list[Output]
) -> None:
    """One ping of the event-time-ordered history through motion, offline and geofences."""
    speed = ping.speed_kph
    if speed is None:  # derived from the fix before only when the device sent no speed
        if state.det_ts >= 0 and ping.ts > state.det_ts:
            speed = haversine_km(state.det_lat, state.det_lng, ping.lat, ping.lng) / (
                (ping.ts - state.det_ts) / 3_600_000
            )
        else:
            speed = 0.0
    if state.offline_open:
        state.offline_open = False
        state.offline_group = ""
        out.append(
            _alert(
                state,
                "resolve",
                OFFLINE,
                ping.ts,
                "error",
                f"Truck {state.truck_id} is reporting again",
                ping.lat,
                ping.lng,
            )
        )
    state.det_ts, state.det_lat, state.det_lng = ping.ts, ping.lat, ping.lng
    if speed < cfg.stopped_below_kph:
        if state.slow_since is None:
            state.slow_since = ping.ts
        stopped = ping.ts - state.slow_since >= cfg.stopped_after_s * 1000
        status = (
            TruckStatus.STOPPED
            if stopped or state.status == TruckStatus.STOPPED
            else TruckStatus.MOVING
        )
        _set_status(state, status.value, out)
    else:
        state.slow_since = None
        state.stop_judged = False
        _set_status(state, TruckStatus.MOVING.value, out)
        if state.stop_alert_open:
            state.stop_alert_open = False
            _forget_stop(state)
            out.append(
                _alert(
                    state,
                    "resolve",
                    STOPPED_UNPLANNED,
                    ping.ts,
                    "warning",
                    f"Truck {state.truck_id} is moving again",
                    ping.lat,
                    ping.lng,
                )
            )
    _geofences(state, ping, geofences, out)


def _geofences(state: TruckState, ping: Ping, geofences: GeofenceFn, out: list[Output]) -> None:
    """Debounced transitions: enter after two fixes in a row inside, exit after two outside."""
    inside_ids = geofences(ping.lat, ping.lng)
    if not inside_ids and not state.inside:
        return  # far from every hub and inside none: the usual case, no sets built
    now_inside = set(inside_ids)
    for gid in now_inside | set(state.inside):
        entry = state.inside.setdefault(gid, [0, 0])
        inside_now = 1 if gid in now_inside else 0
        if inside_now == entry[0]:
            entry[1] = 0
        else:
            entry[1] += 1
            if entry[1] >= 2:
                entry[0], entry[1] = inside_now, 0
                out.append(
                    GeofenceTransition(
                        state.truck_id,
                        gid,
                        "enter" if inside_now else "exit",
                        ping.ts,
                        ping.lat,
                        ping.lng,
                    )
                )
        if entry == [0, 0]:
            del state.inside[gid]


def advance(
    state: TruckState, now_ms: int, cfg: TrackingConfig, geofences: GeofenceFn
) -> list[Output]:
    """Event time has reached ``now_ms``: detect on buffered pings, then fire due timeouts.

    Timeouts are interleaved with the buffered pings in event-time order, so a gap or a long
    stop inside a burst of buffered pings raises its alert at the moment it happened.
    """
    out: list[Output] = []
    if state.pending:
        due = [p for p in state.pending if p.ts <= now_ms]
        if due:
            state.pending = (
                [p for p in state.pending if p.ts > now_ms] if len(due) < len(state.pending) else []
            )
            if len(due) > 1:
                due.sort(key=_ping_ts)
            for ping in due:
                if ping.ts > state.det_ts:
                    _fire_timeouts(state, ping.ts - 1, cfg, geofences, out)
                    _detect(state, ping, cfg, geofences, out)
    _fire_timeouts(state, now_ms, cfg, geofences, out)
    return out


def _ping_ts(ping: Ping) -> int:
    return ping.ts


def catch_up(
    state: TruckState, watermark: int, cfg: TrackingConfig, geofences: GeofenceFn
) -> list[Output]:
    """On a ping's arrival: :func:`advance` to ``watermark`` if it has passed a buffered ping
    (else nothing to do: every timeout due by then has had its own wake-up)."""
    for p in state.pending:  # a loop, not any() over a generator: this runs per ping
        if p.ts <= watermark:
            return advance(state, watermark, cfg, geofences)
    return []


def _timeouts_due(state: TruckState, cfg: TrackingConfig) -> list[tuple[int, str]]:
    due: list[tuple[int, str]] = []
    if state.det_ts < 0:
        return due
    if not state.offline_open:
        due.append((state.det_ts + cfg.offline_after_s * 1000, "offline"))
    if (
        state.status == TruckStatus.STOPPED
        and state.slow_since is not None
        and not state.stop_judged
    ):
        due.append((state.slow_since + cfg.unplanned_stop_after_s * 1000, "stop"))
    return due


def _fire_timeouts(
    state: TruckState, until_ms: int, cfg: TrackingConfig, geofences: GeofenceFn, out: list[Output]
) -> None:
    """Fire, earliest first, every timeout due at or before ``until_ms``."""
    if state.det_ts < 0 or (
        until_ms < state.det_ts + cfg.offline_after_s * 1000
        and (
            state.slow_since is None
            or until_ms < state.slow_since + cfg.unplanned_stop_after_s * 1000
        )
    ):
        return  # nothing can be due yet: the usual case, answered without building lists
    while True:
        due = [d for d in _timeouts_due(state, cfg) if d[0] <= until_ms]
        if not due:
            return
        kind = min(due)[1]  # its trigger rebuilds the time it was due from the state
        if kind == "offline":
            state.offline_open = True
            _set_status(state, TruckStatus.OFFLINE.value, out)
            state.offline_group = state.region or "OTHER"
            out.append(_offline_trigger(state, cfg))
        else:
            state.stop_judged = True
            if not geofences(state.det_lat, state.det_lng):
                state.stop_alert_open = True
                state.stop_group = state.region or "OTHER"
                state.stop_lat, state.stop_lng = state.det_lat, state.det_lng
                out.append(_stop_trigger(state, cfg))


def _offline_trigger(state: TruckState, cfg: TrackingConfig) -> AlertEvent:
    """The trigger of the truck's open ``truck_offline``, from its state: ``det_*`` stay as
    they were when it fired until the ping that resolves it is detected."""
    return _alert(
        state,
        "trigger",
        OFFLINE,
        state.det_ts + cfg.offline_after_s * 1000,
        "error",
        f"Truck {state.truck_id} has sent no position for {cfg.offline_after_s // 60} min",
        state.det_lat,
        state.det_lng,
        group=state.offline_group,
        last_ping_ts=state.det_ts,
    )


def _stop_trigger(state: TruckState, cfg: TrackingConfig) -> AlertEvent:
    """The trigger of the truck's open ``truck_stopped_unplanned``, from its state:
    ``slow_since`` stays until the move that resolves it."""
    assert state.slow_since is not None  # a stop is open only while the truck is slow
    has_fix = bool(state.stop_group)  # else state from before the fix was kept: the latest
    return _alert(
        state,
        "trigger",
        STOPPED_UNPLANNED,
        state.slow_since + cfg.unplanned_stop_after_s * 1000,
        "warning",
        f"Truck {state.truck_id} stopped outside any hub for "
        f"{cfg.unplanned_stop_after_s // 60} min",
        state.stop_lat if has_fix else state.det_lat,
        state.stop_lng if has_fix else state.det_lng,
        group=state.stop_group,
        stopped_since_ts=state.slow_since,
    )


def _forget_stop(state: TruckState) -> None:
    state.stop_group, state.stop_lat, state.stop_lng = "", 0.0, 0.0


def open_alerts(state: TruckState, cfg: TrackingConfig) -> list[AlertEvent]:
    """The trigger of each alert the truck has open, equal to the one sent when it fired
    (``to_json`` byte for byte), for sending again: a receiver resolves an incident its
    source stops re-asserting, and a trigger lost on the way arrives with the next.

    State restored from before the trigger's group and stop fix were kept (format 4) gives
    the truck's latest region and detected fix instead; same incident, same event time."""
    alerts: list[AlertEvent] = []
    if state.offline_open:
        alerts.append(_offline_trigger(state, cfg))
    if state.stop_alert_open and state.slow_since is not None:
        alerts.append(_stop_trigger(state, cfg))
    return alerts


def expiry_ts(state: TruckState, cfg: TrackingConfig) -> int:
    """When the truck's state may be dropped: ``state_ttl_s`` of event time after its newest
    accepted ping (or its newest detected one, for state from an older version)."""
    return max(state.pos_ts, state.det_ts) + cfg.state_ttl_s * 1000


def expire(state: TruckState, now_ms: int, cfg: TrackingConfig) -> list[Output] | None:
    """Outputs that close the truck's books if it has sent nothing for ``state_ttl_s`` by
    ``now_ms``, else None (keep the state). Run after :func:`advance` to ``now_ms``.

    Bounds state to the trucks seen in the last TTL of event time: a truck that stopped
    reporting for good (sold, renamed, a ghost from a bad id) would otherwise hold its state,
    an open ``truck_offline`` incident and a census count for ever. Its open incidents resolve
    with ``custom_details.reason = "expired"`` and it leaves its census bucket; its Redis hash
    expired long before (one hour after its last write). A ping after expiry starts a new
    truck, as a first ping does. The end of a bounded input (event time at Java's largest
    long, where every timer fires) expires nothing: a backfill's end is not a week of silence.
    The resolves carry the expiry's event time."""
    if state.pending or state.pos_ts < 0 and state.det_ts < 0 or now_ms >= END_OF_INPUT_MS:
        return None
    at = expiry_ts(state, cfg)
    if now_ms < at:
        return None
    out: list[Output] = []
    if state.offline_open:
        state.offline_open = False
        state.offline_group = ""
        out.append(
            _alert(
                state,
                "resolve",
                OFFLINE,
                at,
                "error",
                f"Truck {state.truck_id} forgotten after {cfg.state_ttl_s // 3600} h "
                "without a position",
                state.det_lat,
                state.det_lng,
                reason="expired",
            )
        )
    if state.stop_alert_open:
        state.stop_alert_open = False
        _forget_stop(state)
        out.append(
            _alert(
                state,
                "resolve",
                STOPPED_UNPLANNED,
                at,
                "warning",
                f"Truck {state.truck_id} forgotten after {cfg.state_ttl_s // 3600} h "
                "without a position",
                state.det_lat,
                state.det_lng,
                reason="expired",
            )
        )
    if state.census is not None:
        out.append(CensusDelta(state.census[0], state.census[1], -1))
        state.census = None
    return out


def next_wakeup(state: TruckState, cfg: TrackingConfig) -> int | None:
    """The next event time at which :func:`advance` must run: the earliest timeout, the
    oldest buffered ping plus the detection slack, or the state's expiry. One timer per truck
    suffices."""
    # The rule of _timeouts_due, without its list: this runs for every truck a bundle changes.
    if state.det_ts < 0:
        due = None
    else:
        due = None if state.offline_open else state.det_ts + cfg.offline_after_s * 1000
        if (
            state.status == TruckStatus.STOPPED
            and state.slow_since is not None
            and not state.stop_judged
        ):
            stop = state.slow_since + cfg.unplanned_stop_after_s * 1000
            due = stop if due is None or stop < due else due
    if state.pending:
        oldest = state.pending[0].ts
        for p in state.pending:
            if p.ts < oldest:
                oldest = p.ts
        detect = oldest + cfg.detection_slack_ms
        due = detect if due is None or detect < due else due
    elif due is None and (state.pos_ts >= 0 or state.det_ts >= 0):
        due = expiry_ts(state, cfg)  # later than every timeout, so only when none is left
    return due
