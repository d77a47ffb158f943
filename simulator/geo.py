"""Great-circle geometry and hub geofences: pure functions, no I/O besides :func:`load_hubs`.

Distances are :func:`udfs.geo.haversine_m`, the formula the jobs use for speed checks."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from simulator import SimulatorError
from udfs.geo import EARTH_RADIUS_M, data_file, haversine_m

HUBS_PATH = data_file("hubs.geojson")  # the file the tracking job loads


def bearing_deg(lat1: float, lng1: float, lat2: float, lng2: float) -> float:
    """Initial compass bearing 0..360 from the first point to the second (the ping heading)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dl = math.radians(lng2 - lng1)
    y = math.sin(dl) * math.cos(p2)
    x = math.cos(p1) * math.sin(p2) - math.sin(p1) * math.cos(p2) * math.cos(dl)
    return (math.degrees(math.atan2(y, x)) + 360.0) % 360.0


def interpolate(
    lat1: float, lng1: float, lat2: float, lng2: float, f: float
) -> tuple[float, float]:
    """The point a fraction ``f`` along the great circle between two points."""
    if f <= 0.0:
        return lat1, lng1
    if f >= 1.0:
        return lat2, lng2
    p1, l1, p2, l2 = map(math.radians, (lat1, lng1, lat2, lng2))
    d = haversine_m(lat1, lng1, lat2, lng2) / EARTH_RADIUS_M
    if d < 1e-12:
        return lat1, lng1
    a = math.sin((1 - f) * d) / math.sin(d)
    b = math.sin(f * d) / math.sin(d)
    x = a * math.cos(p1) * math.cos(l1) + b * math.cos(p2) * math.cos(l2)
    y = a * math.cos(p1) * math.sin(l1) + b * math.cos(p2) * math.sin(l2)
    z = a * math.sin(p1) + b * math.sin(p2)
    return math.degrees(math.atan2(z, math.hypot(x, y))), math.degrees(math.atan2(y, x))


def offset_m(lat: float, lng: float, north_m: float, east_m: float) -> tuple[float, float]:
    """A point a small distance north/east of another (flat-earth, fine below ~50 km)."""
    dlat = north_m / 111_320.0
    dlng = east_m / (111_320.0 * max(0.01, math.cos(math.radians(lat))))
    return lat + dlat, lng + dlng


def point_in_ring(lat: float, lng: float, ring: Sequence[Sequence[float]]) -> bool:
    """Even-odd ray casting on a GeoJSON ring of [lng, lat] pairs."""
    inside = False
    n = len(ring)
    j = n - 1
    for i in range(n):
        xi, yi = ring[i][0], ring[i][1]
        xj, yj = ring[j][0], ring[j][1]
        if (yi > lat) != (yj > lat) and lng < (xj - xi) * (lat - yi) / (yj - yi) + xi:
            inside = not inside
        j = i
    return inside


@dataclass(frozen=True, slots=True)
class Hub:
    """A hub and its geofence: a circle (``radius_m``) or a polygon (``ring``)."""

    id: str
    name: str
    lat: float
    lng: float
    radius_m: float | None = None
    ring: tuple[tuple[float, float], ...] | None = None

    def contains(self, lat: float, lng: float) -> bool:
        """Inside the geofence: what the tracking job debounces into enter/exit."""
        if self.ring is not None:
            return point_in_ring(lat, lng, self.ring)
        assert self.radius_m is not None
        return haversine_m(self.lat, self.lng, lat, lng) <= self.radius_m

    @property
    def reach_m(self) -> float:
        """Largest distance from the centre to the fence (to skip far hubs cheaply)."""
        if self.ring is None:
            return float(self.radius_m or 0.0)
        return max(haversine_m(self.lat, self.lng, la, lo) for lo, la in self.ring)

    @property
    def inner_m(self) -> float:
        """Smallest distance from the centre to the fence: a truck this close is inside."""
        if self.ring is None:
            return float(self.radius_m or 0.0)
        return min(haversine_m(self.lat, self.lng, la, lo) for lo, la in self.ring)


def parse_hubs(doc: dict[str, Any]) -> tuple[Hub, ...]:
    """Hubs from the GeoJSON FeatureCollection; a polygon's centre is its vertex mean."""
    hubs: list[Hub] = []
    for feat in doc.get("features", []):
        props = feat.get("properties") or {}
        geom = feat.get("geometry") or {}
        hub_id, name = props.get("id"), props.get("name", "")
        if not hub_id:
            raise SimulatorError(f"hub feature without an id: {props}")
        if geom.get("type") == "Point":
            lng, lat = geom["coordinates"][:2]
            radius = props.get("radius_m")
            if not radius:
                raise SimulatorError(f"point hub {hub_id} has no radius_m")
            hubs.append(Hub(hub_id, name, float(lat), float(lng), radius_m=float(radius)))
        elif geom.get("type") == "Polygon":
            ring = tuple((float(p[0]), float(p[1])) for p in geom["coordinates"][0])
            pts = ring[:-1] if ring[0] == ring[-1] else ring
            lng = sum(p[0] for p in pts) / len(pts)
            lat = sum(p[1] for p in pts) / len(pts)
            hubs.append(Hub(hub_id, name, lat, lng, ring=ring))
        else:
            raise SimulatorError(f"hub {hub_id}: geometry {geom.get('type')} is not Point/Polygon")
    if not hubs:
        raise SimulatorError("the hub file has no hubs")
    return tuple(hubs)


def load_hubs(path: Path = HUBS_PATH) -> tuple[Hub, ...]:
    """Read the hub geofences (the same file the tracking job loads)."""
    try:
        return parse_hubs(orjson.loads(path.read_bytes()))
    except (OSError, orjson.JSONDecodeError) as exc:
        raise SimulatorError(f"cannot read hubs from {path}: {exc}") from exc
