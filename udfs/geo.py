"""Geography: great-circle distance, US Census regions and hub geofences.

Regions are the four US Census regions, dissolved with geopandas from the state boundaries
(`udfs/data/us-states.geojson`); hub geofences (circles and polygons) come from a GeoJSON file
and are indexed on a grid of 0.1-degree cells built from their envelopes, so a lookup costs a
dict lookup and an exact test on the few candidates, not a scan of every hub.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import shapely
from numpy.typing import NDArray
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry
from shapely.strtree import STRtree

from udfs import UdfError

DATA_DIR = Path(__file__).resolve().parent / "data"
EARTH_RADIUS_M = 6_371_008.8  # the IUGG mean radius
EARTH_RADIUS_KM = 6371.0088
OTHER = "OTHER"

CENSUS_REGIONS: dict[str, tuple[str, ...]] = {
    "NORTHEAST": (
        "Connecticut",
        "Maine",
        "Massachusetts",
        "New Hampshire",
        "Rhode Island",
        "Vermont",
        "New Jersey",
        "New York",
        "Pennsylvania",
    ),
    "MIDWEST": (
        "Illinois",
        "Indiana",
        "Michigan",
        "Ohio",
        "Wisconsin",
        "Iowa",
        "Kansas",
        "Minnesota",
        "Missouri",
        "Nebraska",
        "North Dakota",
        "South Dakota",
    ),
    "SOUTH": (
        "Delaware",
        "District of Columbia",
        "Florida",
        "Georgia",
        "Maryland",
        "North Carolina",
        "South Carolina",
        "Virginia",
        "West Virginia",
        "Alabama",
        "Kentucky",
        "Mississippi",
        "Tennessee",
        "Arkansas",
        "Louisiana",
        "Oklahoma",
        "Texas",
    ),
    "WEST": (
        "Arizona",
        "Colorado",
        "Idaho",
        "Montana",
        "Nevada",
        "New Mexico",
        "Utah",
        "Wyoming",
        "Alaska",
        "California",
        "Hawaii",
        "Oregon",
        "Washington",
    ),
}
REGIONS: tuple[str, ...] = (*CENSUS_REGIONS, OTHER)


def data_file(name: str) -> Path:
    """A data file shipped inside the ``udfs`` package (package data), by file name: the one
    way other packages reach them, so none depends on where ``udfs`` is installed."""
    path = DATA_DIR / name
    if path.parent != DATA_DIR or name in ("", ".", ".."):
        raise ValueError(f"not a udfs data file name: {name!r}")
    return path


STATES_FILE = data_file("us-states.geojson")
HUBS_FILE = data_file("hubs.geojson")


def haversine_m(
    lat1: float, lng1: float, lat2: float, lng2: float, radius: float = EARTH_RADIUS_M
) -> float:
    """Great-circle distance in metres (in ``radius``'s unit). Plain ``math`` on floats: it
    runs per ping and per position the gateway tests against a circle."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lng2 - lng1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * radius * math.asin(min(1.0, math.sqrt(a)))


def haversine_km(lat1: float, lng1: float, lat2: float, lng2: float) -> float:
    """Great-circle distance in kilometres (bit for bit what the formula gives with the radius
    in kilometres, not metres / 1000)."""
    return haversine_m(lat1, lng1, lat2, lng2, EARTH_RADIUS_KM)


def load_region_shapes(states_file: Path = STATES_FILE) -> dict[str, BaseGeometry]:
    """Dissolve the state polygons into the four Census regions (geopandas)."""
    import geopandas as gpd

    states = gpd.read_file(states_file)
    region_of_state = {s: r for r, names in CENSUS_REGIONS.items() for s in names}
    states["region"] = states["name"].map(region_of_state)
    missing = states.loc[states["region"].isna(), "name"].tolist()
    if missing:
        raise UdfError(f"{states_file}: states without a Census region: {missing}")
    regions = states.dissolve(by="region")
    return {str(name): geom for name, geom in regions.geometry.items()}


class RegionIndex:
    """Point -> Census region, exact against the dissolved polygons.

    Lookups run per GPS ping, so a grid of 0.1-degree cells remembers cells that lie wholly
    inside one region (or wholly outside all): most pings then cost a dict lookup, and only
    cells on a boundary pay for the exact point-in-polygon test, against the regions the cell
    remembers as near it (no point object, no tree query per ping). Classifying a cell seen for
    the first time costs shapely calls whose overhead is per call, not per cell, so a cold
    lookup classifies its cell's whole block of ``BLOCK`` x ``BLOCK`` cells in one batch
    (`_classify`): a fleet spread over a country meets each block once, and a warm lookup
    costs nothing more than the dict. `warm` classifies the cells of given points ahead of
    their lookups (the same rule, cell by cell).
    """

    CELL_DEG = 0.1
    # Cells per side of the block a cold lookup classifies (64 cells, about 90 km square).
    BLOCK = 8
    # A boundary cell's candidates: regions whose envelope meets the cell grown by this much,
    # so that a point the floor division puts in the cell is never outside it by a rounding.
    EDGE_MARGIN_DEG = 1e-7

    def __init__(self, shapes: dict[str, BaseGeometry]) -> None:
        self._names = list(shapes)
        self._geoms = [shapes[n] for n in self._names]
        for g in self._geoms:
            shapely.prepare(g)
        self._geom_array = np.array(self._geoms, dtype=object)
        self._tree = STRtree(self._geoms)
        # A cell's region (or OTHER), or for a boundary cell its candidate regions' indexes.
        self._cells: dict[tuple[int, int], str | tuple[int, ...]] = {}

    def _cell_boxes(self, cells: list[tuple[int, int]], margin: float = 0.0) -> NDArray[np.object_]:
        """The cells' boxes in one shapely call, corners as the per-cell box always had them:
        (cx + 1) * d, not cx * d + d, which can differ in the last bit."""
        d, m = self.CELL_DEG, margin
        return shapely.box(
            [cx * d - m for cx, _ in cells],
            [cy * d - m for _, cy in cells],
            [(cx + 1) * d + m for cx, _ in cells],
            [(cy + 1) * d + m for _, cy in cells],
        )

    def _classify(self, cells: list[tuple[int, int]]) -> list[str | tuple[int, ...]]:
        """Per cell: the region that wholly contains it, OTHER if none touches it, else the
        indexes of the regions near it (a boundary cell: `region_of` tests its points exactly,
        against those).

        Shapely's overhead is per call (tens of µs), the work per cell a few µs, so all the
        cells go through one call each: boxes, the STRtree's envelope candidates, containment,
        then intersection for the candidates of cells no region contains (usually none).
        """
        boxes = self._cell_boxes(cells)
        cell_i, geom_i = self._tree.query(boxes)
        inside = shapely.contains(self._geom_array[geom_i], boxes[cell_i]).tolist()
        cell_l, geom_l = cell_i.tolist(), geom_i.tolist()
        region: list[str | None] = [None] * len(cells)
        for c, g, hit in zip(cell_l, geom_l, inside, strict=True):
            if hit and region[c] is None:  # regions do not overlap: at most one hit per cell
                region[c] = self._names[g]
        edge = [k for k, c in enumerate(cell_l) if region[c] is None]
        touched = [False] * len(cells)
        if edge:
            meets = shapely.intersects(self._geom_array[geom_i[edge]], boxes[cell_i[edge]])
            for k, hit in zip(edge, meets.tolist(), strict=True):
                touched[cell_l[k]] |= hit
        classes: list[str | tuple[int, ...]] = [r if r is not None else OTHER for r in region]
        boundary = [c for c, t in enumerate(touched) if t]  # touched: no region contains it
        if boundary:  # their candidates, from the cells grown by EDGE_MARGIN_DEG
            grown = self._cell_boxes([cells[c] for c in boundary], self.EDGE_MARGIN_DEG)
            near: dict[int, list[int]] = {c: [] for c in boundary}
            for b, g in zip(*(a.tolist() for a in self._tree.query(grown)), strict=True):
                near[boundary[b]].append(g)
            for c, regions in near.items():
                classes[c] = tuple(sorted(regions))
        return classes

    def warm(self, points: Iterable[tuple[float, float]]) -> None:
        """Classify the uncached cells of these (lat, lng) points together, so the `region_of`
        calls that follow (a bundle's pings) pay one batch of shapely calls, not one each."""
        d, cached = self.CELL_DEG, self._cells
        keys = {(math.floor(lng / d), math.floor(lat / d)) for lat, lng in points}
        new = [key for key in keys if key not in cached]  # set.difference walks all of cached
        if new:
            cached.update(zip(new, self._classify(new), strict=True))

    def region_of(self, lat: float, lng: float) -> str:
        key = (math.floor(lng / self.CELL_DEG), math.floor(lat / self.CELL_DEG))
        try:
            cached = self._cells[key]
        except KeyError:
            cached = self._classify_block(key)
        if isinstance(cached, str):
            return cached
        for i in cached:
            if shapely.contains_xy(self._geoms[i], lng, lat):
                return self._names[i]
        return OTHER

    def _classify_block(self, key: tuple[int, int]) -> str | tuple[int, ...]:
        """Classify the uncached cells of ``key``'s block (aligned on multiples of ``BLOCK``)
        in one batch; ``key``'s class."""
        b, cells = self.BLOCK, self._cells
        bx, by = key[0] - key[0] % b, key[1] - key[1] % b  # floor: also for negative cells
        new = [(x, y) for x in range(bx, bx + b) for y in range(by, by + b) if (x, y) not in cells]
        cells.update(zip(new, self._classify(new), strict=True))
        return cells[key]

    def shapes(self) -> dict[str, BaseGeometry]:
        return dict(zip(self._names, self._geoms, strict=True))

    def __getstate__(self) -> dict[str, bytes]:
        # Shipped to Flink workers: geometries as WKB, the tree and cell cache rebuilt there.
        return {n: shapely.to_wkb(g) for n, g in zip(self._names, self._geoms, strict=True)}

    def __setstate__(self, state: dict[str, bytes]) -> None:
        self.__init__({n: shapely.from_wkb(b) for n, b in state.items()})  # type: ignore[misc]


@lru_cache(maxsize=1)
def default_regions() -> RegionIndex:
    return RegionIndex(load_region_shapes())


def region_of(lat: float, lng: float) -> str:
    """Census region of a point, ``OTHER`` outside the states."""
    return default_regions().region_of(lat, lng)


@dataclass(frozen=True, slots=True)
class Geofence:
    """A hub geofence: a circle (centre + radius) or a polygon."""

    geofence_id: str
    name: str
    geometry: BaseGeometry
    center_lat: float
    center_lng: float
    radius_m: float | None = None

    def contains(self, lat: float, lng: float) -> bool:
        if self.radius_m is not None:
            return haversine_km(self.center_lat, self.center_lng, lat, lng) * 1000 <= self.radius_m
        return bool(shapely.contains_xy(self.geometry, lng, lat))


def _circle_envelope(lat: float, lng: float, radius_m: float) -> BaseGeometry:
    dlat = radius_m / 111_320.0
    dlng = radius_m / (111_320.0 * max(0.01, math.cos(math.radians(lat))))
    return shapely.box(lng - dlng, lat - dlat, lng + dlng, lat + dlat)


def make_geofence(
    geofence_id: str, name: str, geom: BaseGeometry, radius_m: float | None
) -> Geofence:
    """A geofence from a checked feature: a Point with ``radius_m`` is a circle (its geometry
    the circle's envelope, for the grid), a Polygon or MultiPolygon is itself."""
    if geom.geom_type == "Point":
        assert radius_m is not None
        envelope = _circle_envelope(geom.y, geom.x, radius_m)
        return Geofence(geofence_id, name, envelope, geom.y, geom.x, radius_m)
    shapely.prepare(geom)
    c = geom.centroid
    return Geofence(geofence_id, name, geom, c.y, c.x)


def parse_geofences(geojson: dict) -> list[Geofence]:  # type: ignore[type-arg]
    """Geofences from a FeatureCollection: Point + ``radius_m`` is a circle, Polygon as is.
    (Files, in any format and with every check: :mod:`udfs.geo_files`.)"""
    fences: list[Geofence] = []
    for i, feature in enumerate(geojson.get("features", [])):
        props = feature.get("properties") or {}
        gid = props.get("id")
        if not gid:
            raise UdfError(f"geofence feature {i} has no properties.id")
        geom = shape(feature["geometry"])
        if geom.geom_type == "Point":
            radius = props.get("radius_m")
            if not isinstance(radius, int | float) or radius <= 0:
                raise UdfError(f"geofence {gid}: a Point needs a positive properties.radius_m")
            fences.append(make_geofence(gid, props.get("name", gid), geom, float(radius)))
        elif geom.geom_type in ("Polygon", "MultiPolygon"):
            fences.append(make_geofence(gid, props.get("name", gid), geom, None))
        else:
            raise UdfError(f"geofence {gid}: unsupported geometry {geom.geom_type}")
    return fences


def _cell_span(lo: float, hi: float, cell_deg: float) -> range:
    """Cell numbers covering [lo, hi], widened by one each side against float rounding (and
    against circle envelopes drawn with a slightly different metre-per-degree than haversine's).
    """
    return range(math.floor(lo / cell_deg) - 1, math.floor(hi / cell_deg) + 2)


def _fence_cells(fence: Geofence, cell_deg: float) -> tuple[range, range] | None:
    """The (x, y) cell ranges a fence's envelope covers: empty for an empty geometry, None for
    non-finite bounds (no grid holds those)."""
    geom = fence.geometry
    if geom.is_empty:
        return range(0), range(0)
    minx, miny, maxx, maxy = geom.bounds
    if not all(map(math.isfinite, (minx, miny, maxx, maxy))):
        return None
    return _cell_span(minx, maxx, cell_deg), _cell_span(miny, maxy, cell_deg)


def _fence_grid(
    fences: list[Geofence], cell_deg: float, max_cells: int
) -> dict[tuple[int, int], tuple[Geofence, ...]] | None:
    """Cell -> the fences whose envelope may touch it, in fence order; None past max_cells
    (or for non-finite bounds): the caller then fills cells lazily.

    Built once, so a lookup never calls shapely: a cell absent from the grid has no fence.
    """
    spans: list[tuple[range, range]] = []
    total = 0
    for fence in fences:
        span = _fence_cells(fence, cell_deg)
        if span is None:
            return None
        total += len(span[0]) * len(span[1])
        if total > max_cells:
            return None
        spans.append(span)
    grid: dict[tuple[int, int], list[Geofence]] = {}
    for fence, (xs, ys) in zip(fences, spans, strict=True):
        for cx in xs:
            for cy in ys:
                grid.setdefault((cx, cy), []).append(fence)
    return {cell: tuple(fs) for cell, fs in grid.items()}


class GeofenceIndex:
    """Which hub geofences contain a point.

    Lookups run per GPS ping and almost every ping is far from every hub, so a grid of
    0.1-degree cells holds the fences whose envelopes touch each cell, built at construction
    from the envelopes' bounds: a ping in an empty cell costs a dict lookup, the others an
    exact test on the few fences of their cell. Should the fences cover more than MAX_CELLS
    cells (a huge polygon), the cells are instead filled lazily, one STRtree query per cell.
    """

    CELL_DEG = 0.1
    # A boundary cell's candidates: regions whose envelope meets the cell grown by this much,
    # so that a point the floor division puts in the cell is never outside it by a rounding.
    EDGE_MARGIN_DEG = 1e-7
    MAX_CELLS = 250_000

    def __init__(self, fences: list[Geofence]) -> None:
        self.fences = fences
        grid = _fence_grid(fences, self.CELL_DEG, self.MAX_CELLS)
        # With a grid there is no tree: a cell missing from the grid has no candidates.
        self._tree = STRtree([f.geometry for f in fences]) if grid is None else None
        self._cells: dict[tuple[int, int], tuple[Geofence, ...]] = grid or {}

    def __getstate__(self) -> list[Geofence]:
        return self.fences

    def __setstate__(self, fences: list[Geofence]) -> None:
        for f in fences:
            if f.radius_m is None:
                shapely.prepare(f.geometry)
        self.__init__(fences)  # type: ignore[misc]

    @classmethod
    def from_file(cls, path: Path = HUBS_FILE) -> GeofenceIndex:
        if not path.exists():
            return cls([])
        return cls(parse_geofences(json.loads(path.read_text())))

    def _cell_fences(self, cx: int, cy: int) -> tuple[Geofence, ...]:
        """The lazy path: fences whose envelope touches the cell, from the STRtree."""
        assert self._tree is not None
        d = self.CELL_DEG
        hits = self._tree.query(shapely.box(cx * d, cy * d, (cx + 1) * d, (cy + 1) * d))
        return tuple(self.fences[i] for i in sorted(hits))

    def containing(self, lat: float, lng: float) -> list[str]:
        key = (math.floor(lng / self.CELL_DEG), math.floor(lat / self.CELL_DEG))
        candidates = self._cells.get(key)
        if candidates is None:
            if self._tree is None:
                return []
            candidates = self._cells[key] = self._cell_fences(*key)
        return [f.geofence_id for f in candidates if f.contains(lat, lng)]

    def by_id(self, geofence_id: str) -> Geofence | None:
        for f in self.fences:
            if f.geofence_id == geofence_id:
                return f
        return None
