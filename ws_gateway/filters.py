"""Subscription filters of the websocket protocol: parsed and validated once, then tested per
position with no I/O.

A filter has exactly one of ``bbox``, ``polygon`` (GeoJSON Polygon/MultiPolygon), ``region``
(Census region), ``geofence`` (hub geofence id; ``hub`` is accepted as an alias) or
``truck_ids``. Its ``envelope`` is what the spatial index and the Redis snapshot query use; the
exact test (polygon, circle) runs only on the candidates the envelope lets through.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Protocol

import shapely
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

from udfs.geo import haversine_m
from ws_gateway import ClientError

BAD_FILTER = "BAD_FILTER"
TRUCK_ID_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
MAX_TRUCK_IDS = 1000
MAX_POLYGON_VERTICES = 10_000
FILTER_KEYS = ("bbox", "polygon", "region", "geofence", "hub", "truck_ids")

Envelope = tuple[float, float, float, float]  # min_lng, min_lat, max_lng, max_lat


class AreaLookup(Protocol):
    """What filter parsing needs from :mod:`ws_gateway.geo` (injected, so tests can fake it)."""

    def region(self, name: str) -> BaseGeometry | None: ...

    def geofence(self, fence_id: str) -> Any: ...


@dataclass(frozen=True, slots=True, eq=False)
class Filter:
    """A validated filter. ``kind`` names the key it came from."""

    kind: str
    envelope: Envelope | None = None
    geometry: BaseGeometry | None = None
    circle: tuple[float, float, float] | None = None  # lat, lng, radius_m
    truck_ids: frozenset[str] = field(default_factory=frozenset)
    name: str = ""

    @property
    def is_geo(self) -> bool:
        return self.envelope is not None

    def contains(self, lat: float, lng: float) -> bool:
        """Is the point inside the area (boundary included)? False for ``truck_ids``."""
        env = self.envelope
        if env is None or not (env[0] <= lng <= env[2] and env[1] <= lat <= env[3]):
            return False
        if self.circle is not None:
            c_lat, c_lng, r = self.circle
            return haversine_m(c_lat, c_lng, lat, lng) <= r
        if self.geometry is not None:
            return bool(shapely.intersects_xy(self.geometry, lng, lat))
        return True

    def matches(self, truck_id: str, lat: float, lng: float) -> bool:
        if self.truck_ids:
            return truck_id in self.truck_ids
        return self.contains(lat, lng)


def _number(v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise ClientError(BAD_FILTER, "bbox needs 4 numbers")
    return float(v)


def parse_bbox(raw: Any) -> Filter:
    if not isinstance(raw, list | tuple) or len(raw) != 4:
        raise ClientError(BAD_FILTER, "bbox needs 4 numbers")
    min_lng, min_lat, max_lng, max_lat = (_number(v) for v in raw)
    if not (-180 <= min_lng <= 180 and -180 <= max_lng <= 180):
        raise ClientError(BAD_FILTER, "bbox longitudes must be within -180..180")
    if not (-90 <= min_lat <= 90 and -90 <= max_lat <= 90):
        raise ClientError(BAD_FILTER, "bbox latitudes must be within -90..90")
    if min_lat >= max_lat:
        raise ClientError(
            BAD_FILTER,
            "bbox is [min_lng, min_lat, max_lng, max_lat]: min_lat must be below max_lat",
        )
    if min_lng >= max_lng:
        raise ClientError(
            BAD_FILTER,
            "bbox min_lng must be below max_lng (a box crossing "
            "the antimeridian must be sent as two subscriptions)",
        )
    return Filter("bbox", envelope=(min_lng, min_lat, max_lng, max_lat))


def parse_polygon(raw: Any) -> Filter:
    if not isinstance(raw, dict) or raw.get("type") not in ("Polygon", "MultiPolygon"):
        raise ClientError(BAD_FILTER, "polygon must be a GeoJSON Polygon or MultiPolygon")
    try:
        geom = shape(raw)
    except Exception as exc:  # noqa: BLE001 - shapely raises many types on bad input
        raise ClientError(BAD_FILTER, f"polygon coordinates are not valid GeoJSON: {exc}") from None
    if geom.is_empty:
        raise ClientError(BAD_FILTER, "polygon is empty")
    if shapely.get_num_coordinates(geom) > MAX_POLYGON_VERTICES:
        raise ClientError(BAD_FILTER, f"polygon has more than {MAX_POLYGON_VERTICES} vertices")
    min_lng, min_lat, max_lng, max_lat = geom.bounds
    if not all(math.isfinite(v) for v in geom.bounds):
        raise ClientError(BAD_FILTER, "polygon coordinates must be finite numbers")
    if min_lng < -180 or max_lng > 180 or min_lat < -90 or max_lat > 90:
        raise ClientError(BAD_FILTER, "polygon coordinates must be [lng, lat] within range")
    if not geom.is_valid:
        raise ClientError(BAD_FILTER, f"polygon is not valid: {shapely.is_valid_reason(geom)}")
    if geom.area <= 0:
        raise ClientError(BAD_FILTER, "polygon has no area")
    shapely.prepare(geom)
    return Filter("polygon", envelope=(min_lng, min_lat, max_lng, max_lat), geometry=geom)


def _geometry_filter(kind: str, name: str, geom: BaseGeometry) -> Filter:
    shapely.prepare(geom)
    return Filter(kind, envelope=tuple(geom.bounds), geometry=geom, name=name)  # type: ignore[arg-type]


def parse_filter(raw: Any, areas: AreaLookup) -> Filter:
    """Validate a client's ``filter`` object; :class:`ClientError` (BAD_FILTER) says why not."""
    if not isinstance(raw, dict):
        raise ClientError(BAD_FILTER, "filter must be an object")
    keys = [k for k in FILTER_KEYS if k in raw]
    unknown = sorted(set(raw) - set(FILTER_KEYS))
    if unknown:
        raise ClientError(
            BAD_FILTER,
            f"unknown filter keys {unknown}; use one of bbox, polygon, region, geofence, truck_ids",
        )
    if len(keys) != 1:
        raise ClientError(
            BAD_FILTER, "filter needs exactly one of bbox, polygon, region, geofence, truck_ids"
        )
    key = keys[0]
    value = raw[key]
    if key == "bbox":
        return parse_bbox(value)
    if key == "polygon":
        return parse_polygon(value)
    if key == "region":
        geom = areas.region(value) if isinstance(value, str) else None
        if geom is None:
            raise ClientError(
                BAD_FILTER, f"unknown region {value!r}; regions are NORTHEAST, MIDWEST, SOUTH, WEST"
            )
        return _geometry_filter("region", value, geom)
    if key in ("geofence", "hub"):
        fence = areas.geofence(value) if isinstance(value, str) else None
        if fence is None:
            raise ClientError(BAD_FILTER, f"unknown geofence {value!r}")
        if fence.radius_m is not None:
            env = tuple(fence.geometry.bounds)
            return Filter(
                "geofence",
                envelope=env,  # type: ignore[arg-type]
                circle=(fence.center_lat, fence.center_lng, fence.radius_m),
                name=value,
            )
        return _geometry_filter("geofence", value, fence.geometry)
    # truck_ids
    if not isinstance(value, list) or not value:
        raise ClientError(BAD_FILTER, "truck_ids must be a non-empty list")
    if len(value) > MAX_TRUCK_IDS:
        raise ClientError(BAD_FILTER, f"at most {MAX_TRUCK_IDS} truck_ids per subscription")
    bad = [v for v in value if not isinstance(v, str) or not TRUCK_ID_RE.match(v)]
    if bad:
        raise ClientError(BAD_FILTER, f"bad truck ids {bad[:3]!r}: 1-64 of [A-Za-z0-9_.-]")
    return Filter("truck_ids", truck_ids=frozenset(value))
