"""Filter parsing and exact containment (pure)."""

from __future__ import annotations

from typing import Any

import pytest
import shapely

from ws_gateway import ClientError
from ws_gateway.filters import parse_filter
from ws_gateway.geo import Area

pytestmark = pytest.mark.unit


class FakeAreas:
    """A square 'WEST' region and two hub fences: a 2 km circle and a polygon."""

    def __init__(self) -> None:
        self.west = shapely.box(-125, 30, -110, 49)

    def region(self, name: str) -> Any:
        return self.west if name == "WEST" else None

    def geofence(self, fence_id: str) -> Any:
        if fence_id == "HUB-SEA":
            return Area(
                "HUB-SEA", shapely.box(-122.36, 47.58, -122.30, 47.63), 47.6062, -122.3321, 2000.0
            )
        if fence_id == "YARD":
            return Area("YARD", shapely.Polygon([(0, 0), (2, 0), (0, 2)]))
        return None


AREAS = FakeAreas()


def bad(raw: Any) -> str:
    with pytest.raises(ClientError) as info:
        parse_filter(raw, AREAS)
    assert info.value.code == "BAD_FILTER"
    return info.value.message


def test_bbox_contains_inclusive_edges() -> None:
    f = parse_filter({"bbox": [-125.0, 32.0, -114.0, 49.0]}, AREAS)
    assert f.kind == "bbox" and f.envelope == (-125.0, 32.0, -114.0, 49.0)
    assert f.contains(40.0, -120.0)
    assert f.contains(32.0, -125.0)  # corner counts as inside
    assert not f.contains(31.99, -120.0)
    assert not f.contains(40.0, -113.9)


@pytest.mark.parametrize(
    "raw, words",
    [
        ({"bbox": [1, 2, 3]}, "4 numbers"),
        ({"bbox": "nope"}, "4 numbers"),
        ({"bbox": [1, 2, "3", 4]}, "4 numbers"),
        ({"bbox": [1, 2, True, 4]}, "4 numbers"),
        ({"bbox": [0, 0, float("nan"), 1]}, "4 numbers"),
        ({"bbox": [-200, 0, 10, 10]}, "longitudes"),
        ({"bbox": [0, -95, 10, 10]}, "latitudes"),
        ({"bbox": [0, 10, 10, 5]}, "min_lat"),
        ({"bbox": [170, 0, -170, 10]}, "antimeridian"),
        ({}, "exactly one"),
        ({"bbox": [0, 0, 1, 1], "region": "WEST"}, "exactly one"),
        ({"circle": 1}, "unknown filter keys"),
        ("bbox", "must be an object"),
        ({"region": "MARS"}, "unknown region"),
        ({"region": 7}, "unknown region"),
        ({"geofence": "HUB-NOPE"}, "unknown geofence"),
        ({"truck_ids": []}, "non-empty"),
        ({"truck_ids": "T1"}, "non-empty"),
        ({"truck_ids": ["ok", "not ok!"]}, "bad truck ids"),
        ({"truck_ids": [f"T{i}" for i in range(1001)]}, "at most"),
        ({"polygon": {"type": "Point", "coordinates": [0, 0]}}, "Polygon"),
        ({"polygon": {"type": "Polygon", "coordinates": "x"}}, "not valid GeoJSON"),
        ({"polygon": {"type": "Polygon", "coordinates": [[[0, 0], [1, 1]]]}}, "not valid"),
        (
            {
                "polygon": {
                    "type": "Polygon",
                    "coordinates": [[[0, 0], [2, 2], [2, 0], [0, 2], [0, 0]]],
                }
            },
            "not valid",
        ),
        (
            {"polygon": {"type": "Polygon", "coordinates": [[[0, 0], [200, 0], [0, 1], [0, 0]]]}},
            "within range",
        ),
    ],
)
def test_bad_filters_say_why(raw: Any, words: str) -> None:
    assert words in bad(raw)


def test_polygon_exact_not_just_envelope() -> None:
    tri = {"type": "Polygon", "coordinates": [[[0, 0], [10, 0], [0, 10], [0, 0]]]}
    f = parse_filter({"polygon": tri}, AREAS)
    assert f.envelope == (0, 0, 10, 10)
    assert f.contains(1, 1)
    assert not f.contains(9, 9)  # inside the envelope, outside the triangle


def test_multipolygon() -> None:
    mp = {
        "type": "MultiPolygon",
        "coordinates": [
            [[[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]]],
            [[[5, 5], [6, 5], [6, 6], [5, 6], [5, 5]]],
        ],
    }
    f = parse_filter({"polygon": mp}, AREAS)
    assert f.contains(0.5, 0.5) and f.contains(5.5, 5.5) and not f.contains(3, 3)


def test_region_and_geofences() -> None:
    west = parse_filter({"region": "WEST"}, AREAS)
    assert west.kind == "region" and west.contains(40, -120) and not west.contains(40, -100)
    hub = parse_filter({"geofence": "HUB-SEA"}, AREAS)
    assert hub.circle is not None
    assert hub.contains(47.6062, -122.3321)
    assert hub.contains(47.6062 + 0.017, -122.3321)  # ~1.9 km north
    assert not hub.contains(47.6062 + 0.019, -122.3321)  # ~2.1 km north
    yard = parse_filter({"hub": "YARD"}, AREAS)
    assert yard.contains(0.5, 0.5) and not yard.contains(1.5, 1.5)


def test_truck_ids_match_by_id_anywhere() -> None:
    f = parse_filter({"truck_ids": ["T1", "T2"]}, AREAS)
    assert not f.is_geo
    assert f.matches("T1", 10, 10) and f.matches("T2", -80, 170)
    assert not f.matches("T3", 10, 10)
