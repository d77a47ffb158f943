"""The per-shipment state machine of the delay job (pure: no Flink, Kafka or Redis).

Design: the state keeps the *set* of scans of a shipment (deduplicated by ``scan_id``), and
everything the job reports is derived from that set and the event time ``t`` by
:func:`desired` — which incidents should be open, the shipment's score in `delays`, its region
counts. :func:`advance` then *reconciles*: it compares what should be true with what was last
reported (``state.open``, ``state.score``, ...) and emits only the differences (trigger,
escalation, resolve, Redis effects). Consequences:

* The final state depends only on the set of scans (order of arrival and duplicates change
  nothing), which the property tests check over permutations.
* A scan that arrives behind the processed event time (late) is simply added to the set and
  reconciled at once: if it shows an open alert was wrong (a ``DELIVERED`` before
  ``promised_by``), the reconcile emits the corrective resolve and Redis corrections.
* Redis effects are absolute per shipment (a score, a region, a number of hours), so the
  writer can apply them idempotently and a replay after a restart never counts twice.

Entry points (all mutate and return the adapter's copy of the state):

* :func:`step` on arrival of a scan, a truck fix (for ``shipment_at_risk``) or a
  ``MATCH_RECOGNIZE`` match (for ``delivery_attempts_failed``). Inputs ahead of the processed
  time are buffered; they take effect when event time reaches them (DESIGN.md point 4).
* :func:`advance` when event time (watermark or timer) reaches ``t``: walks every instant up to
  ``t`` at which something can change (buffered inputs, deadlines, severity bands) in order,
  so alerts come out in event-time order with their own event times.
* :func:`next_deadline`: the one event time at which the adapter's single timer must fire.
* :func:`finished`: True when the adapter may clear the state (and its timers).
* :func:`reassert`: what was last reported, again (the adapter's refresh, issue 29).

Bounded state (issue 27, a limit on everything a peer controls): a shipment never delivered
*expires* ``DelayConfig.expire_after_promise_s`` after the later of its promise and its latest
scan (without a promise: after its latest scan). Expiry is one of the deadlines: at that event
time every open incident is resolved and its `delays` member removed, the state forgets what it
processed, and :func:`finished` lets the adapter drop it. A shipment keeps at most
``DelayConfig.max_scans_per_shipment`` scans (see :func:`_insert_scan`), and of the
``MATCH_RECOGNIZE`` matches only the one that can decide (the earliest). Every deadline stays
within :data:`MAX_DEADLINE_MS`, far inside a Java long.

``shipment_at_risk`` does not flap (issue 29): each truck fix gives a verdict (:func:`estimate`:
the ETA past the promise, back under it with a hysteresis margin, or in between), and the
warning triggers only once its verdict has held for ``at_risk_for_s`` of event time and
resolves only once the opposite one has held for ``at_risk_keep_firing_for_s`` (Prometheus'
``for`` and ``keep_firing_for``). The state keeps when the pending change began
(``ShipmentState.at_risk_since``), so this is exact across restarts and replays; it is the one
outcome that depends on the order of inputs, not only on their set: an input that arrives
behind the processed time counts from the processed time, it cannot rewrite the history of
verdicts (as the tracking job's late pings). From the promise on, ``shipment_late`` takes over
and the warning stays as it was until delivery or expiry.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

from udfs import UdfError
from udfs.geo import haversine_km
from udfs.models import AlertEvent, Scan, ScanType, iso8601
from udfs.severity import (
    BANDS_S,
    delay_severity,
    format_duration,
    next_escalation_ms,
    pagerduty_severity,
)

SOURCE = "fleetpulse/delay-job"
LATE = "shipment_late"
AT_RISK = "shipment_at_risk"
STUCK = "shipment_stuck_at_hub"
NO_SCAN = "shipment_no_scan"
ATTEMPTS = "delivery_attempts_failed"
CLASSES = (LATE, AT_RISK, STUCK, NO_SCAN, ATTEMPTS)
FIXED_SEVERITY = {AT_RISK: "warning", STUCK: "warning", NO_SCAN: "error", ATTEMPTS: "error"}
OTHER_REGION = "OTHER"
# The latest event time a deadline may have: the last millisecond ISO 8601 (an alert's
# timestamp) can spell, year 9999, and about 36,000 times less than a Java long's maximum
# (Flink timers). Validated inputs and DelayConfig keep every deadline far below it; the clamp
# in next_deadline is a backstop, never reached by them.
MAX_DEADLINE_MS = 253_402_300_799_999
# The longest duration a DelayConfig accepts (100 years). A deadline is an input's time plus one
# duration; scan and ping times are validated to before the year 9000 (MAX_TS_MS of the
# parsers) and promises to within 365 days of their scan, so every deadline stays below the above.
MAX_DURATION_S = 100 * 365 * 24 * 3600
# The slowest speed an arrival estimate is made from (at_risk_min_speed_kph and
# at_risk_resume_speed_kph are at least this); it bounds an estimate, which an alert spells in
# ISO 8601, to 23 years (half the Earth's circumference).
MIN_AT_RISK_SPEED_KPH = 0.1
# What a truck fix says about the promise (Estimate.verdict): the ETA is past it (plus
# at_risk_margin_s), back under it by at_risk_hysteresis_s more, or in between (no change).
RISK, CLEAR, BETWEEN = "risk", "clear", "between"

RegionFn = Callable[[float, float], str]


def default_region_of(lat: float, lng: float) -> str:
    """``udfs.geo.region_of``, imported on first use (loading the regions takes a moment)."""
    from udfs.geo import region_of

    return region_of(lat, lng)


@dataclass(frozen=True, slots=True)
class DelayConfig:
    """Thresholds of the delay patterns; units in the names."""

    stuck_after_s: int = 6 * 3600
    no_scan_after_s: int = 24 * 3600
    failed_attempts: int = 2
    failed_attempts_within_s: int = 48 * 3600
    # MATCH_RECOGNIZE matches (AttemptsMatch inputs) always count. The same rule is also
    # applied here to the scans: Flink CEP drops rows that reach it behind its watermark
    # (a partition marked idle and then resuming), so a match can be missing; the keyed state
    # sees late scans and keeps the outcome a function of the scans. False: matches only.
    attempts_from_scans: bool = True
    # Slower than this on average, the truck is stationary: no ETA (see estimate()).
    at_risk_min_speed_kph: float = 5.0
    at_risk_arrived_km: float = 1.0  # this close to the destination: arrived, not at risk
    at_risk_margin_s: int = 0  # ETA may exceed promised_by by this much before warning
    # A stationary truck's shipment is at risk only if, leaving now at this speed, the truck
    # would still miss the promise (a truck loading at a hub with a day to spare is not).
    at_risk_resume_speed_kph: float = 60.0
    # The ETA must come back this far under the warning threshold to count as on schedule.
    at_risk_hysteresis_s: int = 15 * 60
    # The warning triggers once the ETA has been past the threshold this long (event time):
    # one window of the truck feed's average speed (udfs.truck_speed.FeedConfig.window_s), so
    # the half hour after a stop, whose average the stop drags down, cannot page alone...
    at_risk_for_s: int = 30 * 60
    # ... and resolves once it has been back under it (less the hysteresis) this long.
    at_risk_keep_firing_for_s: int = 30 * 60
    severity_bands_s: tuple[int, ...] = BANDS_S
    retain_after_delivery_s: int = 7 * 24 * 3600  # then the state is dropped
    # Never delivered: the state expires this long after the later of promised_by and the
    # latest scan (no promise: the latest scan), resolving what it has open (module docstring).
    expire_after_promise_s: int = 30 * 24 * 3600
    # Scans kept per shipment; beyond it the oldest one no fact rests on goes (_insert_scan).
    max_scans_per_shipment: int = 1000
    region_of: RegionFn = default_region_of

    def __post_init__(self) -> None:
        """Refuse values that would put a deadline out of range (a Java long timer, an ISO
        8601 timestamp) or make the state unbounded: a typo in a flag fails at start-up
        instead of in a timer."""
        durations = {
            "stuck_after_s": self.stuck_after_s,
            "no_scan_after_s": self.no_scan_after_s,
            "failed_attempts_within_s": self.failed_attempts_within_s,
            "retain_after_delivery_s": self.retain_after_delivery_s,
            "expire_after_promise_s": self.expire_after_promise_s,
            "at_risk_hysteresis_s": self.at_risk_hysteresis_s,
            "at_risk_for_s": self.at_risk_for_s,
            "at_risk_keep_firing_for_s": self.at_risk_keep_firing_for_s,
        }
        for name, v in durations.items():
            if not 0 <= v <= MAX_DURATION_S:
                raise DelayConfigError(f"{name} {v} outside 0..{MAX_DURATION_S}")
        if not -MAX_DURATION_S <= self.at_risk_margin_s <= MAX_DURATION_S:
            raise DelayConfigError(
                f"at_risk_margin_s {self.at_risk_margin_s} outside +-{MAX_DURATION_S}"
            )
        bands = self.severity_bands_s
        if (
            not bands
            or any(not a < b for a, b in zip((0, *bands), bands, strict=False))
            or bands[-1] > MAX_DURATION_S
        ):
            raise DelayConfigError(
                f"severity_bands_s {bands} must increase within 1..{MAX_DURATION_S}"
            )
        for name, kph in (
            ("at_risk_min_speed_kph", self.at_risk_min_speed_kph),
            ("at_risk_resume_speed_kph", self.at_risk_resume_speed_kph),
        ):
            if not MIN_AT_RISK_SPEED_KPH <= kph <= 1e6:
                raise DelayConfigError(f"{name} {kph} outside {MIN_AT_RISK_SPEED_KPH}..1e6")
        if not 0.0 <= self.at_risk_arrived_km <= 1e6:
            raise DelayConfigError(f"at_risk_arrived_km {self.at_risk_arrived_km} outside 0..1e6")
        if self.max_scans_per_shipment < 1:
            raise DelayConfigError("max_scans_per_shipment must be at least 1")


class DelayConfigError(UdfError):
    """A DelayConfig value out of range."""


@dataclass(frozen=True, slots=True)
class TruckFix:
    """The assigned truck's position and recent average speed, addressed to one shipment."""

    shipment_id: str
    truck_id: str
    ts: int
    lat: float
    lng: float
    avg_speed_kph: float


