"""``--verify``: read both sides and compare them (:mod:`fleetpulse.backfill.compare`)."""

from __future__ import annotations

from collections.abc import Mapping

from fleetpulse.backfill import io
from fleetpulse.backfill.compare import Report, Thresholds, compare
from fleetpulse.backfill.ranges import Partition
from fleetpulse.backfill.run import staging_topics
from udfs.contract import TopicNames
from udfs.kafka_properties import KafkaProperties


def verify_staging(
    job: str,
    start_ms: int,
    stop_ms: int,
    bootstrap: str,
    props: KafkaProperties,
    live_url: str,
    staging_url: str,
    live: TopicNames,
    suffix: str,
    sample: int,
    thresholds: Thresholds,
    staged_from: Mapping[Partition, int] | None = None,
) -> Report:
    """Live against staging for the range: Redis state of ``job`` and its alerts by class
    (event time in the range; the live topic from its first record stamped at --from, the
    staging topic from ``staged_from``, the offsets before this run, else likewise)."""
    staging = staging_topics(live, suffix)
    live_alerts = io.alerts_by_class(
        io.read_alerts(bootstrap, props, live.alerts, since_ms=start_ms), job, start_ms, stop_ms
    )
    staged_alerts = io.alerts_by_class(
        io.read_alerts(bootstrap, props, staging.alerts, start=staged_from, since_ms=start_ms),
        job,
        start_ms,
        stop_ms,
    )
    live_client, staging_client = io.connect(live_url), io.connect(staging_url)
    try:
        trucks = io.sample_trucks(live_client, sample) if job == "tracking" else []
        return compare(
            io.redis_snapshot(live_client, job, trucks, live_alerts),
            io.redis_snapshot(staging_client, job, trucks, staged_alerts),
            thresholds,
        )
    finally:
        live_client.close()
        staging_client.close()
