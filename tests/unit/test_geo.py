"""Census regions from the state boundaries, and hub geofences (circles and polygons)."""

from __future__ import annotations

import math
import pickle

import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from udfs.geo import (
    OTHER,
    Geofence,
    GeofenceIndex,
    RegionIndex,
    default_regions,
    haversine_km,
    parse_geofences,
    region_of,
)

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("lat", "lng", "region"),
    [
        (47.6062, -122.3321, "WEST"),  # Seattle
        (34.0522, -118.2437, "WEST"),  # Los Angeles
        (40.7128, -74.0060, "NORTHEAST"),  # New York
        (42.3601, -71.0589, "NORTHEAST"),  # Boston
        (41.85, -87.75, "MIDWEST"),  # Chicago (west side)
        (39.0997, -94.5786, "MIDWEST"),  # Kansas City, MO
        (29.7604, -95.3698, "SOUTH"),  # Houston
        (33.7490, -84.3880, "SOUTH"),  # Atlanta
        (0.0, 0.0, "OTHER"),
        (51.5, -0.12, "OTHER"),  # London
        (45.0, -100.0, "MIDWEST"),  # South Dakota
    ],
)
def test_region_of_known_places(lat: float, lng: float, region: str) -> None:
    assert region_of(lat, lng) == region


def test_region_index_survives_pickling_for_flink_workers() -> None:
    clone = pickle.loads(pickle.dumps(default_regions()))
    assert clone.region_of(29.7604, -95.3698) == "SOUTH"
    assert clone.region_of(51.5, -0.12) == "OTHER"


def test_haversine_seattle_portland() -> None:
    assert haversine_km(47.6062, -122.3321, 45.5152, -122.6784) == pytest.approx(233.5, abs=1.5)


FENCES = {
    "type": "FeatureCollection",
    "features": [
        {
            "type": "Feature",
            "properties": {"id": "HUB-SEA", "radius_m": 2000},
            "geometry": {"type": "Point", "coordinates": [-122.3321, 47.6062]},
        },
        {
            "type": "Feature",
            "properties": {"id": "HUB-BOX"},
            "geometry": {
                "type": "Polygon",
                "coordinates": [[[-100, 40], [-99, 40], [-99, 41], [-100, 41], [-100, 40]]],
            },
        },
    ],
}


def test_circle_and_polygon_geofences() -> None:
    idx = GeofenceIndex(parse_geofences(FENCES))
    assert idx.containing(47.6062, -122.3321) == ["HUB-SEA"]
    assert idx.containing(47.6062 + 0.015, -122.3321) == ["HUB-SEA"]  # ~1.7 km north
    assert idx.containing(47.6062 + 0.025, -122.3321) == []  # ~2.8 km north
    assert idx.containing(40.5, -99.5) == ["HUB-BOX"]
    assert idx.containing(41.5, -99.5) == []
    clone = pickle.loads(pickle.dumps(idx))
    assert clone.containing(40.5, -99.5) == ["HUB-BOX"]


def test_point_without_radius_is_rejected() -> None:
    bad = {
        "features": [
            {"properties": {"id": "X"}, "geometry": {"type": "Point", "coordinates": [0, 1]}}
        ]
    }
    with pytest.raises(Exception, match="radius_m"):
        parse_geofences(bad)


@given(st.lists(st.tuples(st.floats(-0.05, 0.05), st.floats(-0.05, 0.05)), min_size=1, max_size=50))
@settings(max_examples=30, deadline=None)
def test_hub_lookup_agrees_with_testing_every_fence(offsets: list[tuple[float, float]]) -> None:
    """The cell cache only skips fences that cannot contain the point: points scattered
    around hub centres (inside, on the edge, outside) get the same answer as a full scan."""
    index = GeofenceIndex.from_file()
    for fence in index.fences[:10]:
        for dlat, dlng in offsets:
            lat, lng = fence.center_lat + dlat, fence.center_lng + dlng
            expected = [f.geofence_id for f in index.fences if f.contains(lat, lng)]
            assert index.containing(lat, lng) == expected


