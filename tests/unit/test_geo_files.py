"""The user's own regions and geofences (udfs.geo_files): read from GeoJSON, GeoPackage and
Shapefile files written here, reprojected, and refused feature by feature when wrong."""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path
from typing import Any

import geopandas as gpd
import pytest
import shapely
from shapely.geometry import LineString, MultiPolygon, Point, Polygon, box

from udfs.geo import GeofenceIndex, RegionIndex
from udfs.geo_files import GeoFileError, load_geofences, load_regions

pytestmark = pytest.mark.unit

# file suffix -> GDAL driver: the three formats the docs promise
FORMATS = {".geojson": "GeoJSON", ".gpkg": "GPKG", ".shp": "ESRI Shapefile"}

# Two regions side by side around (45 N, 5 E); EAST in two features (merged on load).
REGIONS: list[dict[str, Any]] = [
    {"region": "WEST", "geometry": box(0, 40, 5, 50)},
    {"region": "EAST", "geometry": box(5, 40, 8, 50)},
    {"region": "EAST", "geometry": box(8, 40, 10, 50)},
]
FENCES: list[dict[str, Any]] = [
    {"id": "DEPOT-LYON", "name": "Lyon", "radius_m": 1500.0, "geometry": Point(4.8357, 45.764)},
    {"id": "YARD-1", "name": "Yard", "radius_m": None, "geometry": box(6.0, 46.0, 6.1, 46.1)},
]


def write(tmp_path: Path, rows: list[dict[str, Any]], suffix: str = ".geojson", **kw: Any) -> Path:
    """``rows`` (properties plus ``geometry``) as a file of the format ``suffix`` names."""
    path = tmp_path / f"features{suffix}"
    frame = gpd.GeoDataFrame(rows, geometry="geometry", crs=kw.pop("crs", "EPSG:4326"))
    with warnings.catch_warnings():  # writing a file without a CRS, on purpose
        warnings.filterwarnings("ignore", "'crs' was not provided")
        frame.to_file(path, driver=FORMATS[suffix], **kw)
    return path


@pytest.mark.parametrize("suffix", list(FORMATS))
def test_regions_load_from_each_format_and_merge_by_name(tmp_path: Path, suffix: str) -> None:
    regions = load_regions(write(tmp_path, REGIONS, suffix))
    assert list(regions) == ["WEST", "EAST"]
    index = RegionIndex(regions)
    assert index.region_of(45.0, 2.0) == "WEST"
    assert index.region_of(45.0, 6.0) == "EAST"
    assert index.region_of(45.0, 9.0) == "EAST"  # the second EAST feature
    assert index.region_of(30.0, 2.0) == "OTHER"
    assert pickle.loads(pickle.dumps(index)).region_of(45.0, 9.0) == "EAST"


@pytest.mark.parametrize("suffix", list(FORMATS))
def test_geofences_load_from_each_format(tmp_path: Path, suffix: str) -> None:
    if suffix == ".shp":  # one geometry type per shapefile: circles and polygons apart
        circles, polygons = tmp_path / "circles", tmp_path / "polygons"
        circles.mkdir(), polygons.mkdir()
        fences = [
            *load_geofences(write(circles, FENCES[:1], suffix)),
            *load_geofences(write(polygons, FENCES[1:], suffix)),
        ]
    else:
        fences = load_geofences(write(tmp_path, FENCES, suffix))
    assert [(f.geofence_id, f.name, f.radius_m) for f in fences] == [
        ("DEPOT-LYON", "Lyon", 1500.0),
        ("YARD-1", "Yard", None),
    ]
    index = GeofenceIndex(fences)
    assert index.containing(45.764 + 0.01, 4.8357) == ["DEPOT-LYON"]  # ~1.1 km north
    assert index.containing(45.764 + 0.02, 4.8357) == []  # ~2.2 km north
    assert index.containing(46.05, 6.05) == ["YARD-1"]


def test_the_packaged_hubs_pass_the_checks_unchanged() -> None:
    from udfs.geo import HUBS_FILE

    assert load_geofences(HUBS_FILE) == GeofenceIndex.from_file().fences


