"""Command-line settings shared by the jobs: one frozen object per entry point.

The same flags work embedded (``python -m flink_jobs.tracking.job ...``) and submitted
(``flink run -py flink_jobs/tracking/job.py -- ...``); every flag also reads an environment
variable (``FLEETPULSE_<FLAG>``) so containers can be configured without arguments.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, fields
from pathlib import Path

from flink_jobs.runtime.affinity import AffinityError, check_usable, parse_cpu_list
from udfs.contract import TopicNames
from udfs.record_age import DEFAULT_MAX_PING_AGE_S
from udfs.truck_state import DEFAULT_DETECTION_SLACK_MS, DEFAULT_STATE_TTL_S


@dataclass(frozen=True)
class JobSettings:
    bootstrap: str = "127.0.0.1:9092"
    redis_url: str = "redis://127.0.0.1:6379/0"
    group_id: str = ""
    parallelism: int = 1
    checkpoint_dir: str = ""
    checkpoint_interval_ms: int = 10_000
    restore: str = ""  # "", "latest" (newest retained checkpoint) or a checkpoint path
    # Restore even if the checkpoint holds state of an operator this version no longer has (that
    # state is dropped): `flink run -n`. For upgrades the README names.
    allow_non_restored_state: bool = False
    out_of_orderness_ms: int = 10_000
    idle_timeout_ms: int = 60_000  # long enough that a partition merely slow in a catch-up
    # is not declared idle (that would let the watermark overtake its trucks)
    partition_fetch_bytes: int = 65_536  # small per-partition fetches keep partitions interleaved
    metrics_port: int = 0  # Prometheus reporter port (0: no reporter)
    rest_port: int = 0  # REST API of the embedded MiniCluster (0: any free port)
    redis_flush_ms: int = 200
    # Longest a record waits in a network buffer between operators (Flink's default is 100 ms):
    # the delay job uses 10 ms, which cut its deadline-to-alert p99 about 2x (docs/delay.md).
    buffer_timeout_ms: int = 100
    region_refresh_ms: int = 2_000
    fallback_grace_ms: int = 30_000
    # Tracking: how long (event time) a buffered ping may wait for the truck's next ping to be
    # detected; 0 detects every ping when the watermark passes it (udfs.truck_state).
    detection_slack_ms: int = DEFAULT_DETECTION_SLACK_MS
    # Tracking: hand pings to Python in bundles of one shard of trucks
    # (flink_jobs.tracking.bundling),
    # one call per bundle instead of per ping (2.6x the rate, docs/tracking.md); 0 keeps one
    # call per ping. Bundles are flushed at every watermark and checkpoint barrier, at
    # bundle_max_records and after bundle_flush_ms. Needs a JDK to build the operator jar (or
    # FLEETPULSE_OPERATORS_JAR). A checkpoint restores only into the mode (and shard count)
    # that took it.
    bundle_shards: int = 32
    bundle_max_records: int = 2_000
    bundle_flush_ms: int = 100
    # Tracking, bundled: trucks whose state an instance keeps in Python memory between
    # checkpoints (about 1.7 KB each; flink_jobs.tracking.shard_state). Past it, shards are read and
    # written through Flink's state per bundle, which is slower.
    trucks_in_memory: int = 500_000
    # A record whose ts lags the newest its reader has accepted by more than this is dead-
    # lettered as STALE_TIMESTAMP (event time, not the wall clock: udfs.record_age). The
    # tracking job's default is a day, the delay job's a week; raise it to backfill older data.
    max_record_age_s: int = DEFAULT_MAX_PING_AGE_S
    # Tracking: a truck's state is forgotten this long (event time) after its last ping, its
    # open incidents resolved (udfs.truck_state.expire).
    truck_state_ttl_s: int = DEFAULT_STATE_TTL_S
    gps_topic: str = TopicNames.gps
    scans_topic: str = TopicNames.scans
    alerts_topic: str = TopicNames.alerts
    geofence_topic: str = TopicNames.geofence_events
    dlq_topic: str = TopicNames.dlq
    geofences_file: str = ""
    bounded: bool = False  # stop at the end offsets seen at start (tests, benchmarks)
    stream_maxlen: int = 100_000
    restart_attempts: int = -1  # -1: restart forever (service); tests use 0 to fail fast
    # CPUs (cpulist: "0", "0-1") for this process and the MiniCluster JVM it starts; "": any.
    # One CPU keeps the interpreter lock's handoffs on one core (flink_jobs.runtime.affinity).
    cpus: str = ""

    @property
    def checkpoint_path(self) -> Path | None:
        return Path(self.checkpoint_dir) if self.checkpoint_dir else None


def parse_settings(
    argv: list[str] | None, default_group: str, **job_defaults: object
) -> JobSettings:
    """Flags override ``FLEETPULSE_*`` environment variables, which override the job's own
    defaults (``job_defaults``), which override :class:`JobSettings`'."""
    parser = argparse.ArgumentParser(description=f"fleetpulse {default_group}")
    defaults = JobSettings(group_id=default_group, **job_defaults)  # type: ignore[arg-type]
    for f in fields(JobSettings):
        flag = "--" + f.name.replace("_", "-")
        env = os.environ.get("FLEETPULSE_" + f.name.upper())
        default = getattr(defaults, f.name)
        if f.type in ("bool", bool):
            parser.add_argument(
                flag,
                action="store_true",
                default=env is not None and env.lower() in ("1", "true", "yes"),
            )
            continue
        typ = int if isinstance(default, int) else str
        if env is not None:
            try:
                default = typ(env)
            except ValueError:
                parser.error(
                    f"environment variable FLEETPULSE_{f.name.upper()} ({flag}): "
                    f"{env!r} is not a valid {typ.__name__}"
                )
        parser.add_argument(flag, type=typ, default=default)
    ns = parser.parse_args(argv)
    settings = JobSettings(**vars(ns))
    if settings.parallelism < 1:
        parser.error("--parallelism must be at least 1")
    if settings.buffer_timeout_ms < 0:
        parser.error("--buffer-timeout-ms must be 0 or more")
    if settings.detection_slack_ms < 0:
        parser.error("--detection-slack-ms must be 0 or more")
    if settings.bundle_shards < 1:
        parser.error("--bundle-shards must be at least 1")
    if settings.bundle_max_records < 1:
        parser.error("--bundle-max-records must be at least 1")
    if settings.bundle_flush_ms < 1:
        parser.error("--bundle-flush-ms must be at least 1")
    if settings.trucks_in_memory < 0:
        parser.error("--trucks-in-memory must be 0 or more")
    if settings.max_record_age_s < 1:
        parser.error("--max-record-age-s must be at least 1")
    if settings.truck_state_ttl_s < 3600:
        parser.error("--truck-state-ttl-s must be at least 3600 (an hour)")
    if settings.checkpoint_interval_ms < 100:
        parser.error("--checkpoint-interval-ms must be at least 100")
    try:
        check_usable(parse_cpu_list(settings.cpus))
    except AffinityError as exc:
        parser.error(f"--cpus {settings.cpus!r}: {exc}")
    return settings