@dataclass(frozen=True, slots=True)
class AttemptsMatch:
    """A ``MATCH_RECOGNIZE`` match: failed delivery attempts close together."""

    shipment_id: str
    first_ts: int
    last_ts: int
    attempts: int

    @property
    def ts(self) -> int:
        return self.last_ts


Event = Scan | TruckFix | AttemptsMatch


# Redis effects: absolute per shipment, so the writer applies them idempotently.
@dataclass(frozen=True, slots=True)
class DelayScore:
    """``ZADD delays <severity> shipment:{id}``."""

    shipment_id: str
    severity: int


@dataclass(frozen=True, slots=True)
class DelayCleared:
    """``ZREM delays shipment:{id}``."""

    shipment_id: str


@dataclass(frozen=True, slots=True)
class RegionShipmentCounted:
    """The shipment counts once in ``region:{region}`` ``total_shipments`` (moves if corrected)."""

    region: str
    shipment_id: str


@dataclass(frozen=True, slots=True)
class RegionDelayHours:
    """The shipment contributes ``hours`` to ``region:{region}`` ``total_delay_hours``.

    It replaces what the shipment contributed before (0.0: nothing), so a correction subtracts
    the old hours and adds the new ones.
    """

    region: str
    shipment_id: str
    hours: float


RedisEffect = DelayScore | DelayCleared | RegionShipmentCounted | RegionDelayHours
Output = AlertEvent | RedisEffect