def test_a_file_in_another_crs_is_reprojected(tmp_path: Path) -> None:
    mercator = gpd.GeoDataFrame(REGIONS, geometry="geometry", crs="EPSG:4326").to_crs(3857)
    path = tmp_path / "mercator.gpkg"
    mercator.to_file(path, driver="GPKG")
    index = RegionIndex(load_regions(path))
    assert index.region_of(45.0, 2.0) == "WEST"
    assert index.region_of(45.0, 9.0) == "EAST"


def test_the_region_property_can_be_named(tmp_path: Path) -> None:
    rows = [{"zone": r["region"], "geometry": r["geometry"]} for r in REGIONS]
    assert list(load_regions(write(tmp_path, rows), "zone")) == ["WEST", "EAST"]


def test_an_edited_file_is_read_again(tmp_path: Path) -> None:
    path = write(tmp_path, REGIONS)
    assert list(load_regions(path)) == ["WEST", "EAST"]
    path.unlink()
    renamed = [{**r, "region": "NORTH" if r["region"] == "WEST" else "SOUTH"} for r in REGIONS]
    write(tmp_path, renamed)
    assert list(load_regions(path)) == ["NORTH", "SOUTH"]


BOWTIE = Polygon([(0, 40), (5, 50), (5, 40), (0, 50), (0, 40)])


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        (
            [{"region": None, "geometry": box(0, 40, 5, 50)}],
            "feature[0]: 'region' property missing or empty",
        ),
        (
            [{"region": "NEW YORK", "geometry": box(0, 40, 5, 50)}],
            "feature[0] ('NEW YORK'): 'region' property 'NEW YORK' is not 1-64 of [A-Za-z0-9_.-]",
        ),
        ([{"region": "OTHER", "geometry": box(0, 40, 5, 50)}], "feature[0] ('OTHER'): 'OTHER' is"),
        (
            [*REGIONS, {"region": "ROAD", "geometry": LineString([(0, 40), (1, 41)])}],
            "feature[3] ('ROAD'): geometry is a LineString, not a Polygon or MultiPolygon",
        ),
        ([{"region": "VOID", "geometry": Polygon()}], "feature[0] ('VOID'): empty geometry"),
        ([{"region": "NONE", "geometry": None}], "feature[0] ('NONE'): no geometry"),
        (
            [*REGIONS[:1], {"region": "TIE", "geometry": BOWTIE}],
            "feature[1] ('TIE'): invalid geometry (Self-intersection[2.5 45]); fix it",
        ),
        (
            [{"region": "FAR", "geometry": box(500_000, 4_000_000, 600_000, 5_000_000)}],
            "feature[0] ('FAR'): coordinates outside longitude -180..180 / latitude -90..90",
        ),
        (
            [*REGIONS, {"region": "MIDDLE", "geometry": box(4, 44, 6, 46)}],
            "regions 'WEST' and 'MIDDLE': overlap (2 square degrees, around lat 45.00000,",
        ),
    ],
    ids=["missing", "bad-name", "reserved", "line", "empty", "null", "invalid", "range", "overlap"],
)
def test_a_bad_region_feature_is_named_with_its_file(
    tmp_path: Path, rows: list[dict[str, Any]], expected: str
) -> None:
    path = write(tmp_path, rows, crs=None if rows[0]["region"] == "FAR" else "EPSG:4326")
    with pytest.raises(GeoFileError) as err:
        load_regions(path)
    assert str(err.value).startswith(f"{path}: ")
    assert expected in str(err.value)


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        (
            [*FENCES, {**FENCES[1], "name": "again"}],
            "feature[2] ('YARD-1'): duplicate id, first used by feature[1]",
        ),
        (
            [{**FENCES[0], "radius_m": None}],
            "feature[0] ('DEPOT-LYON'): a Point needs a positive 'radius_m' property (metres)",
        ),
        (
            [{**FENCES[0], "radius_m": -5.0}],
            "feature[0] ('DEPOT-LYON'): a Point needs a positive 'radius_m'",
        ),
        ([{**FENCES[1], "id": ""}], "feature[0]: 'id' property missing or empty"),
        (
            [{**FENCES[1], "id": "Y", "geometry": LineString([(6, 46), (6.1, 46.1)])}],
            "feature[0] ('Y'): geometry is a LineString, not a Point or Polygon or MultiPolygon",
        ),
        (
            [{**FENCES[0], "geometry": Point(4.8, 95.0)}],
            "feature[0] ('DEPOT-LYON'): coordinates outside longitude -180..180",
        ),
        (
            [{**FENCES[1], "geometry": MultiPolygon([BOWTIE])}],
            "feature[0] ('YARD-1'): invalid geometry",
        ),
    ],
    ids=["duplicate", "no-radius", "negative-radius", "no-id", "line", "range", "invalid"],
)
def test_a_bad_geofence_feature_is_named_with_its_file(
    tmp_path: Path, rows: list[dict[str, Any]], expected: str
) -> None:
    path = write(tmp_path, rows)
    with pytest.raises(GeoFileError) as err:
        load_geofences(path)
    assert str(err.value).startswith(f"{path}: ")
    assert expected in str(err.value)


