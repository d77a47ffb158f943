"""The user's own geography: regions and hub geofences read from GIS files, checked.

Any format geopandas (GDAL, through pyogrio) reads works: GeoJSON, GeoPackage, Shapefile, ...
A file is read once, by the job's client (never inside an operator: importing geopandas there
hangs the embedded interpreter), reprojected to WGS84 lon/lat (EPSG:4326) when it declares
another CRS (a file that declares none is taken to be in EPSG:4326), and checked feature by
feature. A bad file is refused as a whole with every problem found, each naming the file and
the feature (``feature[3]``: the fourth in file order, counted from 0, with its id), so that
the job refuses to start rather than counting trucks in the wrong place.

Invalid geometries (a self-intersecting ring, say) are refused, not repaired: a repair such as
``shapely.make_valid`` may change which side of a border a point falls on without anyone
deciding it; the message says what is wrong and where, so the file can be fixed in its tool.

Regions: a text property (``region`` unless told otherwise) names each feature's region;
Polygon or MultiPolygon features of one name are merged into that region. Regions may touch
but not overlap (slivers thinner than about two metres along a shared border are let pass).
Geofences: ``id`` (text, unique), optional ``name``, and a Polygon or MultiPolygon, or a Point
with a positive ``radius_m`` (metres) for a circle: the packaged ``udfs/data/hubs.geojson``'s
form.
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Hashable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import shapely
from shapely.geometry.base import BaseGeometry
from shapely.strtree import STRtree

from udfs import UdfError
from udfs.geo import OTHER, Geofence, make_geofence

if TYPE_CHECKING:
    import geopandas as gpd

WGS84_EPSG = 4326
# Region names become Redis keys (region:{R}) and fields of records; geofence ids travel in
# geofence events and websocket filters: both take the contract's identifier alphabet.
NAME_PATTERN = re.compile(r"[A-Za-z0-9_.-]{1,64}")
DEFAULT_REGION_PROPERTY = "region"
GEOFENCE_ID = "id"
GEOFENCE_NAME = "name"
GEOFENCE_RADIUS = "radius_m"
POLYGONS = ("Polygon", "MultiPolygon")
# Overlaps thinner than twice this (degrees, about a metre) are taken for the slivers that
# digitising leaves along shared borders, not for two regions claiming the same land.
SLIVER_DEG = 1e-5
# Problems listed in one error; the rest are counted.
MAX_PROBLEMS = 20


class GeoFileError(UdfError):
    """A regions or geofences file that cannot be used; the message names the file and the
    features at fault."""


@dataclass(frozen=True, slots=True)
class _Feature:
    index: int
    properties: dict[Hashable, Any]
    geometry: BaseGeometry | None


class _Problems:
    """The problems found in one file, reported together."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lines: list[str] = []

    def add(self, where: str, problem: str) -> None:
        self.lines.append(f"{where}: {problem}")

    def raise_any(self) -> None:
        if not self.lines:
            return
        shown = self.lines[:MAX_PROBLEMS]
        more = len(self.lines) - len(shown)
        tail = [f"... and {more} more"] if more else []
        count = "1 problem" if len(self.lines) == 1 else f"{len(self.lines)} problems"
        raise GeoFileError("\n  ".join([f"{self.path}: {count}:", *shown, *tail]))


def _label(index: int, ident: str | None) -> str:
    return f"feature[{index}]" + (f" ({ident!r})" if ident else "")


def _text(value: Any) -> str | None:
    """A property as text: strings as they are, whole numbers (a GeoPackage integer column,
    or one pandas made float) as digits; None for a missing value or any other type."""
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, bool):
        return None
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        number = float(value)
        return str(int(number)) if math.isfinite(number) and number.is_integer() else None
    return None


def _number(value: Any) -> float | None:
    """A property as a finite number (None: missing, text or not finite)."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _read(path: Path) -> gpd.GeoDataFrame:
    """The file's only layer in EPSG:4326. Several layers are refused: which one was meant
    would be a guess."""
    import geopandas as gpd
    import pyogrio

    if not path.exists():
        raise GeoFileError(f"{path}: no such file")
    try:
        layers = pyogrio.list_layers(path)
        if len(layers) > 1:
            names = ", ".join(str(row[0]) for row in layers)
            raise GeoFileError(f"{path}: {len(layers)} layers ({names}); keep one per file")
        frame = gpd.read_file(path)
    except GeoFileError:
        raise
    except Exception as exc:  # pyogrio's errors, and whatever GDAL makes of a strange file
        raise GeoFileError(f"{path}: not a file geopandas can read ({exc})") from None
    if frame.crs is not None and frame.crs.to_epsg() != WGS84_EPSG:
        try:
            frame = frame.to_crs(epsg=WGS84_EPSG)
        except Exception as exc:  # pyproj's errors
            raise GeoFileError(f"{path}: cannot reproject from {frame.crs} ({exc})") from None
    return frame


def _features(frame: gpd.GeoDataFrame) -> Iterator[_Feature]:
    columns = [c for c in frame.columns if c != frame.geometry.name]
    for index, (props, geom) in enumerate(
        zip(frame[columns].to_dict("records"), frame.geometry, strict=True)
    ):
        yield _Feature(index, props, geom if isinstance(geom, BaseGeometry) else None)


def _geometry_problem(geom: BaseGeometry | None, allowed: tuple[str, ...]) -> str | None:
    """What is wrong with a feature's geometry, or None."""
    if geom is None:
        return "no geometry"
    if geom.geom_type not in allowed:
        return f"geometry is a {geom.geom_type}, not a {' or '.join(allowed)}"
    if geom.is_empty:
        return "empty geometry"
    minx, miny, maxx, maxy = geom.bounds
    if not all(map(math.isfinite, (minx, miny, maxx, maxy))):
        return "coordinates are not finite numbers"
    if minx < -180 or maxx > 180 or miny < -90 or maxy > 90:
        return (
            f"coordinates outside longitude -180..180 / latitude -90..90 (bounds {minx:.6g}, "
            f"{miny:.6g}, {maxx:.6g}, {maxy:.6g}); a file without a CRS is read as EPSG:4326"
        )
    if not shapely.is_valid(geom):
        return f"invalid geometry ({shapely.is_valid_reason(geom)}); fix it in the file"
    return None


