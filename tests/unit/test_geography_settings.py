"""--regions-file, --regions-property and --geofences-file: a bad file stops a job before it
starts (exit status 2, the flag, the file and the feature named); a good one is what the jobs
build their functions with, shipped to the workers by pickling."""

from __future__ import annotations

from pathlib import Path

import cloudpickle
import geopandas as gpd
import pytest
from shapely.geometry import LineString, Point, box

from flink_jobs.delay.job import with_regions
from flink_jobs.delay.settings import DelaySettings
from flink_jobs.runtime.settings import JobSettings
from flink_jobs.tracking.job import truck_function
from flink_jobs.tracking.settings import TrackingSettings
from udfs.models import Ping
from udfs.shipment_state import DelayConfig
from udfs.truck_state import Counters, TruckState, on_ping

pytestmark = pytest.mark.unit

# Northern France and Belgium in two made-up regions; Seattle is in neither.
NORD = box(1.5, 49.5, 4.0, 51.2)
BENELUX = box(4.0, 49.5, 6.5, 51.5)
LILLE = (50.6292, 3.0573)
BRUSSELS = (50.8503, 4.3517)
SEATTLE = (47.6062, -122.3321)


def write(path: Path, rows: list[dict[str, object]]) -> str:
    gpd.GeoDataFrame(rows, geometry="geometry", crs="EPSG:4326").to_file(path)
    return str(path)


@pytest.fixture
def regions_file(tmp_path: Path) -> str:
    return write(
        tmp_path / "regions.gpkg",
        [{"zone": "NORD", "geometry": NORD}, {"zone": "BENELUX", "geometry": BENELUX}],
    )


@pytest.fixture
def geofences_file(tmp_path: Path) -> str:
    hub = {"id": "HUB-LIL", "name": "Lille", "radius_m": 1000.0, "geometry": Point(3.0573, 50.6292)}
    return write(tmp_path / "hubs.geojson", [hub])


def refused(
    model: type[JobSettings], argv: list[str], capsys: pytest.CaptureFixture[str], **env: str
) -> str:
    with pytest.raises(SystemExit) as exit_info:
        model.from_argv(argv, environ=env)
    assert exit_info.value.code == 2
    return capsys.readouterr().err


@pytest.mark.parametrize("model", [TrackingSettings, DelaySettings])
def test_a_bad_regions_file_stops_either_job_naming_file_and_feature(
    model: type[JobSettings], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = write(
        tmp_path / "bad.geojson",
        [
            {"region": "NORD", "geometry": NORD},
            {"region": "ROAD", "geometry": LineString([(2, 50), (3, 51)])},
        ],
    )
    err = refused(model, ["--regions-file", bad], capsys)
    assert f"--regions-file '{bad}': {bad}: 1 problem:" in err
    assert "feature[1] ('ROAD'): geometry is a LineString, not a Polygon or MultiPolygon" in err
    assert "Traceback" not in err
    err = refused(model, [], capsys, FLEETPULSE_REGIONS_FILE=bad)
    assert "environment variable FLEETPULSE_REGIONS_FILE (--regions-file)" in err


def test_the_region_property_must_exist_in_the_file(
    regions_file: str, capsys: pytest.CaptureFixture[str]
) -> None:
    err = refused(TrackingSettings, ["--regions-file", regions_file], capsys)
    assert f"{regions_file}: 1 problem:" in err
    assert "file: no 'region' property (it has ['zone']); see --regions-property" in err


def test_a_missing_or_bad_geofences_file_stops_the_tracking_job(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = str(tmp_path / "hubs.shp")
    err = refused(TrackingSettings, ["--geofences-file", missing], capsys)
    assert f"--geofences-file '{missing}': {missing}: no such file" in err
    dup = write(
        tmp_path / "dup.geojson",
        [
            {"id": "H1", "radius_m": 500.0, "geometry": Point(3, 50)},
            {"id": "H1", "radius_m": 500.0, "geometry": Point(4, 50)},
        ],
    )
    err = refused(TrackingSettings, [], capsys, FLEETPULSE_GEOFENCES_FILE=dup)
    assert "feature[1] ('H1'): duplicate id, first used by feature[0]" in err


def test_the_tracking_job_counts_trucks_in_the_files_regions_and_geofences(
    regions_file: str, geofences_file: str
) -> None:
    settings = TrackingSettings.from_argv(
        ["--regions-file", regions_file, "--regions-property", "zone"],
        environ={"FLEETPULSE_GEOFENCES_FILE": geofences_file},
    )
    # As Flink ships it: the function pickled with its indexes in the client.
    fn = cloudpickle.loads(cloudpickle.dumps(truck_function(settings, settings.tracking_config)))
    assert fn.regions.region_of(*LILLE) == "NORD"
    assert fn.regions.region_of(*BRUSSELS) == "BENELUX"
    assert fn.regions.region_of(*SEATTLE) == "OTHER"
    assert fn.geofences.containing(*LILLE) == ["HUB-LIL"]
    assert fn.geofences.containing(*SEATTLE) == []  # the packaged hubs are not loaded
    state = TruckState("T1")
    ping = Ping("T1", 1_764_000_000_000, *BRUSSELS)
    on_ping(state, ping, fn.cfg, fn.regions.region_of, Counters())
    assert state.region == "BENELUX"


def test_without_files_the_jobs_keep_the_packaged_us_data() -> None:
    settings = TrackingSettings.from_argv([], environ={})
    fn = truck_function(settings, settings.tracking_config)
    assert fn.regions.region_of(*SEATTLE) == "WEST"
    assert fn.geofences.containing(*SEATTLE) == ["HUB-SEA"]
    delay = with_regions(DelaySettings.from_argv([], environ={}), DelayConfig())
    assert delay.region_of(*SEATTLE) == "WEST"


def test_the_delay_job_files_shipments_under_the_files_regions(regions_file: str) -> None:
    settings = DelaySettings.from_argv(
        ["--regions-file", regions_file, "--regions-property", "zone"], environ={}
    )
    cfg = cloudpickle.loads(cloudpickle.dumps(with_regions(settings, settings.delay_config)))
    assert cfg.region_of(*LILLE) == "NORD"
    assert cfg.region_of(*SEATTLE) == "OTHER"
