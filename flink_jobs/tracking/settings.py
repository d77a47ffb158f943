"""The tracking job's settings: the shared ones and its own (bundling, truck state, outputs)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import Field, field_validator
from pydantic.dataclasses import dataclass

from flink_jobs.runtime.settings import SETTINGS_CONFIG, JobSettings, setting_error
from udfs.contract import TopicNames
from udfs.geo_files import GeoFileError, load_geofences
from udfs.truck_state import DEFAULT_DETECTION_SLACK_MS, DEFAULT_STATE_TTL_S, TrackingConfig


@dataclass(frozen=True, config=SETTINGS_CONFIG)
class TrackingSettings(JobSettings):
    """Tracking job: `fleet.gps` -> each truck's position and status in Redis, motion alerts,
    geofence transitions and region counts."""

    job: ClassVar[str] = "tracking"
    command: ClassVar[str] = "python -m flink_jobs.tracking.job"

    group_id: str = Field(
        default="fleetpulse-tracking",
        description="Kafka consumer group (offsets are committed under it).",
    )
    detection_slack_ms: int = Field(
        default=DEFAULT_DETECTION_SLACK_MS,
        ge=0,
        description="How long (event time) a buffered ping may wait for the truck's next ping "
        "to be detected; 0 detects every ping when the watermark passes it (udfs.truck_state).",
    )
    bundle_shards: int = Field(
        default=32,
        ge=1,
        description="Pings are handed to Python in bundles of one shard of trucks, one call "
        "per bundle (flink_jobs.tracking.bundling). Keep it across restores: truck state is "
        "filed by shard, and another count leaves it under the old shards (not checked); to "
        "change it, start without --restore.",
    )
    bundle_max_records: int = Field(
        default=2_000, ge=1, description="Records in a bundle before it is handed on."
    )
    bundle_flush_ms: int = Field(
        default=100,
        ge=1,
        description="Longest a bundle waits before it is handed on (bundles are also flushed "
        "at every watermark and checkpoint barrier).",
    )
    trucks_in_memory: int = Field(
        default=500_000,
        ge=0,
        description="Trucks whose state an instance keeps in Python memory between "
        "checkpoints (about 1.7 KB each); past it, shards are read and written through "
        "Flink's state per bundle, which is slower (flink_jobs.tracking.shard_state).",
    )
    truck_state_ttl_s: int = Field(
        default=DEFAULT_STATE_TTL_S,
        ge=3600,
        description="A truck's state is forgotten this long (event time) after its last ping, "
        "its open incidents resolved (udfs.truck_state.expire). At least an hour.",
    )
    geofence_topic: str = Field(
        default=TopicNames.geofence_events, description="Kafka topic of the geofence transitions."
    )
    geofences_file: str = Field(
        default="",
        description="File of the hub geofences, any format geopandas reads (GeoJSON, "
        "GeoPackage, Shapefile): features with a unique 'id', a Polygon/MultiPolygon or a "
        "Point with 'radius_m' (metres), checked at start ('': the packaged "
        "udfs/data/hubs.geojson; docs/geography.md).",
    )
    stream_maxlen: int = Field(
        default=100_000,
        ge=1,
        description="Approximate length `stream:positions` in Redis is capped at.",
    )
    region_refresh_ms: int = Field(
        default=2_000, ge=1, description="Period of the region:{R} truck counts written to Redis."
    )

    @field_validator("geofences_file")
    @classmethod
    def _usable_geofences_file(cls, geofences_file: str) -> str:
        """Read and check the file now, so a bad one stops the job before it starts."""
        if geofences_file:
            try:
                load_geofences(Path(geofences_file))
            except GeoFileError as exc:
                raise setting_error(str(exc)) from None
        return geofences_file

    @property
    def tracking_config(self) -> TrackingConfig:
        """The truck state machine's thresholds that these settings set."""
        return TrackingConfig(
            detection_slack_ms=self.detection_slack_ms, state_ttl_s=self.truck_state_ttl_s
        )
