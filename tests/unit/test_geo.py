"""Census regions from the state boundaries, and hub geofences (circles and polygons)."""

from __future__ import annotations

import pickle

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from udfs.geo import GeofenceIndex, default_regions, haversine_km, parse_geofences, region_of

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(("lat", "lng", "region"), [
    (47.6062, -122.3321, "WEST"),       # Seattle
    (34.0522, -118.2437, "WEST"),       # Los Angeles
    (40.7128, -74.0060, "NORTHEAST"),   # New York
    (42.3601, -71.0589, "NORTHEAST"),   # Boston
    (41.85, -87.75, "MIDWEST"),         # Chicago (west side)
    (39.0997, -94.5786, "MIDWEST"),     # Kansas City, MO
    (29.7604, -95.3698, "SOUTH"),       # Houston
    (33.7490, -84.3880, "SOUTH"),       # Atlanta
    (0.0, 0.0, "OTHER"),
    (51.5, -0.12, "OTHER"),             # London
    (45.0, -100.0, "MIDWEST"),          # South Dakota
])
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
        {"type": "Feature", "properties": {"id": "HUB-SEA", "radius_m": 2000},
         "geometry": {"type": "Point", "coordinates": [-122.3321, 47.6062]}},
        {"type": "Feature", "properties": {"id": "HUB-BOX"},
         "geometry": {"type": "Polygon", "coordinates": [[[-100, 40], [-99, 40], [-99, 41],
                                                          [-100, 41], [-100, 40]]]}},
    ],
}


def test_circle_and_polygon_geofences() -> None:
    idx = GeofenceIndex(parse_geofences(FENCES))
    assert idx.containing(47.6062, -122.3321) == ["HUB-SEA"]
    assert idx.containing(47.6062 + 0.015, -122.3321) == ["HUB-SEA"]   # ~1.7 km north
    assert idx.containing(47.6062 + 0.025, -122.3321) == []            # ~2.8 km north
    assert idx.containing(40.5, -99.5) == ["HUB-BOX"]
    assert idx.containing(41.5, -99.5) == []
    clone = pickle.loads(pickle.dumps(idx))
    assert clone.containing(40.5, -99.5) == ["HUB-BOX"]


def test_point_without_radius_is_rejected() -> None:
    bad = {"features": [{"properties": {"id": "X"},
                         "geometry": {"type": "Point", "coordinates": [0, 1]}}]}
    with pytest.raises(Exception, match="radius_m"):
        parse_geofences(bad)


@given(st.lists(st.tuples(st.floats(-0.05, 0.05), st.floats(-0.05, 0.05)), min_size=1,
                max_size=50))
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
    assert index.fences and index.containing(index.fences[0].center_lat,
                                             index.fences[0].center_lng) == [
        index.fences[0].geofence_id]