@dataclass(slots=True)
class ShipmentState:
    """One shipment's inputs and what was last reported; pickled into Flink state as it is.

    A pickle holds the fields by name, as the default pickling of a slots class does, less
    ``scan_ids`` (rebuilt from ``scans`` on load): :meth:`__setstate__` gives a field a pickle
    lacks its default, so state checkpointed by an older version restores, and this version's
    pickles load in the previous one, whose :meth:`__setstate__` takes the fields it knows and
    ignores the others (``at_risk_since``), so a job can also be rolled back onto its
    checkpoints. A field added later needs the same care: a default, and no meaning that an
    older version could break by ignoring it.
    """

    shipment_id: str
    scans: list[Scan] = field(default_factory=list)  # sorted by (ts, scan_id), unique scan_id
    fixes: list[TruckFix] = field(default_factory=list)  # sorted by _fix_key; compacted
    matches: list[AttemptsMatch] = field(default_factory=list)  # the earliest-ending one
    processed_until: int = -1  # event time up to which inputs have taken effect
    # What was last reported: class -> delay severity (late) or 0; Redis values.
    open: dict[str, int] = field(default_factory=dict)
    score: int = 0
    counted_region: str | None = None
    delay_hours: tuple[str, float] | None = None
    attempts_alerted: bool = False
    # shipment_at_risk (module docstring): the event time since which the verdict that would
    # change the warning has held: past the promise while it is not open (pending), back on
    # schedule while it is (clearing). None when nothing is about to change.
    at_risk_since: int | None = None
    # The scan_ids of ``scans``, for a duplicate check in O(1) (issue 27). Not pickled.
    scan_ids: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        if self.scans and not self.scan_ids:
            self.scan_ids = {s.scan_id for s in self.scans}

    def __getstate__(self) -> tuple[None, dict[str, Any]]:
        return None, {name: getattr(self, name) for name in _PICKLED_FIELDS}

    def __setstate__(self, state: Any) -> None:
        """Load ``(None, {field: value})`` of this or an older version (or a plain dict)."""
        values = state[1] if isinstance(state, tuple) else state
        for name, default in _PICKLED_DEFAULTS:
            setattr(self, name, values[name] if name in values else default())
        self.scan_ids = {s.scan_id for s in self.scans}


_PICKLED_FIELDS = tuple(f.name for f in fields(ShipmentState) if f.name != "scan_ids")
# (name, a function giving its default) of each pickled field, for fields a pickle lacks.
_PICKLED_DEFAULTS: tuple[tuple[str, Callable[[], Any]], ...] = tuple(
    (f.name, f.default_factory if callable(f.default_factory) else (lambda v=f.default: v))  # type: ignore[misc]
    for f in fields(ShipmentState)
    if f.name != "scan_ids"
)


@dataclass(slots=True)
class StepCounts:
    """Per-call counts the adapter turns into metrics."""

    duplicates: int = 0
    late: int = 0
    # New scans that arrived with their shipment holding max_scans_per_shipment: each made room
    # by evicting the oldest scan no fact rests on, or was itself dropped (over_cap_dropped).
    over_cap: int = 0
    over_cap_dropped: int = 0


@dataclass(frozen=True, slots=True)
class Facts:
    """What the known scans (``ts <= t``) say about the shipment."""

    picked_up: bool
    promised_by: int | None
    dest: tuple[float, float] | None
    delivered_ts: int | None
    region: str
    truck_id: str | None
    last_scan_ts: int | None
    position: tuple[float, float] | None
    hub_arrival: Scan | None  # latest ARRIVED_HUB not followed by a departure
    attempts_ts: int | None  # when the failed-attempts rule first held


@dataclass(frozen=True, slots=True)
class Incident:
    cls: str
    start_ts: int  # event time at which the condition (or its current band) began
    severity: int  # delay severity for shipment_late, 0 for the fixed-severity classes
    summary: str
    details: dict[str, object]


_DEPARTURES = (ScanType.DEPARTED_HUB, ScanType.OUT_FOR_DELIVERY, ScanType.DELIVERED)


def _scan_key(s: Scan) -> tuple[int, str]:
    return (s.ts, s.scan_id)


def _known(state: ShipmentState, t: int) -> list[Scan]:
    """The scans with ``ts <= t`` (scan_ids never hold U+10FFFF, so it sorts after them)."""
    return state.scans[: bisect.bisect_right(state.scans, (t, "\U0010ffff"), key=_scan_key)]


