"""The regions and geofences a job's settings choose: the user's files or the packaged data.

Called by the job's client while it builds the job; the indexes are shipped with the
operators (importing geopandas inside operators hangs the embedded interpreter)."""

from __future__ import annotations

from pathlib import Path

from flink_jobs.runtime.settings import JobSettings
from udfs.geo import GeofenceIndex, RegionIndex, default_regions
from udfs.geo_files import load_geofences, load_regions


def regions_for(settings: JobSettings) -> RegionIndex:
    """``--regions-file``'s regions, else the packaged US Census regions."""
    if not settings.regions_file:
        return default_regions()
    return RegionIndex(load_regions(Path(settings.regions_file), settings.regions_property))


def geofences_for(geofences_file: str) -> GeofenceIndex:
    """The geofences of a file (``--geofences-file``), else the packaged hubs."""
    if not geofences_file:
        return GeofenceIndex.from_file()
    return GeofenceIndex(load_geofences(Path(geofences_file)))