def test_hub_lookup_far_from_every_hub_is_empty() -> None:
    index = GeofenceIndex.from_file()
    assert index.containing(45.0, -110.0) == []
    assert index.fences and index.containing(
        index.fences[0].center_lat, index.fences[0].center_lng
    ) == [index.fences[0].geofence_id]


# Region boundary vertices: points near them land in boundary cells, and on both sides of them.
_BOUNDARY = [
    tuple(c)
    for g in default_regions().shapes().values()
    for c in shapely.get_coordinates(shapely.boundary(g))[::7].tolist()
]
_AROUND_US = st.tuples(st.floats(15, 72), st.floats(-180, -60))
_NEAR_BOUNDARY = st.builds(
    lambda v, dx, dy: (v[1] + dy, v[0] + dx),
    st.sampled_from(_BOUNDARY),
    st.floats(-0.15, 0.15),
    st.floats(-0.15, 0.15),
)
_ON_CELL_EDGES = st.tuples(
    st.integers(150, 720).map(lambda k: k / 10), st.integers(-1800, -600).map(lambda k: k / 10)
)
_POINTS = st.lists(st.one_of(_AROUND_US, _NEAR_BOUNDARY, _ON_CELL_EDGES), min_size=1, max_size=60)


def exact_region(lat: float, lng: float) -> str:
    """Point-in-polygon over every region shape, no cells: what the cells must agree with."""
    for name, geom in default_regions().shapes().items():
        if shapely.contains_xy(geom, lng, lat):
            return name
    return OTHER


def cell_rule(cx: int, cy: int) -> str | None:
    """A cell's class, one scalar shapely call at a time (the rule before `warm` existed): the
    region that contains the cell, else OTHER if none touches it, else None (boundary)."""
    d = RegionIndex.CELL_DEG
    cell = shapely.box(cx * d, cy * d, (cx + 1) * d, (cy + 1) * d)
    shapes = default_regions().shapes()
    inside = [name for name, geom in shapes.items() if geom.contains(cell)]
    if inside:
        return inside[0]
    return None if any(geom.intersects(cell) for geom in shapes.values()) else OTHER


@given(_POINTS)
@settings(max_examples=60, deadline=None)
def test_warmed_regions_match_cold_lookups_and_the_polygons(
    points: list[tuple[float, float]],
) -> None:
    """`warm` classifies a batch of cells the way a lone cold cell is classified, by the cell
    rule: the answers after it equal a fresh index's one-by-one lookups and the exact polygon
    test, across the US, its region boundaries (boundary cells), cell edges and the ocean."""
    shapes = default_regions().shapes()
    warmed, cold = RegionIndex(shapes), RegionIndex(shapes)
    for lat, lng in points[::3]:  # some cells already cached: warm must keep and skip them
        warmed.region_of(lat, lng)
    warmed.warm(points)
    for lat, lng in points:
        assert warmed.region_of(lat, lng) == cold.region_of(lat, lng) == exact_region(lat, lng)
    # cold lookups classify whole blocks, warm the points' cells: where both know a cell, they
    # agree, and every cell of a point is classified by the cell rule
    assert all(warmed._cells[k] == v for k, v in cold._cells.items() if k in warmed._cells)
    own = {
        (math.floor(lng / RegionIndex.CELL_DEG), math.floor(lat / RegionIndex.CELL_DEG))
        for lat, lng in points
    }
    assert {key: cell_class(cold._cells[key]) for key in own} == {
        key: cell_rule(*key) for key in own
    }
    names = list(default_regions().shapes())
    for key in own:  # a boundary cell names every region it touches
        v = cold._cells[key]
        if not isinstance(v, str):
            assert set(touching(*key)) <= {names[i] for i in v}


def cell_class(cached: str | tuple[int, ...]) -> str | None:
    """A cached cell as `cell_rule` names it: its region or OTHER, or None for a boundary."""
    return cached if isinstance(cached, str) else None


def touching(cx: int, cy: int) -> list[str]:
    d = RegionIndex.CELL_DEG
    cell = shapely.box(cx * d, cy * d, (cx + 1) * d, (cy + 1) * d)
    return [name for name, geom in default_regions().shapes().items() if geom.intersects(cell)]