def _name_problem(name: str | None, what: str) -> str | None:
    if name is None:
        return f"{what} missing or empty"
    if not NAME_PATTERN.fullmatch(name):
        return f"{what} {name!r} is not 1-64 of [A-Za-z0-9_.-]"
    return None


def regions_from_frame(
    frame: gpd.GeoDataFrame, path: Path, prop: str = DEFAULT_REGION_PROPERTY
) -> dict[str, BaseGeometry]:
    """Region name -> its (merged) geometry, in order of first appearance; GeoFileError
    listing every problem."""
    problems = _Problems(path)
    if frame.empty:
        problems.add("file", "no features")
    elif prop not in frame.columns:
        others = [str(c) for c in frame.columns if c != frame.geometry.name]
        problems.add("file", f"no {prop!r} property (it has {others}); see --regions-property")
    problems.raise_any()
    parts: dict[str, list[BaseGeometry]] = {}
    for f in _features(frame):
        name = _text(f.properties.get(prop))
        where = _label(f.index, name)
        problem = _name_problem(name, f"{prop!r} property")
        if problem is None and name == OTHER:
            problem = f"{OTHER!r} is reserved for points outside every region"
        problem = problem or _geometry_problem(f.geometry, POLYGONS)
        if problem:
            problems.add(where, problem)
        else:
            assert name is not None and f.geometry is not None
            parts.setdefault(name, []).append(f.geometry)
    problems.raise_any()
    regions = {n: g[0] if len(g) == 1 else shapely.union_all(g) for n, g in parts.items()}
    _check_overlaps(regions, problems)
    problems.raise_any()
    return regions


def _check_overlaps(regions: dict[str, BaseGeometry], problems: _Problems) -> None:
    """Regions may share borders but not land: a point must have one region."""
    names, geoms = list(regions), list(regions.values())
    left, right = STRtree(geoms).query(geoms)
    for a, b in zip(left.tolist(), right.tolist(), strict=True):
        if a >= b:
            continue
        common = shapely.intersection(geoms[a], geoms[b])
        if not common.buffer(-SLIVER_DEG).is_empty:
            p = common.representative_point()
            problems.add(
                f"regions {names[a]!r} and {names[b]!r}",
                f"overlap ({common.area:.3g} square degrees, around lat {p.y:.5f}, "
                f"lng {p.x:.5f}); a point must belong to one region",
            )


def geofences_from_frame(frame: gpd.GeoDataFrame, path: Path) -> list[Geofence]:
    """The file's geofences in file order; GeoFileError listing every problem."""
    problems = _Problems(path)
    if not frame.empty and GEOFENCE_ID not in frame.columns:
        others = [str(c) for c in frame.columns if c != frame.geometry.name]
        problems.add("file", f"no {GEOFENCE_ID!r} property (it has {others})")
    problems.raise_any()
    fences: list[Geofence] = []
    first: dict[str, int] = {}
    for f in _features(frame):
        gid = _text(f.properties.get(GEOFENCE_ID))
        where = _label(f.index, gid)
        problem = _name_problem(gid, f"{GEOFENCE_ID!r} property")
        if problem is None and gid in first:
            problem = f"duplicate id, first used by feature[{first[gid]}]"
        problem = problem or _geometry_problem(f.geometry, ("Point", *POLYGONS))
        radius = _number(f.properties.get(GEOFENCE_RADIUS))
        is_circle = f.geometry is not None and f.geometry.geom_type == "Point"
        if problem is None and is_circle and (radius is None or radius <= 0):
            problem = f"a Point needs a positive {GEOFENCE_RADIUS!r} property (metres)"
        if gid is not None and gid not in first:
            first[gid] = f.index
        if problem:
            problems.add(where, problem)
            continue
        assert gid is not None and f.geometry is not None
        name = _text(f.properties.get(GEOFENCE_NAME)) or gid
        fences.append(make_geofence(gid, name, f.geometry, radius if is_circle else None))
    problems.raise_any()
    return fences


def _stamp(path: Path) -> tuple[str, int, int]:
    """The file's identity for the caches: a file edited since is read again."""
    resolved = path.resolve()
    try:
        st = resolved.stat()
    except OSError:
        return str(resolved), -1, -1
    return str(resolved), st.st_mtime_ns, st.st_size


@lru_cache(maxsize=8)
def _regions_cached(stamp: tuple[str, int, int], shown: str, prop: str) -> dict[str, BaseGeometry]:
    path = Path(shown)
    return regions_from_frame(_read(path), path, prop)


@lru_cache(maxsize=8)
def _geofences_cached(stamp: tuple[str, int, int], shown: str) -> list[Geofence]:
    path = Path(shown)
    return geofences_from_frame(_read(path), path)


def load_regions(path: Path, prop: str = DEFAULT_REGION_PROPERTY) -> dict[str, BaseGeometry]:
    """Region shapes from a file (checked); read once per version of the file, so the
    settings' check and the job's build share one read."""
    return dict(_regions_cached(_stamp(path), str(path), prop))


def load_geofences(path: Path) -> list[Geofence]:
    """Geofences from a file (checked); read once per version of the file."""
    return list(_geofences_cached(_stamp(path), str(path)))
