"""Named areas the gateway filters by: Census regions and hub geofences.

The one place the gateway touches `udfs.geo`, so the source of the shapes can change without
touching the filters. Shapes load lazily (geopandas dissolve takes a moment) and once per
process.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import shapely
from shapely.geometry.base import BaseGeometry

REGION_NAMES: tuple[str, ...] = ("NORTHEAST", "MIDWEST", "SOUTH", "WEST")


@dataclass(frozen=True, slots=True)
class Area:
    """A named area: exact geometry (prepared) and, for circles, centre and radius."""

    name: str
    geometry: BaseGeometry
    center_lat: float = 0.0
    center_lng: float = 0.0
    radius_m: float | None = None


class Areas:
    """Lookup of region and geofence areas by name; injected into filter parsing."""

    def __init__(self, regions: dict[str, BaseGeometry], fences: dict[str, Area]) -> None:
        for g in regions.values():
            shapely.prepare(g)
        self._regions = regions
        self._fences = fences
        self._unions: dict[frozenset[str], BaseGeometry] = {}

    def region(self, name: str) -> BaseGeometry | None:
        return self._regions.get(name)

    def region_names(self) -> list[str]:
        return sorted(self._regions)

    def geofence(self, fence_id: str) -> Area | None:
        return self._fences.get(fence_id)

    def union_of(self, names: frozenset[str]) -> BaseGeometry:
        """One prepared geometry covering the named regions (what a token may see); cached,
        as every subscription of a regional token needs it."""
        cached = self._unions.get(names)
        if cached is not None:
            return cached
        parts = [self._regions[n] for n in sorted(names) if n in self._regions]
        geom = shapely.union_all(parts) if parts else shapely.Polygon()
        shapely.prepare(geom)
        self._unions[names] = geom
        return geom


def default_areas() -> Areas:
    """Regions dissolved from the project's US states file, hubs from its hubs file."""
    return areas_for("")


@lru_cache(maxsize=2)
def areas_for(geofences_file: str) -> Areas:
    """The Census regions (the websocket contract names them) and the geofences of
    ``geofences_file`` (``--geofences-file``, the tracking job's; '': the packaged hubs),
    read and checked by :mod:`udfs.geo_files` (GeoFileError names the file and feature)."""
    from pathlib import Path

    from udfs import geo as ugeo
    from udfs.geo_files import load_geofences

    regions = ugeo.load_region_shapes()
    listed = (
        load_geofences(Path(geofences_file))
        if geofences_file
        else ugeo.GeofenceIndex.from_file().fences
    )
    fences: dict[str, Area] = {}
    for f in listed:
        fences[f.geofence_id] = Area(
            f.geofence_id, f.geometry, f.center_lat, f.center_lng, f.radius_m
        )
    return Areas({k: v for k, v in regions.items() if k in REGION_NAMES}, fences)
