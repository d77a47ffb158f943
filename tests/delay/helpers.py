"""Builders shared by the delay-job tests."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from udfs.models import AlertEvent, Scan, ScanType
from udfs.shipment_state import (
    DelayCleared,
    DelayConfig,
    DelayScore,
    Output,
    RegionDelayHours,
    RegionShipmentCounted,
)

T0 = 1_764_000_000_000  # 2025-11-24T16:00:00Z
MIN = 60_000
HOUR = 3_600_000
SEA = (47.61, -122.33)  # WEST
PDX = (45.52, -122.68)


def region_west(lat: float, lng: float) -> str:
    return "WEST" if lng < -100 else "SOUTH"


CFG = DelayConfig(region_of=region_west)


def scan(sid: str, n: int, typ: ScanType, ts: int, **kw: Any) -> Scan:
    defaults: dict[str, Any] = {}
    if typ is ScanType.PICKED_UP:
        defaults = {
            "promised_by": T0 + 12 * HOUR,
            "lat": SEA[0],
            "lng": SEA[1],
            "dest_lat": PDX[0],
            "dest_lng": PDX[1],
            "truck_id": "T1",
        }
    defaults.update(kw)
    return Scan(scan_id=f"{sid}-{n}", shipment_id=sid, type=typ, ts=ts, **defaults)


def alerts(outputs: Iterable[Output]) -> list[tuple[str, str, int, str]]:
    """(action, class, event_ts, severity) of the alerts, in emission order."""
    return [
        (o.event_action, o.alert_class, o.event_ts, o.severity)
        for o in outputs
        if isinstance(o, AlertEvent)
    ]


class RedisModel:
    """What the delay job's Redis writer does with the effects, as plain dicts."""

    def __init__(self) -> None:
        self.delays: dict[str, int] = {}
        self.region: dict[str, dict[str, float]] = {}
        self.counted: dict[str, str] = {}
        self.hours: dict[str, tuple[str, float]] = {}

    def _add(self, region: str, field: str, x: float) -> None:
        r = self.region.setdefault(region, {})
        r[field] = round(r.get(field, 0.0) + x, 6)

    def apply(self, outputs: Iterable[Output]) -> None:
        for o in outputs:
            if isinstance(o, DelayScore):
                self.delays[f"shipment:{o.shipment_id}"] = o.severity
            elif isinstance(o, DelayCleared):
                self.delays.pop(f"shipment:{o.shipment_id}", None)
            elif isinstance(o, RegionShipmentCounted):
                old = self.counted.get(o.shipment_id)
                if old != o.region:
                    if old is not None:
                        self._add(old, "total_shipments", -1)
                    self._add(o.region, "total_shipments", 1)
                    self.counted[o.shipment_id] = o.region
            elif isinstance(o, RegionDelayHours):
                old_h = self.hours.get(o.shipment_id)
                if old_h is not None:
                    self._add(old_h[0], "total_delay_hours", -old_h[1])
                    del self.hours[o.shipment_id]
                if o.hours:
                    self._add(o.region, "total_delay_hours", o.hours)
                    self.hours[o.shipment_id] = (o.region, o.hours)


def stop_and_go_pings(
    truck_id: str, t0: int, hours: float, drive_min: int = 20, stop_min: int = 20
) -> list[dict[str, Any]]:
    """A ping a minute from SEA towards PDX: ``drive_min`` at 90 km/h, then ``stop_min``
    stopped, and so on. The 30-minute average speed swings between about 0 and 60 km/h, so
    an ETA from it swings across a promise a few hours out (issue 29's flapping)."""
    from udfs.geo import haversine_km

    frac = 90.0 / 60 / haversine_km(*SEA, *PDX)  # of the way per minute at 90 km/h
    lat, lng = SEA
    out: list[dict[str, Any]] = []
    for i in range(int(hours * 60) + 1):
        moving = i % (drive_min + stop_min) < drive_min
        out.append(
            {
                "truck_id": truck_id,
                "ts": t0 + i * MIN,
                "lat": round(lat, 6),
                "lng": round(lng, 6),
                "speed_kph": 90.0 if moving else 0.0,
            }
        )
        if moving:
            lat, lng = lat + (PDX[0] - SEA[0]) * frac, lng + (PDX[1] - SEA[1]) * frac
    return out


def at_risk_model(
    scans: list[Scan],
    pings: list[dict[str, Any]],
    cfg: DelayConfig,
    until: int,
    fix_interval_s: int = 300,
) -> list[tuple[str, int]]:
    """(action, event_ts) of the shipment_at_risk alerts the pure feed and state machine give
    for one truck's pings and one shipment's scans, in event-time order."""
    from udfs.feed_order import apply_in_order, assignment_input, order_key, ping_input
    from udfs.shipment_state import AT_RISK, ShipmentState, advance, step
    from udfs.truck_speed import FeedConfig, TruckFeed

    items = [
        assignment_input(s.shipment_id, s.ts, s.type is not ScanType.DELIVERED)
        for s in scans
        if s.truck_id
    ] + [ping_input(p["ts"], p["lat"], p["lng"], p["speed_kph"]) for p in pings]
    feed = TruckFeed(pings[0]["truck_id"])
    feed_cfg = FeedConfig(fix_interval_s=fix_interval_s)
    fixes = [f for x in sorted(items, key=order_key) for f in apply_in_order(feed, [x], feed_cfg)]
    state: ShipmentState | None = None
    for e in sorted([*scans, *fixes], key=lambda e: e.ts):
        state, _ = step(state, e, cfg)
    assert state is not None
    _, out = advance(state, until, cfg)
    return [
        (o.event_action, o.event_ts)
        for o in out
        if isinstance(o, AlertEvent) and o.alert_class == AT_RISK
    ]
