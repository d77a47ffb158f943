"""The delay job's readers: `fleet.scans` validated keyed by Kafka partition, `fleet.gps` pings
for the at-risk feed (each record once, as RAW_RECORD rows)."""

from __future__ import annotations

from typing import Any

from pyflink.common import Row, Types
from pyflink.datastream import KeyedProcessFunction, OutputTag, ProcessFunction
from pyflink.datastream.state import ValueStateDescriptor

from flink_jobs.runtime.clock import Clock, wall_clock_ms
from flink_jobs.runtime.metrics import OperatorCounts, dead_letter_series, records_series
from flink_jobs.runtime.records import KEYED_TEXT, parse_raw_record, rejection_row
from udfs.models import Rejection, ScanType
from udfs.ping_validation import parse_ping
from udfs.record_age import stale
from udfs.scan_validation import parse_scan

DLQ_TAG = OutputTag("dlq", KEYED_TEXT)
ASSIGN_TAG = OutputTag("assignments", Types.PICKLED_BYTE_ARRAY())

# Validated scans as the MATCH_RECOGNIZE view reads them (CEP sees no rejected record).
CEP_ROW = Types.ROW_NAMED(
    ["shipment_id", "scan_type", "scan_id", "ts"],
    [Types.STRING(), Types.STRING(), Types.STRING(), Types.LONG()],
)
CEP_TAG = OutputTag("cep-scans", CEP_ROW)
PARSED = records_series("parsed")
IGNORED = records_series("ignored")  # invalid pings: the tracking job dead-letters them
# Scans are parsed keyed by their Kafka partition, read in the JVM (flink_jobs.runtime.jvm_keying).
PARTITION_KEY_SQL = "CAST(`partition` AS STRING)"


class ParseScans(KeyedProcessFunction):
    """Decode and validate, keyed by Kafka partition; valid scans continue as Scan objects (and
    as CEP_ROW rows for ``MATCH_RECOGNIZE``), the rest go to the DLQ with their origin and key.
    Scans naming a truck also go out as assignments for the truck feed, when there is one (a
    side output nobody consumes is an error in PyFlink).

    A scan whose ts lags the newest its partition has had accepted by more than
    ``--max-record-age-s`` is ``STALE_TIMESTAMP`` (udfs.record_age). That newest time is keyed
    state, checkpointed, and a partition's records arrive in order, so a restored job judges
    every record it reads again as the stopped one did."""

    def __init__(
        self, topic: str, assignments: bool, max_age_ms: int, clock: Clock = wall_clock_ms
    ) -> None:
        self.topic = topic
        self.assignments = assignments
        self.max_age_ms = max_age_ms
        self.clock = clock

    def open(self, runtime_context: Any) -> None:
        self.counters = OperatorCounts(runtime_context.get_metrics_group())
        self.newest = runtime_context.get_state(ValueStateDescriptor("newest", Types.LONG()))

    def process_element(self, value: Row, ctx: KeyedProcessFunction.Context):  # type: ignore[no-untyped-def]
        now = self.clock()
        raw, result = parse_raw_record(parse_scan, value, now)
        if not isinstance(result, Rejection):
            newest = self.newest.value()
            too_old = stale(result.ts, newest, self.max_age_ms)
            if too_old is not None:
                result = too_old
            elif newest is None or result.ts > newest:
                self.newest.update(result.ts)
        if isinstance(result, Rejection):
            self.counters.add(dead_letter_series(result.reason), 1)
            yield DLQ_TAG, rejection_row(self.topic, value, raw, result, now)
            return
        self.counters.add(PARSED, 1)
        yield result
        yield CEP_TAG, Row(result.shipment_id, result.type.value, result.scan_id, result.ts)
        if self.assignments and result.truck_id:
            yield (
                ASSIGN_TAG,
                (
                    result.truck_id,
                    result.shipment_id,
                    result.ts,
                    result.type is not ScanType.DELIVERED,
                ),
            )


class ParsePings(ProcessFunction):
    """Valid pings as (truck_id, ts, lat, lng, speed); invalid ones are the tracking job's
    to dead-letter (so they are not dead-lettered twice), here only counted."""

    def __init__(self, clock: Clock = wall_clock_ms) -> None:
        self.clock = clock

    def open(self, runtime_context: Any) -> None:
        self.counters = OperatorCounts(runtime_context.get_metrics_group())

    def process_element(self, value: Row, ctx: ProcessFunction.Context):  # type: ignore[no-untyped-def]
        _, p = parse_raw_record(parse_ping, value, self.clock())
        if isinstance(p, Rejection):
            self.counters.add(IGNORED, 1)
            return
        yield (p.truck_id, p.ts, p.lat, p.lng, p.speed_kph)
