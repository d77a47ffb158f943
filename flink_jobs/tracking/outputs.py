"""What the tracking job's truck function emits, in either mode (per record or bundled).

Main output: ``Row(writer shard, positions)``, keyed by shard in the JVM for the Redis writer
(per record one ``PositionWrite``, bundled a list of them). Side outputs: dead letters, alerts
and geofence transitions (``Row(key, JSON)`` for their Kafka topics), and census deltas
``Row(region, [(status, delta), ...])`` for the region counts. The bundled function emits each
kind's rows of a call as one batch, column by column, on the tag :data:`BATCHED` names, spread
out again in the JVM (:func:`flink_jobs.tracking.bundling.exploded`).
"""

from __future__ import annotations

import orjson
from pyflink.common import Row, Types
from pyflink.datastream import OutputTag

from flink_jobs.runtime.metrics import (
    Series,
    alert_series,
    dead_letter_series,
    records_series,
    series,
)
from flink_jobs.runtime.records import KEYED_TEXT
from flink_jobs.runtime.refresh import reassert_series
from flink_jobs.tracking.bundling import columns_of
from udfs.models import AlertEvent, GeofenceTransition, Reason
from udfs.truck_state import Counters

DLQ_TAG = OutputTag("dlq", KEYED_TEXT)
ALERT_TAG = OutputTag("alerts", KEYED_TEXT)
GEOFENCE_TAG = OutputTag("geofence", KEYED_TEXT)
# Census deltas of one region: Row(region, [(status, delta), ...]), keyed by region in the JVM.
CENSUS_ROW = Types.ROW([Types.STRING(), Types.PICKLED_BYTE_ARRAY()])
CENSUS_TAG = OutputTag("census", CENSUS_ROW)
SHARDED_WRITE = Types.ROW([Types.INT(), Types.PICKLED_BYTE_ARRAY()])


# Each side output's tag for batches of its rows, one batch per call and kind: a Python operator
# in thread mode crosses into the JVM for every side-output record, which the bundled function,
# emitting thousands of alerts from one timer at times, pays once per batch instead.
BATCHED: dict[OutputTag, OutputTag] = {
    tag: OutputTag(f"{tag.tag_id}-batch", columns_of(row_type))
    for tag, row_type in (
        (DLQ_TAG, KEYED_TEXT),
        (ALERT_TAG, KEYED_TEXT),
        (GEOFENCE_TAG, KEYED_TEXT),
        (CENSUS_TAG, CENSUS_ROW),
    )
}


def alert_row(alert: AlertEvent) -> Row:
    """An alert for `fleet.alerts`, keyed by its dedup key (one incident, one partition)."""
    return Row(alert.dedup_key, alert.to_json().decode())


def alert_count(alert: AlertEvent) -> Series:
    return alert_series(alert.alert_class, alert.event_action)


def reassert_count(alert: AlertEvent) -> Series:
    """A trigger sent again because its alert is still open (``--alert-refresh-s``): counted
    apart from the alerts, in the family both jobs count re-asserts in, so ``alerts`` still
    counts incidents."""
    return reassert_series(alert.alert_class)


def geofence_row(transition: GeofenceTransition) -> Row:
    """A transition for `fleet.geofence-events`, keyed by truck."""
    return Row(transition.truck_id, orjson.dumps(transition.to_dict()).decode())


# The counts of the truck function, by series (flink_jobs.runtime.metrics): ``parsed`` pings
# passed validation and the age bound; each then was accepted, a duplicate, out of order or late
# (or an IMPOSSIBLE_SPEED dead letter).
PARSED = records_series("parsed")
ACCEPTED = records_series("accepted")
DUPLICATE = records_series("duplicate")
OUT_OF_ORDER = records_series("out_of_order")
LATE = records_series("late")
TRUCKS_EXPIRED = series("trucks_expired")
POSITION_WRITES = series("redis_writes", ("kind", "position"))
DEAD_LETTERS: dict[Reason, Series] = {r: dead_letter_series(r) for r in Reason}


def arrival_counts(counts: Counters) -> dict[Series, int]:
    """The counts of what arriving pings did."""
    return {
        ACCEPTED: counts.accepted,
        DUPLICATE: counts.duplicates,
        OUT_OF_ORDER: counts.out_of_order,
        LATE: counts.late,
    }