def facts(state: ShipmentState, t: int, cfg: DelayConfig) -> Facts:
    """Derive the shipment's facts from its scans with ``ts <= t`` (a function of the set).

    :func:`_pinned` names the scans these rest on; a change here needs the same change there.
    """
    known = _known(state, t)
    picked = next((s for s in known if s.type is ScanType.PICKED_UP), None)
    promised = _promised_by(known)
    dest_scan = next(
        (
            s
            for s in ([picked] if picked else []) + known
            if s.dest_lat is not None and s.dest_lng is not None
        ),
        None,
    )
    delivered = next((s.ts for s in known if s.type is ScanType.DELIVERED), None)
    located = [s for s in known if s.lat is not None and s.lng is not None]
    origin = (
        picked
        if picked is not None and picked.lat is not None
        else (located[0] if located else None)
    )
    region = OTHER_REGION
    if origin is not None and origin.lat is not None and origin.lng is not None:
        region = cfg.region_of(origin.lat, origin.lng)
    truck = next((s.truck_id for s in reversed(known) if s.truck_id), None)
    last = located[-1] if located else None
    hub_events = [s for s in known if s.type is ScanType.ARRIVED_HUB or s.type in _DEPARTURES]
    # A departure at the same ts as an arrival counts as after it.
    latest_hub = max(
        hub_events, key=lambda s: (s.ts, s.type is not ScanType.ARRIVED_HUB), default=None
    )
    return Facts(
        picked_up=picked is not None,
        promised_by=promised,
        dest=(dest_scan.dest_lat, dest_scan.dest_lng)  # type: ignore[arg-type]
        if dest_scan
        else None,
        delivered_ts=delivered,
        region=region,
        truck_id=truck,
        last_scan_ts=known[-1].ts if known else None,
        position=(last.lat, last.lng) if last else None,  # type: ignore[arg-type]
        hub_arrival=latest_hub if latest_hub and latest_hub.type is ScanType.ARRIVED_HUB else None,
        attempts_ts=_attempts_ts(state, known, t, cfg),
    )


def _promised_by(known: list[Scan]) -> int | None:
    """The SLA deadline: from the earliest PICKED_UP, else the earliest scan that has one."""
    picked = next((s for s in known if s.type is ScanType.PICKED_UP), None)
    if picked is not None and picked.promised_by is not None:
        return picked.promised_by
    return next((s.promised_by for s in known if s.promised_by is not None), None)


def _attempts_ts(state: ShipmentState, known: list[Scan], t: int, cfg: DelayConfig) -> int | None:
    found = [m.last_ts for m in state.matches if m.last_ts <= t]
    if cfg.attempts_from_scans:
        failed = [s.ts for s in known if s.type is ScanType.DELIVERY_ATTEMPT_FAILED]
        n = max(cfg.failed_attempts, 1)
        for i in range(n - 1, len(failed)):
            if failed[i] - failed[i - n + 1] <= cfg.failed_attempts_within_s * 1000:
                found.append(failed[i])
                break
    return min(found, default=None)


def _fix_for(state: ShipmentState, f: Facts, t: int) -> TruckFix | None:
    """The assigned truck's newest fix at or before ``t`` and before the deadline (after the
    deadline the shipment is late, and the warning keeps its last pre-deadline verdict)."""
    if f.truck_id is None or f.promised_by is None:
        return None
    limit = min(t, f.promised_by)
    for fix in reversed(state.fixes):
        if fix.ts <= limit and fix.truck_id == f.truck_id:
            return fix
    return None


@dataclass(frozen=True, slots=True)
class Estimate:
    """What one truck fix says about the shipment's promise."""

    fix: TruckFix
    remaining_km: float
    eta_ts: int | None  # None: the truck is stationary, there is no ETA
    verdict: str  # RISK, CLEAR or BETWEEN


def estimate(
    fix: TruckFix, dest: tuple[float, float], promised_by: int, cfg: DelayConfig
) -> Estimate:
    """The arrival estimate from the fix: at the truck's average speed over the great-circle
    rest, or none if the truck is stationary (slower than ``at_risk_min_speed_kph``: its
    average says nothing about when it will move again). A stationary truck's shipment is at
    risk only if the truck would miss the promise even leaving now at
    ``at_risk_resume_speed_kph``, so loading at a hub with hours to spare warns nobody."""
    km = haversine_km(fix.lat, fix.lng, dest[0], dest[1])
    if km <= cfg.at_risk_arrived_km:
        return Estimate(fix, km, fix.ts, CLEAR)
    threshold = promised_by + cfg.at_risk_margin_s * 1000
    speed = fix.avg_speed_kph
    eta: int | None = None
    if speed >= cfg.at_risk_min_speed_kph:
        eta = fix.ts + round(km / speed * 3_600_000)
        judged = eta
    else:
        judged = fix.ts + round(km / cfg.at_risk_resume_speed_kph * 3_600_000)
    if judged > threshold:
        verdict = RISK
    elif judged <= threshold - cfg.at_risk_hysteresis_s * 1000:
        verdict = CLEAR
    else:
        verdict = BETWEEN
    return Estimate(fix, km, eta, verdict)


def expires_at(f: Facts, cfg: DelayConfig) -> int | None:
    """When the state of a shipment never delivered expires: ``expire_after_promise_s`` after
    the later of its promise and its latest scan, or after its latest scan when it has no
    promise. None when delivered (``retain_after_delivery_s`` applies) or never scanned.

    The latest scan counts too so that a shipment still being scanned long after its promise
    (lost, then found) keeps its late alert; it also means a scan never waits in a state due to
    expire before it (see :func:`_restart`)."""
    if f.delivered_ts is not None or f.last_scan_ts is None:
        return None
    anchor = f.last_scan_ts if f.promised_by is None else max(f.promised_by, f.last_scan_ts)
    return anchor + cfg.expire_after_promise_s * 1000


def _expired(f: Facts, t: int, cfg: DelayConfig) -> bool:
    due = expires_at(f, cfg)
    return due is not None and t >= due