def test_every_problem_of_a_file_is_reported_at_once(tmp_path: Path) -> None:
    rows = [{"region": f"R {i}", "geometry": box(i, 0, i + 1, 1)} for i in range(25)]
    path = write(tmp_path, [*rows, {"region": "OK", "geometry": LineString([(0, 0), (1, 1)])}])
    with pytest.raises(GeoFileError) as err:
        load_regions(path)
    text = str(err.value)
    assert text.startswith(f"{path}: 26 problems:")
    assert "feature[0] ('R 0')" in text and "feature[19] ('R 19')" in text
    assert "feature[20]" not in text and text.endswith("... and 6 more")


def test_files_that_cannot_be_used_as_a_whole(tmp_path: Path) -> None:
    missing = tmp_path / "nope.geojson"
    with pytest.raises(GeoFileError, match=f"^{missing}: no such file$"):
        load_regions(missing)
    garbage = tmp_path / "garbage.geojson"
    garbage.write_text("{not json")
    with pytest.raises(GeoFileError, match=f"^{garbage}: not a file geopandas can read"):
        load_geofences(garbage)
    no_column = write(tmp_path, [{"name": "x", "geometry": box(0, 0, 1, 1)}])
    with pytest.raises(GeoFileError, match=r"file: no 'region' property \(it has \['name'\]\)"):
        load_regions(no_column)


def test_a_geopackage_with_several_layers_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "two.gpkg"
    frame = gpd.GeoDataFrame(REGIONS, geometry="geometry", crs="EPSG:4326")
    frame.to_file(path, layer="regions", driver="GPKG")
    frame.to_file(path, layer="old", driver="GPKG")
    with pytest.raises(GeoFileError, match=r"2 layers \(regions, old\); keep one per file"):
        load_regions(path)


def test_slivers_along_a_shared_border_are_not_overlaps(tmp_path: Path) -> None:
    rows = [
        {"region": "WEST", "geometry": box(0, 40, 5.00001, 50)},  # ~1 m past the border
        {"region": "EAST", "geometry": box(5, 40, 10, 50)},
    ]
    regions = load_regions(write(tmp_path, rows))
    assert shapely.intersection(regions["WEST"], regions["EAST"]).area > 0


def test_whole_number_ids_and_names_are_read_as_text(tmp_path: Path) -> None:
    rows = [
        {"id": 7, "radius_m": 100.0, "geometry": Point(3, 50)},
        {"id": 8, "radius_m": 100.0, "geometry": Point(4, 50)},
    ]
    fences = load_geofences(write(tmp_path, rows, ".gpkg"))
    assert [f.geofence_id for f in fences] == ["7", "8"]
    regions = [{"region": 12.0, "geometry": box(0, 0, 1, 1)}]
    assert list(load_regions(write(tmp_path, regions))) == ["12"]
