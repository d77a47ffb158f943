"""Tracking job: `fleet.gps` -> live truck picture in Redis, motion alerts, geofence events.

Pipeline (one Flink job)::

    Kafka fleet.gps (raw bytes, partition, offset, key; watermark from ts per partition)
      -> ShardBundler (JVM)   truck_id read from the JSON by SQL, hashed to one of
                              --bundle-shards shards; records handed on as one bundle per
                              shard, flushed at every watermark and checkpoint barrier
      -> TruckFunction        keyed by shard: validate (bad records -> fleet.dlq), then
                              udfs.truck_state per truck: dedup, newest-wins position,
                              impossible jumps (-> fleet.dlq), event-time-ordered detection
                              woken by the second -> alerts (fleet.alerts), geofence
                              transitions, census deltas; positions written to Redis on a
                              background thread, settled at each checkpoint marker
      census -> key_by region (JVM) -> RegionCensusFunction   absolute region:{R} counts

Timeouts (offline, unplanned stop) run on event-time timers. When the whole input goes quiet
the watermark stops, so a processing-time tick takes over with the stall rule of
:mod:`udfs.stall_fallback`: the due timeouts fire with the event times they would have had.
Pings that later arrive behind that point are counted as late and do not rewrite the alerts
already sent.

Run embedded:  python -m flink_jobs.tracking.job --bootstrap 127.0.0.1:9092 --redis-url ...
Submit:        flink run -d -py flink_jobs/tracking/job.py -- --bootstrap ... (same flags)
Settings:      flink_jobs/tracking/settings.py; --help or docs/configuration.md lists them.
"""

from __future__ import annotations

import logging
import sys

from pyflink.common import Types
from pyflink.datastream import DataStream, OutputTag, StreamExecutionEnvironment
from pyflink.table import StreamTableEnvironment

from flink_jobs.runtime.environment import create_environment, execute
from flink_jobs.runtime.geography import geofences_for, regions_for
from flink_jobs.runtime.jvm_keying import keyed_on_first_field
from flink_jobs.runtime.kafka import (
    attach_sinks,
    dead_letter_sink,
    kafka_raw_table,
    kafka_text_sink,
)
from flink_jobs.tracking.bundling import bundled_by_shard, exploded
from flink_jobs.tracking.census import RegionCensusFunction
from flink_jobs.tracking.outputs import (
    ALERT_TAG,
    BATCHED,
    CENSUS_TAG,
    DLQ_TAG,
    GEOFENCE_TAG,
    SHARDED_WRITE,
)
from flink_jobs.tracking.settings import TrackingSettings
from flink_jobs.tracking.truck_function import TruckFunction
from udfs.geo import GeofenceIndex
from udfs.truck_state import TrackingConfig

JOB_NAME = "fleetpulse-tracking"

log = logging.getLogger("fleetpulse.tracking")

# The truck a `fleet.gps` record names, read in the JVM ('' when it names none: such a record
# is dead-lettered by the parser, whatever its key). The bundler only hashes it to a shard, so
# no hostile id ever becomes a Flink key.
TRUCK_KEY_SQL = "COALESCE(JSON_VALUE(CAST(`value` AS STRING), '$.truck_id'), '')"


def terminate(stream: DataStream) -> None:
    """End a branch whose operator writes Redis itself and emits nothing.

    A branch without a sink is dropped from the graph `execute_and_collect` submits; an
    (always empty) print sink keeps it in every way of running the job. The sink's id follows
    the operator's when it has one (``X-end``).
    """
    sink = stream.print().name(f"{stream.get_name()}-end")
    uid = stream._j_data_stream.getTransformation().getUid()
    if uid is not None:
        sink.uid(f"{uid}-end")


def load_geofences(settings: TrackingSettings) -> GeofenceIndex:
    """``--geofences-file``'s geofences (checked when the settings were), else the hubs."""
    return geofences_for(settings.geofences_file)


def truck_function(settings: TrackingSettings, cfg: TrackingConfig) -> TruckFunction:
    """The truck-state function with the regions and geofences the settings choose, built
    here in the client (see :func:`build`)."""
    return TruckFunction(settings, cfg, regions_for(settings), load_geofences(settings))


def build(
    env: StreamExecutionEnvironment,
    t_env: StreamTableEnvironment,
    table: str,
    settings: TrackingSettings,
    cfg: TrackingConfig,
) -> dict[str, DataStream]:
    """The job over ``table`` (the columns of RAW_RECORD and a watermark, like
    :func:`flink_jobs.runtime.kafka.kafka_raw_table`'s): returns the streams each Kafka sink
    consumes (``alerts``, ``geofence``, ``dlq``); positions and region counts go to Redis.

    Regions and geofences are built here, by the client, and shipped with the function:
    importing geopandas inside several thread-mode operators at once hangs the embedded
    interpreter, and the client is the one place that reads the files."""
    bundles = bundled_by_shard(
        env,
        t_env,
        table,
        TRUCK_KEY_SQL,
        settings.bundle_shards,
        settings.bundle_max_records,
        settings.bundle_flush_ms,
    )
    truck_fn = truck_function(settings, cfg)
    trucks = (
        bundles.process(truck_fn, output_type=SHARDED_WRITE).name("truck-state").uid("truck-state")
    )

    def side(tag: OutputTag) -> DataStream:
        """A side output's rows, emitted in batches per call, spread out again in the JVM."""
        return exploded(trucks.get_side_output(BATCHED[tag]), tag.type_info, f"{tag.tag_id}-rows")

    census = keyed_on_first_field(side(CENSUS_TAG), Types.STRING(), Types.PICKLED_BYTE_ARRAY())
    terminate(
        census.process(RegionCensusFunction(settings)).name("region-census").uid("region-census")
    )
    return {"alerts": side(ALERT_TAG), "geofence": side(GEOFENCE_TAG), "dlq": side(DLQ_TAG)}


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    settings = TrackingSettings.from_argv(argv)
    execute(job(settings), JOB_NAME, settings)


def job(settings: TrackingSettings) -> StreamExecutionEnvironment:
    """The whole job, source to sinks, in a new environment, ready to execute."""
    env, t_env = create_environment(settings, JOB_NAME)
    kafka_raw_table(t_env, settings, settings.gps_topic, "gps_source")
    outputs = build(env, t_env, "gps_source", settings, settings.tracking_config)
    attach_sinks(
        t_env,
        {
            kafka_text_sink(t_env, settings, settings.alerts_topic, "alerts_sink"): outputs[
                "alerts"
            ],
            kafka_text_sink(t_env, settings, settings.geofence_topic, "geofence_sink"): outputs[
                "geofence"
            ],
        },
    )
    dead_letter_sink(env, outputs["dlq"], settings)
    return env


if __name__ == "__main__":
    # Run the imported module's main so the functions are pickled by reference to
    # flink_jobs.tracking.job, not by value from __main__.
    from flink_jobs.tracking.job import main as module_main

    module_main(sys.argv[1:])