def desired(
    state: ShipmentState, f: Facts, t: int, cfg: DelayConfig, *, expire: bool = True
) -> dict[str, Incident]:
    """The incidents that should be open at event time ``t`` (none once expired, if
    ``expire``)."""
    out: dict[str, Incident] = {}
    if f.delivered_ts is not None or f.last_scan_ts is None or (expire and _expired(f, t, cfg)):
        return out
    sid = state.shipment_id
    p = f.promised_by
    if p is not None and t > p:
        late_ms = t - p
        sev = delay_severity(late_ms, cfg.severity_bands_s)
        band_start = p + 1 if sev == 1 else p + cfg.severity_bands_s[sev - 2] * 1000 + 1
        how = "late" if sev == 1 else f"more than {format_duration(band_start - 1 - p)} late"
        out[LATE] = Incident(
            LATE,
            band_start,
            sev,
            f"Shipment {sid} is {how} (promised {iso8601(p)})",
            {"delay_severity": sev, "late_by_s": (band_start - p) // 1000, "promised_by": p},
        )
    if _at_risk_wanted(state, f, t, cfg):
        out[AT_RISK] = _at_risk_incident(state, f, t, cfg)
    if f.hub_arrival is not None:
        due = f.hub_arrival.ts + cfg.stuck_after_s * 1000
        if t >= due:
            out[STUCK] = Incident(
                STUCK,
                due,
                0,
                f"Shipment {sid} has been at hub {f.hub_arrival.hub_id or '?'} for "
                f"{format_duration(cfg.stuck_after_s * 1000)} without leaving",
                {"hub_id": f.hub_arrival.hub_id, "arrived_ts": f.hub_arrival.ts},
            )
    due = f.last_scan_ts + cfg.no_scan_after_s * 1000
    if t >= due:
        out[NO_SCAN] = Incident(
            NO_SCAN,
            due,
            0,
            f"Shipment {sid} has had no scan for {format_duration(cfg.no_scan_after_s * 1000)}",
            {"last_scan_ts": f.last_scan_ts},
        )
    if f.attempts_ts is not None:
        out[ATTEMPTS] = _attempts_incident(sid, f.attempts_ts, cfg)
    return out


def _estimate_at(state: ShipmentState, f: Facts, t: int, cfg: DelayConfig) -> Estimate | None:
    """The estimate from the assigned truck's fix in effect at ``t``; None if there is none
    (no truck, fix, destination, promise or pick-up yet)."""
    fix = _fix_for(state, f, t)
    if fix is None or f.dest is None or not f.picked_up or f.promised_by is None:
        return None
    return estimate(fix, f.dest, f.promised_by, cfg)


def _track_at_risk(state: ShipmentState, f: Facts, t: int, cfg: DelayConfig) -> None:
    """Note since when the verdict that would change the warning has held: past the promise
    while it is not open, back on schedule (or no estimate at all) while it is. Called at every
    instant an input takes effect, in event-time order, so ``t`` is when the verdict began."""
    if f.delivered_ts is not None:  # resolved by the delivery, never raised after it
        state.at_risk_since = None
        return
    est = _estimate_at(state, f, t, cfg)
    verdict = est.verdict if est is not None else CLEAR
    changing = verdict == (CLEAR if AT_RISK in state.open else RISK)
    if not changing:
        state.at_risk_since = None
    elif state.at_risk_since is None:
        state.at_risk_since = t


def _at_risk_wait_ms(state: ShipmentState, cfg: DelayConfig) -> int:
    """How long the pending change must hold: ``for`` to trigger, ``keep_firing_for`` to resolve."""
    return (cfg.at_risk_keep_firing_for_s if AT_RISK in state.open else cfg.at_risk_for_s) * 1000


def _at_risk_wanted(state: ShipmentState, f: Facts, t: int, cfg: DelayConfig) -> bool:
    """Whether the warning should be open at ``t`` (:func:`_track_at_risk` has run at ``t``).
    After the promise it stays as it was: ``shipment_late`` has taken over."""
    is_open = AT_RISK in state.open
    since = state.at_risk_since
    if f.promised_by is None or t > f.promised_by or since is None:
        return is_open
    return is_open != (t >= since + _at_risk_wait_ms(state, cfg))


def _at_risk_incident(state: ShipmentState, f: Facts, t: int, cfg: DelayConfig) -> Incident:
    """The warning, worded from the fix in effect at ``t`` (a trigger always has one)."""
    sid, p = state.shipment_id, f.promised_by
    est = _estimate_at(state, f, t, cfg)
    start = t if state.at_risk_since is None else state.at_risk_since + cfg.at_risk_for_s * 1000
    if est is None or p is None:  # open, and staying so: reconcile sends nothing
        return Incident(AT_RISK, start, 0, f"Shipment {sid} at risk", {})
    truck = est.fix.truck_id
    if est.eta_ts is None:
        how = (
            f"truck {truck} is stationary (under {cfg.at_risk_min_speed_kph:g} km/h), no ETA, "
            f"{est.remaining_km:.1f} km to go"
        )
    else:
        how = f"truck {truck} arrives {iso8601(est.eta_ts)} at {est.fix.avg_speed_kph:g} km/h"
    return Incident(
        AT_RISK,
        start,
        0,
        f"Shipment {sid} at risk: {how}, promised {iso8601(p)}",
        {
            "promised_by": p,
            "eta_ts": est.eta_ts,
            "avg_speed_kph": est.fix.avg_speed_kph,
            "remaining_km": round(est.remaining_km, 1),
        },
    )


def _attempts_incident(sid: str, ts: int, cfg: DelayConfig) -> Incident:
    return Incident(
        ATTEMPTS,
        ts,
        0,
        f"Shipment {sid}: {cfg.failed_attempts} or more failed delivery attempts "
        f"within {cfg.failed_attempts_within_s // 3600} h",
        {},
    )


def _alert(
    state: ShipmentState,
    f: Facts,
    action: str,
    cls: str,
    ts: int,
    severity: str,
    summary: str,
    details: dict[str, object],
) -> AlertEvent:
    sid = state.shipment_id
    custom: dict[str, object] = {
        "shipment_id": sid,
        "truck_id": f.truck_id,
        **details,
        "event_ts": ts,
    }
    if f.position is not None:
        custom["lat"], custom["lng"] = f.position
    return AlertEvent(
        event_action=action,
        alert_class=cls,
        subject_id=sid,
        summary=summary,
        source=SOURCE,
        severity=severity,
        event_ts=ts,
        component=f"shipment:{sid}",
        group=f.region,
        custom_details=custom,
    )


def _severity_text(cls: str, sev: int) -> str:
    return pagerduty_severity(sev) if cls == LATE else FIXED_SEVERITY[cls]


def _resolve_reason(cls: str, f: Facts, expired: bool, cfg: DelayConfig) -> str:
    if f.delivered_ts is not None:
        return f"delivered at {iso8601(f.delivered_ts)}"
    if expired:
        after = format_duration(cfg.expire_after_promise_s * 1000)
        return f"no longer tracked: no delivery scan {after} after its promise or last scan"
    return {
        LATE: "no longer late",
        AT_RISK: "back on schedule",
        STUCK: "left the hub",
        NO_SCAN: "scanned again",
        ATTEMPTS: "attempts cleared",
    }[cls]


def _reconcile(
    state: ShipmentState,
    t: int,
    cfg: DelayConfig,
    cause_ts: int,
    out: list[Output],
    expire: bool = True,
) -> bool:
    """Emit the differences between what should be true at ``t`` and what was reported.
    True if the state has expired at ``t`` (everything resolved; the caller restarts it)."""
    f = facts(state, t, cfg)
    expired = expire and _expired(f, t, cfg)
    _track_at_risk(state, f, t, cfg)
    want = desired(state, f, t, cfg, expire=expire)
    sid = state.shipment_id
    for cls in CLASSES:
        inc, have = want.get(cls), state.open.get(cls)
        if inc is not None and (have is None or (cls == LATE and have != inc.severity)):
            # Stamped when the condition began, but never before the input that revealed it
            # (a pickup scanned after its own deadline is late from that scan on).
            out.append(
                _alert(
                    state,
                    f,
                    "trigger",
                    cls,
                    max(inc.start_ts, cause_ts),
                    _severity_text(cls, inc.severity),
                    inc.summary,
                    inc.details,
                )
            )
            state.open[cls] = inc.severity
            if cls == AT_RISK:
                state.at_risk_since = None
            if cls == ATTEMPTS:
                state.attempts_alerted = True
        elif inc is None and have is not None:
            details: dict[str, object] = {"reason": "expired"} if expired else {}
            if cls == LATE:
                details["delay_severity"] = have
            out.append(
                _alert(
                    state,
                    f,
                    "resolve",
                    cls,
                    cause_ts,
                    _severity_text(cls, have),
                    f"Shipment {sid} {cls}: resolved, {_resolve_reason(cls, f, expired, cfg)}",
                    details,
                )
            )
            del state.open[cls]
            if cls == AT_RISK:
                state.at_risk_since = None
    score = want[LATE].severity if LATE in want else 0
    if score != state.score:
        out.append(DelayScore(sid, score) if score else DelayCleared(sid))
        state.score = score
    if f.picked_up and state.counted_region != f.region:
        out.append(RegionShipmentCounted(f.region, sid))
        state.counted_region = f.region
    hours: tuple[str, float] | None = None
    if f.delivered_ts is not None and f.promised_by is not None and f.delivered_ts > f.promised_by:
        hours = (f.region, round((f.delivered_ts - f.promised_by) / 3_600_000, 6))
    if hours != state.delay_hours:
        if hours is None:
            assert state.delay_hours is not None
            out.append(RegionDelayHours(state.delay_hours[0], sid, 0.0))
        else:
            out.append(RegionDelayHours(hours[0], sid, hours[1]))
        state.delay_hours = hours
    return expired


def _restart(state: ShipmentState) -> None:
    """After expiry (everything resolved, `delays` cleared): forget what was processed. Inputs
    still ahead of the processed time stay, as the first inputs of a state started afresh, which
    is what they would have met had they arrived after the adapter dropped this one."""
    now = state.processed_until
    state.scans = [s for s in state.scans if s.ts > now]
    state.scan_ids = {s.scan_id for s in state.scans}
    state.fixes = [x for x in state.fixes if x.ts > now]
    state.matches = [m for m in state.matches if m.last_ts > now]
    state.open, state.score, state.counted_region = {}, 0, None
    state.delay_hours, state.attempts_alerted = None, False
    state.at_risk_since = None


def _fix_key(x: TruckFix) -> tuple[int, str, float, float, float]:
    """Fixes in time order, ties broken by content: the newest fix (and so the ETA) must not
    depend on which of two equal-time fixes arrived first."""
    return (x.ts, x.truck_id, x.avg_speed_kph, x.lat, x.lng)


def _pinned(known: list[Scan], cfg: DelayConfig) -> set[str]:
    """The scan_ids of the processed scans (``known``, in order) that :func:`facts` rests on at
    the processed time and after: the first scan of each kind it takes the first of, the latest
    of each kind it takes the latest of, and the failed attempts of the first window of
    ``failed_attempts`` (none yet: the latest ones, from which a window may still end).

    Removing any other processed scan changes no fact at any time from the processed one on,
    nor after a late scan arrives (the first and latest of a kind then compare with it alone);
    except that a late failed attempt could have formed a window with a removed one."""
    pins: set[str] = set()
    firsts = (
        lambda s: s.type is ScanType.PICKED_UP,
        lambda s: s.promised_by is not None,
        lambda s: s.dest_lat is not None and s.dest_lng is not None,
        lambda s: s.lat is not None and s.lng is not None,
        lambda s: s.type is ScanType.DELIVERED,
    )
    for pick in firsts:
        first = next((s for s in known if pick(s)), None)
        if first is not None:
            pins.add(first.scan_id)
    lasts = (
        lambda s: True,
        lambda s: bool(s.truck_id),
        lambda s: s.lat is not None and s.lng is not None,
    )
    for pick in lasts:
        last = next((s for s in reversed(known) if pick(s)), None)
        if last is not None:
            pins.add(last.scan_id)
    hub_events = [s for s in known if s.type is ScanType.ARRIVED_HUB or s.type in _DEPARTURES]
    if hub_events:
        pins.add(max(hub_events, key=lambda s: (s.ts, s.type is not ScanType.ARRIVED_HUB)).scan_id)
    failed = [s for s in known if s.type is ScanType.DELIVERY_ATTEMPT_FAILED]
    n = max(cfg.failed_attempts, 1)
    window = failed[len(failed) - n + 1 :] if n > 1 else []
    for i in range(n - 1, len(failed)):
        if failed[i].ts - failed[i - n + 1].ts <= cfg.failed_attempts_within_s * 1000:
            window = failed[i - n + 1 : i + 1]
            break
    pins.update(s.scan_id for s in window)
    return pins


def _insert_scan(state: ShipmentState, scan: Scan, cfg: DelayConfig, counts: StepCounts) -> bool:
    """Add a scan; False if it changes nothing (a duplicate, or dropped over the cap).

    Duplicates: a set of the scan_ids held, so the check costs the same however many scans a
    shipment has. The contract's "a scan_id seen before changes nothing" holds for the scans
    the state holds: all of them while the shipment has at most ``max_scans_per_shipment``
    scans and its state lives (until :func:`finished`: retention after delivery, expiry).

    Over the cap (a flood of distinct scan_ids, which no real parcel gets), the new scan makes
    room by evicting the oldest processed scan no fact rests on (:func:`_pinned`): what the
    shipment reports does not change, and its newest scans (a delivery among them) still
    count. With none to evict (the cap is full of scans ahead of the processed time, or of
    pinned ones), the newcomer itself is dropped. An evicted scan_id is forgotten: the scan
    sent again is taken as new, and being old it is evicted again or changes no fact."""
    if scan.scan_id in state.scan_ids:
        counts.duplicates += 1
        return False
    bisect.insort(state.scans, scan, key=_scan_key)
    state.scan_ids.add(scan.scan_id)
    if len(state.scans) <= cfg.max_scans_per_shipment:
        return True
    counts.over_cap += 1
    known = _known(state, state.processed_until)
    pins = _pinned(known, cfg)
    victim = next((s for s in known if s.scan_id not in pins), scan)
    del state.scans[bisect.bisect_left(state.scans, _scan_key(victim), key=_scan_key)]
    state.scan_ids.discard(victim.scan_id)
    if victim is scan:
        counts.over_cap_dropped += 1
        return False
    return True


def _insert(state: ShipmentState, event: Event, cfg: DelayConfig, counts: StepCounts) -> bool:
    """Add an input to the state; False if it changes nothing (a duplicate, say)."""
    if isinstance(event, Scan):
        return _insert_scan(state, event, cfg, counts)
    if isinstance(event, TruckFix):
        for i, x in enumerate(state.fixes):
            if x.ts == event.ts and x.truck_id == event.truck_id:
                if _fix_key(event) <= _fix_key(x):
                    counts.duplicates += 1
                    return False
                # Same truck and time, other values: the greater one stays, whichever came first.
                del state.fixes[i]
                break
        bisect.insort(state.fixes, event, key=_fix_key)
        return True
    # A match: facts take the least last_ts of the matches, so only the earliest-ending one
    # can ever decide; it alone is kept (a later one changes nothing, whenever it comes).
    kept = min(state.matches, key=_match_key, default=None)
    if kept is not None and _match_key(kept) <= _match_key(event):
        if _match_key(kept) == _match_key(event):
            counts.duplicates += 1
        return False
    state.matches = [event]
    return True


def _match_key(m: AttemptsMatch) -> tuple[int, int]:
    return (m.last_ts, m.first_ts)


def step(
    state: ShipmentState | None, event: Event, cfg: DelayConfig, counts: StepCounts | None = None
) -> tuple[ShipmentState, list[Output]]:
    """Arrival of one input. Ahead of the processed time it waits for :func:`advance`; behind
    it (late), it is reconciled at once, which may correct alerts already sent."""
    counts = counts if counts is not None else StepCounts()
    if state is None:
        state = ShipmentState(event.shipment_id)
    out: list[Output] = []
    if not _insert(state, event, cfg, counts) or event.ts > state.processed_until:
        return state, out
    counts.late += 1
    t = state.processed_until
    if isinstance(event, AttemptsMatch) and not state.attempts_alerted:
        f = facts(state, t, cfg)
        if f.delivered_ts is not None and f.delivered_ts >= event.last_ts:
            # The match reached us after the delivery was processed: report the incident and
            # its end, in that order, rather than lose it.
            a = _attempts_incident(state.shipment_id, event.last_ts, cfg)
            out.append(
                _alert(state, f, "trigger", ATTEMPTS, a.start_ts, "error", a.summary, a.details)
            )
            out.append(
                _alert(
                    state,
                    f,
                    "resolve",
                    ATTEMPTS,
                    f.delivered_ts,
                    "error",
                    f"Shipment {state.shipment_id} {ATTEMPTS}: resolved, "
                    f"{_resolve_reason(ATTEMPTS, f, False, cfg)}",
                    {},
                )
            )
            state.attempts_alerted = True
            return state, out
    if _reconcile(state, t, cfg, event.ts, out):  # only a state pickled past its expiry
        _restart(state)
    return state, out


def next_deadline(state: ShipmentState, cfg: DelayConfig, *, expire: bool = True) -> int | None:
    """The next event time after ``processed_until`` at which :func:`advance` has work: the
    adapter's one event-time timer. Never above :data:`MAX_DEADLINE_MS` (a Java long).
    ``expire=False`` leaves the expiry out (see :func:`advance`)."""
    now = state.processed_until
    times: list[int] = []
    for seq in (state.scans, state.fixes):
        i = bisect.bisect_right(seq, now, key=lambda x: x.ts)  # type: ignore[attr-defined]
        if i < len(seq):
            times.append(seq[i].ts)  # type: ignore[attr-defined]
    times += [m.last_ts for m in state.matches if m.last_ts > now]
    if now >= 0 or times:
        f = facts(state, max(now, 0), cfg)
        if f.delivered_ts is not None:
            times.append(f.delivered_ts + cfg.retain_after_delivery_s * 1000)
        elif f.last_scan_ts is not None:
            if f.promised_by is not None:
                step_ms = next_escalation_ms(now - f.promised_by, cfg.severity_bands_s)
                if step_ms is not None:
                    times.append(f.promised_by + step_ms)
                # a pending change of shipment_at_risk (none after the promise: it stays)
                if state.at_risk_since is not None:
                    due = state.at_risk_since + _at_risk_wait_ms(state, cfg)
                    if due <= f.promised_by:
                        times.append(due)
            if f.hub_arrival is not None:
                times.append(f.hub_arrival.ts + cfg.stuck_after_s * 1000)
            times.append(f.last_scan_ts + cfg.no_scan_after_s * 1000)
            expiry = expires_at(f, cfg) if expire else None
            if expiry is not None:  # overdue only in state pickled before expiry existed
                times.append(max(expiry, now + 1))
    later = [x for x in (min(x, MAX_DEADLINE_MS) for x in times) if x > now]
    return min(later) if later else None


def _compact(state: ShipmentState) -> None:
    """Keep only the fixes that can still matter: pending ones, the newest processed one and
    the newest one before the deadline."""
    if len(state.fixes) <= 2:
        return
    promised = _promised_by([s for s in state.scans if s.ts <= state.processed_until])
    done = [x for x in state.fixes if x.ts <= state.processed_until]
    keep = set()
    if done:
        keep.add(id(done[-1]))
        if promised is not None:
            before = [x for x in done if x.ts <= promised]
            if before:
                keep.add(id(before[-1]))
    state.fixes = [x for x in state.fixes if x.ts > state.processed_until or id(x) in keep]


def advance(
    state: ShipmentState, t: int, cfg: DelayConfig, *, expire: bool = True
) -> tuple[ShipmentState, list[Output]]:
    """Event time has reached ``t``: take every buffered input and deadline up to ``t`` in
    event-time order, emitting what changes at each instant.

    ``expire=False`` (and the same to :func:`next_deadline`) at the end of a bounded input,
    where the adapter walks every deadline: that end is not weeks of silence, so it expires
    nothing (as the tracking job's trucks, udfs.truck_state.expire)."""
    out: list[Output] = []
    if t <= state.processed_until:
        return state, out
    while True:
        nxt = next_deadline(state, cfg, expire=expire)
        if nxt is None or nxt > t:
            break
        state.processed_until = nxt
        if _reconcile(state, nxt, cfg, nxt, out, expire):
            _restart(state)
    if state.processed_until < t:
        state.processed_until = t
        if _reconcile(state, t, cfg, t, out, expire):
            _restart(state)
    _compact(state)
    return state, out


def finished(state: ShipmentState, cfg: DelayConfig) -> bool:
    """True when the adapter may drop the state (and forget its timers): every input has taken
    effect and either the shipment was delivered ``retain_after_delivery_s`` ago with nothing
    open, or the state holds no scan (it expired, or it only ever got truck fixes or matches,
    which report nothing without a scan)."""
    now = state.processed_until
    if (
        (state.scans and state.scans[-1].ts > now)
        or any(x.ts > now for x in state.fixes)
        or any(m.last_ts > now for m in state.matches)
    ):
        return False
    if not state.scans:
        return not state.open
    f = facts(state, now, cfg)
    return (
        f.delivered_ts is not None
        and not state.open
        and now >= f.delivered_ts + cfg.retain_after_delivery_s * 1000
    )


def reassert(state: ShipmentState, cfg: DelayConfig) -> list[Output]:
    """What was last reported, again, changing nothing: the trigger of every open incident (as
    it reads at the processed time) and the shipment's absolute Redis values.

    The adapter sends it every ``--alert-refresh-s`` (issue 29): the dispatcher resolves an
    incident its source stops re-asserting, and a trigger lost to a receiver outage is
    delivered at the next refresh; the Redis writer applies the values idempotently, so `delays`
    and the region counts converge on this state whatever a replay down another path (a late
    ``DELIVERED`` read first, a wall-clock fallback that fired before the crash) left there."""
    sid = state.shipment_id
    out: list[Output] = []
    t = state.processed_until
    if state.open and t >= 0:
        f = facts(state, t, cfg)
        want = desired(state, f, t, cfg, expire=False)
        for cls in CLASSES:
            have, inc = state.open.get(cls), want.get(cls)
            if have is None or inc is None:
                continue
            sev, summary = _severity_text(cls, have), inc.summary
            out.append(_alert(state, f, "trigger", cls, inc.start_ts, sev, summary, inc.details))
    out.append(DelayScore(sid, state.score) if state.score else DelayCleared(sid))
    if state.counted_region is not None:
        out.append(RegionShipmentCounted(state.counted_region, sid))
    region, hours = state.delay_hours if state.delay_hours is not None else ("", 0.0)
    out.append(RegionDelayHours(region, sid, hours))  # 0 hours: whatever Redis holds is undone
    return out


def is_open(state: ShipmentState) -> bool:
    """Picked up (or at least scanned) and not delivered, as far as processed time knows."""
    known = [s for s in state.scans if s.ts <= state.processed_until]
    return bool(known) and not any(s.type is ScanType.DELIVERED for s in known)
