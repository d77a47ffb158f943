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
