"""The gateway's `geofence` filter over the user's geofences file (--geofences-file, the
tracking job's variable), and its refusal of a bad file before serving."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import pytest
from click.testing import CliRunner
from shapely.geometry import LineString, Point, box

from ws_gateway import ClientError
from ws_gateway.cli import gateway
from ws_gateway.filters import parse_filter
from ws_gateway.geo import areas_for

pytestmark = pytest.mark.unit


def write(path: Path, rows: list[dict[str, object]]) -> str:
    gpd.GeoDataFrame(rows, geometry="geometry", crs="EPSG:4326").to_file(path)
    return str(path)


def test_the_geofence_filter_uses_the_files_fences(tmp_path: Path) -> None:
    path = write(
        tmp_path / "hubs.gpkg",
        [
            {"id": "HUB-LIL", "radius_m": 1500.0, "geometry": Point(3.0573, 50.6292)},
            {"id": "YARD-BRU", "radius_m": None, "geometry": box(4.33, 50.84, 4.37, 50.86)},
        ],
    )
    areas = areas_for(path)
    lille = parse_filter({"geofence": "HUB-LIL"}, areas)
    assert lille.contains(50.6292 + 0.01, 3.0573) and not lille.contains(50.6292 + 0.02, 3.0573)
    assert parse_filter({"hub": "YARD-BRU"}, areas).contains(50.85, 4.35)
    with pytest.raises(ClientError, match="unknown geofence 'HUB-SEA'"):
        parse_filter({"geofence": "HUB-SEA"}, areas)  # the packaged hubs are not loaded
    assert areas.region_names() == ["MIDWEST", "NORTHEAST", "SOUTH", "WEST"]  # the contract's
    assert areas_for("").geofence("HUB-SEA") is not None


def test_a_bad_geofences_file_stops_the_gateway_before_serving(tmp_path: Path) -> None:
    path = write(tmp_path / "bad.geojson", [{"id": "A", "geometry": LineString([(0, 0), (1, 1)])}])
    result = CliRunner().invoke(
        gateway, ["run", "--no-auth", "--port", "1"], env={"FLEETPULSE_GEOFENCES_FILE": path}
    )
    assert result.exit_code == 2, result.output
    assert f"{path}: 1 problem:" in result.output
    assert "feature[0] ('A'): geometry is a LineString" in result.output