def test_warm_leaves_no_cold_cell_behind() -> None:
    """After `warm`, the bundle's lookups are cache hits (no classification one cell at a time),
    and warming the same points again classifies nothing."""
    index = RegionIndex(default_regions().shapes())
    points = [
        (29.7604, -95.3698),
        (47.6062, -122.3321),
        (51.5, -0.12),
        (40.0, -102.05),
        (29.7604, -95.3698),
    ]
    index.warm(points)

    def no_more(cells: list[tuple[int, int]]) -> list[str | tuple[int, ...]]:
        raise AssertionError(f"classified again: {cells}")

    index._classify = no_more  # type: ignore[method-assign]
    index.warm(points)
    assert [index.region_of(lat, lng) for lat, lng in points[:3]] == ["SOUTH", "WEST", OTHER]


def test_a_cold_lookup_classifies_its_block_in_one_batch() -> None:
    """A cold cell brings its aligned block of BLOCK x BLOCK cells (negative cells too) in one
    `_classify` call; lookups anywhere else in the block classify nothing, and agree with the
    polygons."""
    calls: list[list[tuple[int, int]]] = []

    class Counting(RegionIndex):
        def _classify(self, cells: list[tuple[int, int]]) -> list[str | tuple[int, ...]]:
            calls.append(cells)
            return super()._classify(cells)

    index, b, d = Counting(default_regions().shapes()), RegionIndex.BLOCK, RegionIndex.CELL_DEG
    lat, lng = 39.95, -75.17  # Philadelphia: cell (-752, 399), block from (-752, 392)
    assert index.region_of(lat, lng) == exact_region(lat, lng) == "NORTHEAST"
    assert len(calls) == 1 and sorted(calls[0]) == [
        (x, y) for x in range(-752, -752 + b) for y in range(392, 392 + b)
    ]
    inside = [
        (392 * d + 0.05 + i * 0.1, -752 * d + 0.05 + j * 0.1) for i in range(b) for j in range(b)
    ]
    assert [index.region_of(la, ln) for la, ln in inside] == [
        exact_region(la, ln) for la, ln in inside
    ]
    assert len(calls) == 1
    index.region_of(lat + b * d, lng)  # the block above: one more batch
    assert len(calls) == 2


def test_warmed_region_index_survives_pickling() -> None:
    index = RegionIndex(default_regions().shapes())
    index.warm([(29.7604, -95.3698)])
    clone = pickle.loads(pickle.dumps(index))
    assert clone.region_of(29.7604, -95.3698) == "SOUTH"


def _circle(gid: str, lat: float, lng: float, radius_m: float) -> dict:  # type: ignore[type-arg]
    return {
        "type": "Feature",
        "properties": {"id": gid, "radius_m": radius_m},
        "geometry": {"type": "Point", "coordinates": [lng, lat]},
    }


def _polygon(gid: str, ring: list[list[float]]) -> dict:  # type: ignore[type-arg]
    return {
        "type": "Feature",
        "properties": {"id": gid},
        "geometry": {"type": "Polygon", "coordinates": [ring]},
    }


# Negative coordinates around (0, 0) (floor rounds them down), overlapping fences whose ids sort
# neither in list order nor against it (the answer keeps list order), a circle whose envelope
# crosses the antimeridian and one whose envelope ends just below a cell edge.
SYNTHETIC = parse_geofences(
    {
        "type": "FeatureCollection",
        "features": [
            _polygon(
                "Z-SQUARE",
                [[-0.25, -0.35], [0.15, -0.35], [0.15, 0.05], [-0.25, 0.05], [-0.25, -0.35]],
            ),
            _circle("A-CIRCLE", -0.1, -0.1, 6000),
            _polygon("M-TRIANGLE", [[-0.3, -0.3], [0.0, 0.2], [0.05, -0.4], [-0.3, -0.3]]),
            _circle("DATELINE", -16.5, -179.98, 5000),
            _circle("EDGE", 0.3 - 0.00002 - 5000 / 111_320.0, -0.55, 5000),
        ],
    }
)


