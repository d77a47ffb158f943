"""Ground truth: what the jobs should conclude from a simulated run, and how to score them.

:class:`TruthBuilder` watches the stream the simulator emits (clean pings and scans, and every
fault it injects) and applies the jobs' domain rules to it, so the truth is derived from the
records actually produced, not from the scenario that was intended. Boundary cases (a gap of
almost exactly ten minutes, an alert due in the last minutes of the run) are marked
``required=False``: a job may or may not raise them and is scored neither way.

Scoring is pure too: :func:`score_alerts` takes the truth and the alert events read from
``fleet.alerts`` and returns precision and recall per class.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import orjson

from simulator.config import SimConfig
from simulator.geo import Hub
from udfs.contract import DEFAULT_TOPICS

MIN = 60_000
HOUR = 3_600_000

# The jobs' rules (tracking and delay jobs), mirrored here.
OFFLINE_MS = 10 * MIN
STOPPED_KPH = 3.0
UNPLANNED_MS = 30 * MIN
STUCK_MS = 6 * HOUR
NO_SCAN_MS = 24 * HOUR
FAILED_WINDOW_MS = 48 * HOUR
END_GRACE_MS = 5 * MIN  # alerts due this close to the end of the run are not required

CLASSES = (
    "shipment_late",
    "shipment_at_risk",
    "shipment_stuck_at_hub",
    "shipment_no_scan",
    "delivery_attempts_failed",
    "truck_offline",
    "truck_stopped_unplanned",
)


def delay_severity(late_by_ms: int) -> int:
    """Contract delay severity: up to 30 min 1, 2 h 2, 6 h 3, 24 h 4, more 5."""
    for sev, limit in ((1, 30 * MIN), (2, 2 * HOUR), (3, 6 * HOUR), (4, 24 * HOUR)):
        if late_by_ms <= limit:
            return sev
    return 5


@dataclass
class ExpectedAlert:
    """One incident a correct job raises: trigger between ``earliest_ms`` and ``latest_ms``."""

    alert_class: str
    subject: str
    trigger_ms: int
    earliest_ms: int
    latest_ms: int
    resolve_ms: int | None = None
    required: bool = True
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def dedup_key(self) -> str:
        return f"{self.alert_class}:{self.subject}"


@dataclass
class MalformedRecord:
    """An injected bad record and the dead-letter reason the reader should give it."""

    topic: str
    key: str
    reason: str
    detail: str
    raw: str
    emit_ms: int


@dataclass
class GroundTruth:
    """What the system should conclude; serialised by :meth:`to_json` for ``--truth FILE``."""

    seed: int
    start_ms: int
    end_ms: int
    config: dict[str, Any]
    counts: dict[str, int]
    alerts: list[ExpectedAlert]
    tolerated_classes: list[str]
    malformed: list[MalformedRecord]
    late_records: list[dict[str, Any]]
    geofence: list[dict[str, Any]]
    late_shipments: dict[str, dict[str, Any]]

    def required(self, alert_class: str | None = None) -> list[ExpectedAlert]:
        return [
            a
            for a in self.alerts
            if a.required and (alert_class is None or a.alert_class == alert_class)
        ]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["version"] = 1
        for a, src in zip(d["alerts"], self.alerts, strict=True):
            a["dedup_key"] = src.dedup_key
        return d

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict(), option=orjson.OPT_INDENT_2)

    @staticmethod
    def from_dict(d: dict[str, Any]) -> GroundTruth:
        alerts = [
            ExpectedAlert(**{k: v for k, v in a.items() if k != "dedup_key"}) for a in d["alerts"]
        ]
        return GroundTruth(
            seed=d["seed"],
            start_ms=d["start_ms"],
            end_ms=d["end_ms"],
            config=d["config"],
            counts=d["counts"],
            alerts=alerts,
            tolerated_classes=list(d["tolerated_classes"]),
            malformed=[MalformedRecord(**m) for m in d["malformed"]],
            late_records=d["late_records"],
            geofence=d["geofence"],
            late_shipments=d["late_shipments"],
        )

    @staticmethod
    def from_json(data: bytes | str) -> GroundTruth:
        return GroundTruth.from_dict(orjson.loads(data))


class HubIndex:
    """Which hub geofence holds a point, via a 0.5-degree grid (cheap per ping)."""

    def __init__(self, hubs: Sequence[Hub]) -> None:
        self.cells: dict[tuple[int, int], list[Hub]] = {}
        for h in hubs:
            r = h.reach_m / 111_000 * 2 + 0.01
            for i in range(int((h.lat - r) * 2) - 1, int((h.lat + r) * 2) + 2):
                for j in range(int((h.lng - r * 2) * 2) - 1, int((h.lng + r * 2) * 2) + 2):
                    self.cells.setdefault((i, j), []).append(h)

    def at(self, lat: float, lng: float) -> Hub | None:
        for h in self.cells.get((int(lat * 2), int(lng * 2)), ()):
            if h.contains(lat, lng):
                return h
        return None


@dataclass
class _TruckTrack:
    last_ts: int | None = None
    stop_start: int | None = None
    stop_pos: tuple[float, float] = (0.0, 0.0)
    fence: str | None = None  # debounced: the hub the truck is in
    cand: str | None = None  # hub of the last fix while outside
    outside_run: int = 0


class TruthBuilder:
    """Accumulates what was emitted; :meth:`finalize` turns it into a :class:`GroundTruth`."""

    def __init__(self, config: SimConfig, hubs: Sequence[Hub]) -> None:
        self.cfg = config
        self.index = HubIndex(hubs)
        self.interval_ms = int(config.ping_interval_s * 1000)
        self.tracks: dict[str, _TruckTrack] = {}
        self.alerts: list[ExpectedAlert] = []
        self.geofence: list[dict[str, Any]] = []
        self.scans: dict[str, list[tuple[int, str, dict[str, Any]]]] = {}
        self.shipments: dict[str, dict[str, Any]] = {}
        self.malformed: list[MalformedRecord] = []
        self.late_records: list[dict[str, Any]] = []
        self.counts: dict[str, int] = {
            "gps": 0,
            "scans": 0,
            "gps_duplicates": 0,
            "scans_duplicates": 0,
            "out_of_order": 0,
            "malformed": 0,
            "late": 0,
        }

    # -- fed by the fleet -------------------------------------------------------------------

    def on_ping(self, truck_id: str, ts: int, lat: float, lng: float, speed: float) -> None:
        self.counts["gps"] += 1
        tr = self.tracks.get(truck_id)
        if tr is None:
            tr = self.tracks[truck_id] = _TruckTrack()
        iv = self.interval_ms
        if tr.last_ts is not None and ts - tr.last_ts > OFFLINE_MS:
            gap = ts - tr.last_ts
            due = tr.last_ts + OFFLINE_MS
            self.alerts.append(
                ExpectedAlert(
                    "truck_offline",
                    truck_id,
                    due,
                    due - 2 * iv,
                    due + 2 * iv,
                    ts,
                    required=gap > OFFLINE_MS + 2 * iv,
                    details={"last_ping_ts": tr.last_ts, "silent_s": gap // 1000},
                )
            )
        tr.last_ts = ts
        if speed < STOPPED_KPH:
            if tr.stop_start is None:
                tr.stop_start, tr.stop_pos = ts, (lat, lng)
        elif tr.stop_start is not None:
            self._close_stop(truck_id, tr, ts, resolved=True)
        self._fence(truck_id, tr, ts, lat, lng)

    def _close_stop(self, truck_id: str, tr: _TruckTrack, ts: int, resolved: bool) -> None:
        start = tr.stop_start
        assert start is not None
        tr.stop_start = None
        lasted = ts - start
        if lasted < UNPLANNED_MS - 3 * MIN or self.index.at(*tr.stop_pos) is not None:
            return
        iv = self.interval_ms
        due = start + UNPLANNED_MS
        self.alerts.append(
            ExpectedAlert(
                "truck_stopped_unplanned",
                truck_id,
                due,
                due - 2 * MIN - iv,
                due + 3 * MIN + iv,
                ts if resolved else None,
                required=lasted >= UNPLANNED_MS + 3 * MIN + iv,
                details={
                    "lat": tr.stop_pos[0],
                    "lng": tr.stop_pos[1],
                    "stopped_at": start,
                    "stopped_s": lasted // 1000,
                },
            )
        )

    def _fence(self, truck_id: str, tr: _TruckTrack, ts: int, lat: float, lng: float) -> None:
        hub = self.index.at(lat, lng)
        hid = hub.id if hub else None
        if tr.fence is None:
            if hid is not None and hid == tr.cand:
                tr.fence = hid
                self.geofence.append(
                    {"truck_id": truck_id, "geofence_id": hid, "transition": "enter", "ts": ts}
                )
            tr.cand = hid
        elif hid != tr.fence:
            tr.outside_run += 1
            if tr.outside_run >= 2:
                self.geofence.append(
                    {"truck_id": truck_id, "geofence_id": tr.fence, "transition": "exit", "ts": ts}
                )
                tr.fence, tr.outside_run, tr.cand = None, 0, hid
        else:
            tr.outside_run = 0

    def on_scan(self, value: bytes) -> None:
        self.counts["scans"] += 1
        d = orjson.loads(value)
        self.scans.setdefault(d["shipment_id"], []).append((d["ts"], d["type"], d))

    def on_shipment(self, shipment_id: str, truck_id: str, scenario: str, promised: int) -> None:
        self.shipments[shipment_id] = {
            "truck_id": truck_id,
            "scenario": scenario,
            "promised_by": promised,
        }

    # -- fed by the fault injector ----------------------------------------------------------

    def on_malformed(self, m: MalformedRecord) -> None:
        self.counts["malformed"] += 1
        self.malformed.append(m)

    def on_duplicate(self, topic: str) -> None:
        self.counts[f"{topic}_duplicates"] += 1

    def on_reordered(self) -> None:
        self.counts["out_of_order"] += 1

    def on_late(self, topic: str, key: str, ts: int, emit_ms: int) -> None:
        self.counts["late"] += 1
        self.late_records.append({"topic": topic, "key": key, "ts": ts, "emit_ms": emit_ms})

    # -- the verdict ------------------------------------------------------------------------

    def finalize(self, end_ms: int) -> GroundTruth:
        iv = self.interval_ms
        for truck_id, tr in self.tracks.items():
            if tr.last_ts is not None and end_ms - tr.last_ts > OFFLINE_MS:
                due = tr.last_ts + OFFLINE_MS
                self.alerts.append(
                    ExpectedAlert(
                        "truck_offline",
                        truck_id,
                        due,
                        due - 2 * iv,
                        due + 2 * iv,
                        None,
                        details={"last_ping_ts": tr.last_ts},
                    )
                )
            if tr.stop_start is not None:
                self._close_stop(truck_id, tr, end_ms, resolved=False)
        late_shipments: dict[str, dict[str, Any]] = {}
        for sid, scans in self.scans.items():
            self._shipment_truth(sid, sorted(scans, key=lambda s: s[0]), end_ms, late_shipments)
        for a in self.alerts:
            if a.trigger_ms > end_ms - END_GRACE_MS:
                a.required = False
        self.alerts.sort(key=lambda a: (a.trigger_ms, a.alert_class, a.subject))
        return GroundTruth(
            seed=self.cfg.seed,
            start_ms=self.cfg.start_ms,
            end_ms=end_ms,
            config=self.cfg.to_dict(),
            counts=dict(self.counts),
            alerts=self.alerts,
            tolerated_classes=["shipment_at_risk"],
            malformed=self.malformed,
            late_records=self.late_records,
            geofence=self.geofence,
            late_shipments=late_shipments,
        )

    def _shipment_truth(
        self,
        sid: str,
        scans: list[tuple[int, str, dict[str, Any]]],
        end_ms: int,
        late_out: dict[str, dict[str, Any]],
    ) -> None:
        pickup = next((d for _, t, d in scans if t == "PICKED_UP"), None)
        delivered = next((ts for ts, t, _ in scans if t == "DELIVERED"), None)
        truck = pickup.get("truck_id") if pickup else None
        info = self.shipments.get(sid, {})
        # shipment_late
        if pickup is not None:
            promised = int(pickup["promised_by"])
            if promised <= end_ms and (delivered is None or delivered > promised):
                late_by = (delivered if delivered is not None else end_ms) - promised
                sev = delay_severity(late_by)
                late_out[sid] = {
                    "promised_by": promised,
                    "delivered_ms": delivered,
                    "late_by_s": late_by // 1000,
                    "max_severity": sev,
                    "truck_id": truck,
                }
                self.alerts.append(
                    ExpectedAlert(
                        "shipment_late",
                        sid,
                        promised,
                        promised,
                        promised + MIN,
                        delivered,
                        required=delivered is None or delivered - promised > MIN,
                        details={
                            "truck_id": truck,
                            "late_by_s": late_by // 1000,
                            "max_severity": sev,
                            "promised_by": promised,
                        },
                    )
                )
                arrived_final = next(
                    (
                        ts
                        for ts, t, d in scans
                        if t == "ARRIVED_HUB" and ts <= promised and info.get("scenario") == "late"
                    ),
                    None,
                )
                if info.get("scenario") == "late" and arrived_final is None:
                    self.alerts.append(
                        ExpectedAlert(
                            "shipment_at_risk",
                            sid,
                            promised,
                            int(pickup["ts"]),
                            promised,
                            None,
                            details={"truck_id": truck, "promised_by": promised},
                        )
                    )
        # shipment_stuck_at_hub
        for i, (ts, t, d) in enumerate(scans):
            if t != "ARRIVED_HUB":
                continue
            nxt = next(
                (
                    ts2
                    for ts2, t2, _ in scans[i + 1 :]
                    if t2 in ("DEPARTED_HUB", "OUT_FOR_DELIVERY")
                ),
                None,
            )
            due = ts + STUCK_MS
            if due <= end_ms and (nxt is None or nxt > due):
                self.alerts.append(
                    ExpectedAlert(
                        "shipment_stuck_at_hub",
                        sid,
                        due,
                        due,
                        due + MIN,
                        nxt,
                        required=nxt is None or nxt - due > MIN,
                        details={"hub_id": d.get("hub_id"), "arrived_ts": ts},
                    )
                )
        # shipment_no_scan
        times = [ts for ts, _, _ in scans]
        for i, ts in enumerate(times):
            if delivered is not None and ts >= delivered:
                break
            nxt_ts = times[i + 1] if i + 1 < len(times) else None
            due = ts + NO_SCAN_MS
            if due <= end_ms and (nxt_ts is None or nxt_ts > due):
                self.alerts.append(
                    ExpectedAlert(
                        "shipment_no_scan",
                        sid,
                        due,
                        due,
                        due + MIN,
                        nxt_ts,
                        required=nxt_ts is None or nxt_ts - due > MIN,
                        details={"last_scan_ts": ts, "truck_id": truck},
                    )
                )
        # delivery_attempts_failed
        fails = [ts for ts, t, _ in scans if t == "DELIVERY_ATTEMPT_FAILED"]
        for i in range(1, len(fails)):
            if fails[i] - fails[i - 1] <= FAILED_WINDOW_MS:
                self.alerts.append(
                    ExpectedAlert(
                        "delivery_attempts_failed",
                        sid,
                        fails[i],
                        fails[i],
                        fails[i] + MIN,
                        delivered,
                        details={"attempts": len(fails), "first_failed_ts": fails[0]},
                    )
                )
                break


# -- scoring -------------------------------------------------------------------------------


@dataclass
class ObservedIncident:
    """Alert events of one dedup key from a trigger to its resolve (escalations folded in)."""

    alert_class: str
    subject: str
    trigger_ms: int
    resolve_ms: int | None = None
    events: int = 1


@dataclass
class ClassScore:
    tp: int = 0
    fp: int = 0
    fn: int = 0

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0


@dataclass
class Score:
    """Per-class counts plus the incidents that did not match, for a useful failure message."""

    per_class: dict[str, ClassScore]
    missed: list[ExpectedAlert]
    unexpected: list[ObservedIncident]

    @property
    def total(self) -> ClassScore:
        c = ClassScore()
        for s in self.per_class.values():
            c.tp, c.fp, c.fn = c.tp + s.tp, c.fp + s.fp, c.fn + s.fn
        return c

    @property
    def precision(self) -> float:
        return self.total.precision

    @property
    def recall(self) -> float:
        return self.total.recall

    @property
    def perfect(self) -> bool:
        return not self.missed and not self.unexpected

    def report(self) -> str:
        lines = [
            f"{k:26} tp={v.tp:5} fp={v.fp:4} fn={v.fn:4} precision={v.precision:.3f} "
            f"recall={v.recall:.3f}"
            for k, v in sorted(self.per_class.items())
        ]
        lines += [f"missed: {m.dedup_key} due {m.trigger_ms}" for m in self.missed[:20]]
        lines += [
            f"unexpected: {u.alert_class}:{u.subject} at {u.trigger_ms}"
            for u in self.unexpected[:20]
        ]
        return "\n".join(lines)


def _event_ms(alert: dict[str, Any]) -> int:
    payload = alert.get("payload", {})
    ts = payload.get("custom_details", {}).get("event_ts")
    if isinstance(ts, int | float):
        return int(ts)
    iso = str(payload.get("timestamp", "")).replace("Z", "+00:00")
    return int(datetime.fromisoformat(iso).timestamp() * 1000)


def observed_incidents(alerts: Iterable[dict[str, Any]]) -> list[ObservedIncident]:
    """Fold alert events (contract shape) into incidents: a trigger opens one per dedup key,
    further triggers are escalations, a resolve closes it."""
    events = sorted(((_event_ms(a), i, a) for i, a in enumerate(alerts)), key=lambda e: e[:2])
    open_: dict[str, ObservedIncident] = {}
    out: list[ObservedIncident] = []
    for ts, _, a in events:
        key = str(a["dedup_key"])
        cls, _, subject = key.partition(":")
        cls = a.get("payload", {}).get("class", cls)
        action = a.get("event_action")
        if action == "trigger":
            inc = open_.get(key)
            if inc is None:
                inc = open_[key] = ObservedIncident(cls, subject, ts)
                out.append(inc)
            else:
                inc.events += 1
        elif action == "resolve" and key in open_:
            open_.pop(key).resolve_ms = ts
    return out


def score_alerts(
    truth: GroundTruth, alerts: Iterable[dict[str, Any]], tolerance_ms: int = 2 * MIN
) -> Score:
    """Match observed incidents to expected ones by dedup key and trigger time (within the
    expected window widened by ``tolerance_ms``). Unmatched required expectations are misses;
    unmatched observations are unexpected, except classes the truth tolerates and incidents
    triggered after the end of the run (silence after the last record is not an outage)."""
    per_class = {c: ClassScore() for c in CLASSES}
    by_key: dict[str, list[ExpectedAlert]] = {}
    for e in truth.alerts:
        by_key.setdefault(e.dedup_key, []).append(e)
    matched: set[int] = set()
    unexpected: list[ObservedIncident] = []
    for inc in observed_incidents(alerts):
        cands = [
            e
            for e in by_key.get(f"{inc.alert_class}:{inc.subject}", [])
            if id(e) not in matched
            and e.earliest_ms - tolerance_ms <= inc.trigger_ms <= e.latest_ms + tolerance_ms
        ]
        score = per_class.setdefault(inc.alert_class, ClassScore())
        if cands:
            best = min(cands, key=lambda e: abs(e.trigger_ms - inc.trigger_ms))
            matched.add(id(best))
            if best.required:
                score.tp += 1
        elif inc.alert_class in truth.tolerated_classes or inc.trigger_ms > truth.end_ms:
            continue
        else:
            score.fp += 1
            unexpected.append(inc)
    missed = [e for e in truth.alerts if e.required and id(e) not in matched]
    for e in missed:
        per_class.setdefault(e.alert_class, ClassScore()).fn += 1
    return Score(per_class, missed, unexpected)


def score_dead_letters(
    truth: GroundTruth,
    dead_letters: Iterable[dict[str, Any]],
    topic_names: dict[str, str] | None = None,
) -> Score:
    """Score ``fleet.dlq`` records against the injected malformed ones, matched by raw text and
    source topic; the class is the reason code. ``topic_names`` maps kind to topic name
    (default ``fleet.gps`` / ``fleet.scans``)."""
    names = topic_names or {"gps": DEFAULT_TOPICS.gps, "scans": DEFAULT_TOPICS.scans}
    want: dict[tuple[str, str], list[MalformedRecord]] = {}
    for m in truth.malformed:
        want.setdefault((names[m.topic], m.raw), []).append(m)
    per_class: dict[str, ClassScore] = {}
    unexpected: list[ObservedIncident] = []
    for dl in dead_letters:
        reason = str(dl.get("reason"))
        score = per_class.setdefault(reason, ClassScore())
        bucket = want.get((str(dl.get("source_topic")), str(dl.get("raw"))), [])
        hit = next((m for m in bucket if m.reason == reason), None)
        if hit is not None:
            bucket.remove(hit)
            score.tp += 1
        else:
            score.fp += 1
            unexpected.append(
                ObservedIncident(reason, str(dl.get("raw"))[:80], int(dl.get("ts", 0)))
            )
    missed_m = [m for bucket in want.values() for m in bucket]
    missed = [
        ExpectedAlert(m.reason, m.key, m.emit_ms, m.emit_ms, m.emit_ms, details={"raw": m.raw})
        for m in missed_m
    ]
    for e in missed:
        per_class.setdefault(e.alert_class, ClassScore()).fn += 1
    return Score(per_class, missed, unexpected)
