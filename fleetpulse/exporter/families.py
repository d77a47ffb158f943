"""Readings as Prometheus metric families (their names and meaning: docs/exporter-notes.md).

Pure: a source that could not be read has no samples in this scrape (absent, not stale), so
an alert on a gauge does not fire on a value that is no longer true; the scrape error counter
and ``fleetpulse_flink_job_up`` 0 (jobs of a REST API that stopped answering) say why.
"""

from __future__ import annotations

from prometheus_client.core import GaugeMetricFamily, Metric

from fleetpulse.exporter.readings import Readings


def gauge(name: str, doc: str, labels: list[str]) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, labels=labels)


def families(readings: Readings) -> list[Metric]:
    """The gauges of one reading."""
    lag = gauge(
        "fleetpulse_kafka_consumer_lag_records",
        "Records a consumer group has not committed yet, per topic: "
        "sum over partitions of end offset - committed offset",
        ["group", "topic"],
    )
    for x in readings.lags or ():
        lag.add_metric([x.group, x.topic], x.lag)

    age = GaugeMetricFamily(
        "fleetpulse_position_age_seconds",
        "Seconds since the newest stream:positions entry was written (Redis clock)",
    )
    trucks = gauge(
        "fleetpulse_region_trucks",
        "Trucks per region and state (active|moving|stopped), from region:{REGION}",
        ["region", "state"],
    )
    shipments = gauge(
        "fleetpulse_region_shipments",
        "Shipments picked up in the region (total_shipments of region:{REGION})",
        ["region"],
    )
    delay_hours = gauge(
        "fleetpulse_region_delay_hours",
        "Hours late of the region's shipments delivered late (total_delay_hours)",
        ["region"],
    )
    delayed = gauge(
        "fleetpulse_delayed_shipments",
        "Shipments late now and not delivered, per delay severity (members of delays)",
        ["severity"],
    )
    r = readings.redis
    if r is not None:
        if r.position_age_s is not None:
            age.add_metric([], r.position_age_s)
        for region in r.regions:
            for state, count in region.trucks.items():
                if count is not None:
                    trucks.add_metric([region.region, state], count)
            if region.shipments is not None:
                shipments.add_metric([region.region], region.shipments)
            if region.delay_hours is not None:
                delay_hours.add_metric([region.region], region.delay_hours)
        for severity, count in sorted(r.delayed.items()):
            delayed.add_metric([str(severity)], count)

    checkpoint_age = gauge(
        "fleetpulse_flink_checkpoint_age_seconds",
        "Seconds since the job's last completed checkpoint (since its start if none yet)",
        ["job"],
    )
    restarts = gauge(
        "fleetpulse_flink_job_restarts", "Flink numRestarts of the running job", ["job"]
    )
    up = gauge(
        "fleetpulse_flink_job_up",
        "1 if the Flink job is RUNNING, 0 if it is in another state or its REST API stopped "
        "answering",
        ["job"],
    )
    for job in readings.jobs or ():
        up.add_metric([job.name], 1.0 if job.up else 0.0)
        if job.restarts is not None:
            restarts.add_metric([job.name], job.restarts)
        if job.checkpoint_age_s is not None:
            checkpoint_age.add_metric([job.name], job.checkpoint_age_s)
    return [lag, age, trucks, shipments, delay_hours, delayed, checkpoint_age, restarts, up]