def brute_force(fences: list[Geofence], lat: float, lng: float) -> list[str]:
    return [f.geofence_id for f in fences if f.contains(lat, lng)]


class LazyGeofenceIndex(GeofenceIndex):
    """The fallback for fences too big for a grid: cells found one at a time in the STRtree."""

    MAX_CELLS = 0


def _near_a_fence(fences: list[Geofence]) -> st.SearchStrategy[tuple[float, float]]:
    """Points around a fence's envelope, to 1.3 times its half-size from the middle: inside,
    on the edge and just outside, in its cells and their neighbours."""

    def place(fence: Geofence, fx: float, fy: float) -> tuple[float, float]:
        minx, miny, maxx, maxy = fence.geometry.bounds
        return (
            (miny + maxy) / 2 + fy * (maxy - miny) / 2,
            (minx + maxx) / 2 + fx * (maxx - minx) / 2,
        )

    return st.builds(place, st.sampled_from(fences), st.floats(-1.3, 1.3), st.floats(-1.3, 1.3))


@pytest.mark.parametrize("index_class", [GeofenceIndex, LazyGeofenceIndex])
@given(data=st.data())
@settings(max_examples=60, deadline=None)
def test_geofence_grid_agrees_with_testing_every_fence(
    index_class: type[GeofenceIndex], data: st.DataObject
) -> None:
    """The precomputed grid (and the lazy fallback) only skips fences that cannot contain the
    point: around every hub and the synthetic fences, the ids equal a full scan's, in order."""
    for fences in (GeofenceIndex.from_file().fences, SYNTHETIC):
        index = index_class(fences)
        for lat, lng in data.draw(st.lists(_near_a_fence(fences), min_size=1, max_size=30)):
            lng = max(lng, -180.0)  # a GPS longitude; the index does not wrap the antimeridian
            assert index.containing(lat, lng) == brute_force(fences, lat, lng)


def test_overlapping_fences_come_back_in_list_order() -> None:
    assert GeofenceIndex(SYNTHETIC).containing(-0.1, -0.1) == ["Z-SQUARE", "A-CIRCLE", "M-TRIANGLE"]


def test_circle_slightly_wider_than_its_envelope_is_found() -> None:
    """`_circle_envelope` takes 111,320 m per degree, haversine ~111,195: the circle reaches
    ~0.1 % past its envelope. EDGE's envelope ends 2 m below the cell edge at lat 0.3, its
    circle ~5 m above it; the grid's one-cell margin covers that."""
    edge = next(f for f in SYNTHETIC if f.geofence_id == "EDGE")
    lat, lng = 0.30001, edge.center_lng
    assert edge.geometry.bounds[3] < 0.3 < lat and edge.contains(lat, lng)
    assert GeofenceIndex(SYNTHETIC).containing(lat, lng) == ["EDGE"]


def test_a_fence_too_big_for_the_grid_falls_back_to_the_tree() -> None:
    """A polygon of 60 x 50 degrees (300,000 cells) leaves the index on lazy cells, same answers."""
    huge = parse_geofences(
        {
            "features": [
                _polygon("HUGE", [[-130, 20], [-70, 20], [-70, 70], [-130, 70], [-130, 20]]),
                _circle("HUB-SEA", 47.6062, -122.3321, 2000),
            ]
        }
    )
    index = GeofenceIndex(huge)
    assert index._tree is not None  # lazy, not 300,000 grid cells
    assert index.containing(47.6062, -122.3321) == ["HUGE", "HUB-SEA"]
    assert index.containing(45.0, -100.0) == ["HUGE"]
    assert index.containing(10.0, -100.0) == []
    clone = pickle.loads(pickle.dumps(index))
    assert clone.containing(47.6062, -122.3321) == ["HUGE", "HUB-SEA"]


def test_geofence_grid_survives_pickling() -> None:
    clone = pickle.loads(pickle.dumps(GeofenceIndex(SYNTHETIC)))
    assert clone._tree is None  # rebuilt as a grid on the worker
    assert clone.containing(-0.1, -0.1) == ["Z-SQUARE", "A-CIRCLE", "M-TRIANGLE"]
    assert clone.containing(-16.5, -179.99) == ["DATELINE"]
