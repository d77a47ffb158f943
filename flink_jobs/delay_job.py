"""Delay job: `fleet.scans` -> shipment state, delay alerts, `delays` and `region:*` in Redis.

Pipeline (one Flink job)::

    Kafka fleet.scans, read ONCE (raw bytes, partition, offset, key; watermark from ts per
    partition, emitted per record), keyed by Kafka partition
      -> ParseScans            validate (incl. STALE_TIMESTAMP against the partition's newest
      |                        accepted ts, keyed state); bad records -> fleet.dlq (contract
      |                        reason codes, DeadLetterSink: bounded, never fails the task)
      |   -> assignments (truck_id, shipment_id) ─┐
      |                 Kafka fleet.gps -> pings ─┴-> TruckFeedFunction (keyed by truck):
      |                                               held until the watermark, then taken in
      |                                               event-time order (udfs.feed_order);
      |                                               recent average speed -> TruckFix per
      |                                               assigned shipment (shipment_at_risk)
      └ VALID scans (side output, rowtime = ts, the source's watermarks) as a view
           -> SQL MATCH_RECOGNIZE (F1 X* F2 WITHIN 48 h) -> AttemptsMatch
    scans + fixes + matches -> key_by shipment_id
      -> ShipmentFunction      udfs.shipment_state: buffered until the watermark, then taken
                               in event-time order; one timer per shipment (next_deadline)
                               -> alerts (fleet.alerts), Redis effects
      -> key_by shard -> DelayRedisFunction   effects buffered in Flink list state, applied
                                              by an idempotent server-side script

Delay patterns: ``shipment_late`` (with severity escalation), ``shipment_stuck_at_hub``,
``shipment_no_scan``, ``shipment_at_risk`` (Python keyed state and timers) and
``delivery_attempts_failed`` (Flink CEP through ``MATCH_RECOGNIZE``; its resolve on
``DELIVERED`` comes from the keyed state, which also applies the same rule to the scans
because CEP silently drops rows that reach it behind its watermark: measured in the restart
test, where a partition marked idle under load and then resuming lost matches).

When traffic stops: event-time timers need the watermark, which stands still when no partition
has data. Each shipment with a deadline also holds a processing-time timer; when it fires and
the watermark has advanced less than the wall clock since it was set (minus
``--fallback-grace-ms``), event time is taken to be the watermark then seen plus the wall-clock
time elapsed less the grace, and the deadlines due by then fire with the event times they would
have had (about ``out_of_orderness + grace`` later in wall-clock time than with traffic).
Scans that later arrive behind that point are late: they are reconciled at once and correct
what was sent (resolve, `delays`, region totals). The truck feed holds its pings and
assignments until the watermark passes them; it has the same fallback (one processing-time
timer per truck while it holds inputs, same rule and grace), which releases the held inputs up
to the assumed event time in order; inputs that later arrive behind that point are applied at
once.

Restart: state and Kafka offsets come from the checkpoint; Redis effects not yet written are in
the writer's checkpointed list state; every Redis effect is absolute per shipment, so replays
never count twice; alerts are at-least-once (same ``dedup_key``). Two things make a restored job
end like one that never stopped (tests/delay/test_delay_kafka.py, the SIGKILL test):

* ``fleet.scans`` has one Kafka source (see :func:`read_scans`). With two sources in one group,
  a source that had not read a partition by the checkpoint restored it at the group's
  committed offset, which the other source had moved on: records were skipped.
* Its watermark is emitted after every record, so no checkpoint holds records whose watermark
  was still to come (watermarks are not checkpointed; a restored job with nothing new to read
  would never have fired the deadlines up to it).

A checkpoint of the job graph before this change (two scans sources) does not map onto this one.
The pattern reads only scans that passed validation: a rejected record changes nothing but its
dead letter (it can neither start nor complete a match).

Run embedded:  python -m flink_jobs.delay_job --bootstrap 127.0.0.1:9092 --redis-url ...
                 --checkpoint-dir ... [--restore latest] [--stuck-after-s 21600 ...]
Submit:        flink run -d -py flink_jobs/delay_job.py -- --bootstrap ... (same flags)
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from dataclasses import dataclass, replace
from typing import Any

from pyflink.common import Row, Types
from pyflink.datastream import (
    DataStream,
    KeyedCoProcessFunction,
    KeyedProcessFunction,
    KeyedStream,
    OutputTag,
    ProcessFunction,
    StreamExecutionEnvironment,
)
from pyflink.datastream.state import MapStateDescriptor, ValueStateDescriptor
from pyflink.table import DataTypes, Schema, StreamTableEnvironment

from flink_jobs.buffered_writer import BufferedWriterFunction, shard_of, writer_shards
from flink_jobs.common import (
    KEYED_TEXT,
    NO_WATERMARK,
    RAW_RECORD,
    attach_sinks,
    create_environment,
    dead_letter_sink,
    execute,
    kafka_raw_source,
    kafka_raw_table,
    kafka_text_sink,
    parse_raw_record,
    rejection_row,
)
from flink_jobs.jvm_keying import keyed_by_sql
from flink_jobs.metrics import OperatorCounts
from flink_jobs.settings import JobSettings, parse_settings
from udfs.feed_order import (
    NOTHING_RELEASED,
    FeedInput,
    applies_now,
    apply_in_order,
    assignment_input,
    ping_input,
    release_time,
)
from udfs.geo import default_regions
from udfs.models import AlertEvent, Rejection, ScanType
from udfs.ping_validation import parse_ping
from udfs.record_age import DEFAULT_MAX_SCAN_AGE_S, stale
from udfs.scan_validation import parse_scan
from udfs.shipment_state import (
    AttemptsMatch,
    DelayConfig,
    DelayConfigError,
    Event,
    RedisEffect,
    ShipmentState,
    StepCounts,
    advance,
    default_region_of,
    finished,
    is_open,
    next_deadline,
    step,
)
from udfs.stall_fallback import fallback_event_time, fallback_fire_at
from udfs.truck_speed import FeedConfig, TruckFeed

log = logging.getLogger("fleetpulse.delay")

JOB_NAME = "fleetpulse-delay"
DLQ_TAG = OutputTag("dlq", KEYED_TEXT)
ALERT_TAG = OutputTag("alerts", KEYED_TEXT)
ASSIGN_TAG = OutputTag("assignments", Types.PICKLED_BYTE_ARRAY())
PICKLED = Types.PICKLED_BYTE_ARRAY()
END_OF_INPUT = 2**63 - 1  # the watermark a bounded source sends when it is done


@dataclass(frozen=True)
class DelayOptions:
    """Delay-job flags on top of the shared JobSettings."""

    cfg: DelayConfig
    feed: FeedConfig
    at_risk: bool  # read fleet.gps for shipment_at_risk


def parse_options(argv: list[str]) -> tuple[DelayOptions, list[str]]:
    """Split the delay-specific flags off; the rest go to the shared ``parse_settings``."""
    p = argparse.ArgumentParser(add_help=False)
    d = DelayConfig()
    p.add_argument("--stuck-after-s", type=int, default=d.stuck_after_s)
    p.add_argument("--no-scan-after-s", type=int, default=d.no_scan_after_s)
    p.add_argument("--attempts-within-s", type=int, default=d.failed_attempts_within_s)
    p.add_argument("--at-risk-min-speed-kph", type=float, default=d.at_risk_min_speed_kph)
    p.add_argument("--at-risk-margin-s", type=int, default=d.at_risk_margin_s)
    p.add_argument("--retain-after-delivery-s", type=int, default=d.retain_after_delivery_s)
    p.add_argument("--expire-after-promise-s", type=int, default=d.expire_after_promise_s,
                   help="forget a never-delivered shipment this long after its promise or "
                        "last scan, whichever is later, resolving its incidents")
    p.add_argument("--max-scans-per-shipment", type=int, default=d.max_scans_per_shipment,
                   help="scans (and scan ids, for duplicates) a shipment's state holds")
    p.add_argument("--fix-interval-s", type=int, default=FeedConfig().fix_interval_s)
    p.add_argument("--no-at-risk", action="store_true")
    ns, rest = p.parse_known_args(argv)
    try:
        cfg = _delay_config(ns)
    except DelayConfigError as exc:  # the message names the field
        p.error(f"delay configuration: {exc}")
    return DelayOptions(cfg, FeedConfig(fix_interval_s=ns.fix_interval_s), not ns.no_at_risk), rest


def _delay_config(ns: argparse.Namespace) -> DelayConfig:
    return DelayConfig(stuck_after_s=ns.stuck_after_s, no_scan_after_s=ns.no_scan_after_s,
                      failed_attempts_within_s=ns.attempts_within_s,
                      at_risk_min_speed_kph=ns.at_risk_min_speed_kph,
                      at_risk_margin_s=ns.at_risk_margin_s,
                      retain_after_delivery_s=ns.retain_after_delivery_s,
                      expire_after_promise_s=ns.expire_after_promise_s,
                      max_scans_per_shipment=ns.max_scans_per_shipment)


# Validated scans as the MATCH_RECOGNIZE view reads them (CEP sees no rejected record).
CEP_ROW = Types.ROW_NAMED(["shipment_id", "scan_type", "scan_id", "ts"],
                          [Types.STRING(), Types.STRING(), Types.STRING(), Types.LONG()])
CEP_TAG = OutputTag("cep-scans", CEP_ROW)
# Scans are parsed keyed by their Kafka partition, read in the JVM (flink_jobs.jvm_keying).
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

    def __init__(self, topic: str, assignments: bool, max_age_ms: int) -> None:
        self.topic = topic
        self.assignments = assignments
        self.max_age_ms = max_age_ms

    def open(self, runtime_context: Any) -> None:
        self.counters = OperatorCounts(runtime_context.get_metrics_group())
        self.newest = runtime_context.get_state(ValueStateDescriptor("newest", Types.LONG()))

    def process_element(self, value: Row, ctx: KeyedProcessFunction.Context):  # type: ignore[no-untyped-def]
        raw, result = parse_raw_record(parse_scan, value)
        if not isinstance(result, Rejection):
            newest = self.newest.value()
            too_old = stale(result.ts, newest, self.max_age_ms)
            if too_old is not None:
                result = too_old
            elif newest is None or result.ts > newest:
                self.newest.update(result.ts)
        if isinstance(result, Rejection):
            self.counters.inc(f"dlq_{result.reason.value.lower()}")
            yield DLQ_TAG, rejection_row(self.topic, value, raw, result)
            return
        self.counters.inc("scans_parsed")
        yield result
        yield CEP_TAG, Row(result.shipment_id, result.type.value, result.scan_id, result.ts)
        if self.assignments and result.truck_id:
            yield ASSIGN_TAG, (result.truck_id, result.shipment_id, result.ts,
                               result.type is not ScanType.DELIVERED)


class ParsePings(ProcessFunction):
    """Valid pings as (truck_id, ts, lat, lng, speed); invalid ones are the tracking job's
    to dead-letter (so they are not dead-lettered twice), here only counted."""

    def open(self, runtime_context: Any) -> None:
        self.counters = OperatorCounts(runtime_context.get_metrics_group())

    def process_element(self, value: Row, ctx: ProcessFunction.Context):  # type: ignore[no-untyped-def]
        _, p = parse_raw_record(parse_ping, value)
        if isinstance(p, Rejection):
            self.counters.inc("pings_ignored")
            return
        yield (p.truck_id, p.ts, p.lat, p.lng, p.speed_kph)


class TruckFeedFunction(KeyedCoProcessFunction):
    """Keyed by truck: pings (input 1) and assignments (input 2) -> TruckFix per shipment.

    The fixes depend on the order of the inputs (a new shipment is seeded with the truck's
    newest fix), so inputs are held in keyed state until the watermark passes them and then
    applied in event-time order (:mod:`udfs.feed_order`): one event-time timer per truck and
    second, the held inputs in MapState by that second. An input already behind on arrival is
    applied at once. When the watermark stalls, a processing-time timer per truck releases
    held inputs by the same rule as the shipment operator's fallback (see the module notes).

    State: ``feed`` = [TruckFeed, proc_timer_at, event_time_then, wall_clock_then,
    released_until]; ``held`` = release second -> inputs. Both are checkpointed, with the
    timers, so a restored job releases what the stopped one held.
    """

    def __init__(self, feed_cfg: FeedConfig, settings: JobSettings) -> None:
        self.feed_cfg = feed_cfg
        self.settings = settings

    def open(self, runtime_context: Any) -> None:
        self.state = runtime_context.get_state(ValueStateDescriptor("feed", PICKLED))
        self.held = runtime_context.get_map_state(
            MapStateDescriptor("held", Types.LONG(), PICKLED))
        self.counters = OperatorCounts(runtime_context.get_metrics_group())

    def _load(self, truck_id: str) -> list[Any]:
        stored = self.state.value()
        if stored is None:
            return [TruckFeed(truck_id), None, None, None, NOTHING_RELEASED]
        if isinstance(stored, TruckFeed):  # state of the job before inputs were held
            return [stored, None, None, None, NOTHING_RELEASED]
        return stored  # type: ignore[no-any-return]

    def process_element1(self, value: tuple, ctx: Any):  # type: ignore[no-untyped-def, type-arg]
        yield from self._arrive(value[0], ping_input(value[1], value[2], value[3], value[4]),
                                ctx)

    def process_element2(self, value: tuple, ctx: Any):  # type: ignore[no-untyped-def, type-arg]
        yield from self._arrive(value[0], assignment_input(value[1], value[2], value[3]), ctx)

    def _arrive(self, truck_id: str, item: FeedInput, ctx: Any):  # type: ignore[no-untyped-def]
        box = self._load(truck_id)
        timers = ctx.timer_service()
        wm = timers.current_watermark()
        if applies_now(item[0], wm, box[4]):
            self.counters.inc("feed_inputs_late")
            fixes = apply_in_order(box[0], [item], self.feed_cfg)
            if box[0].shipments or box[0].recent:
                self.state.update(box)
            yield from fixes
            return
        at = release_time(item[0])
        bucket = self.held.get(at)
        if bucket is None:
            timers.register_event_time_timer(at)
            bucket = []
        bucket.append(item)
        self.held.put(at, bucket)
        if box[1] is None and not self.settings.bounded:
            self._schedule_fallback(box, at, wm, ctx)
            self.state.update(box)

    def on_timer(self, timestamp: int, ctx: Any):  # type: ignore[no-untyped-def]
        if ctx.time_domain().name == "EVENT_TIME":
            held = self.held.get(timestamp)
            if held is None:
                return  # released earlier by the fallback
            self.held.remove(timestamp)
            box = self._load(ctx.get_current_key())
            out = apply_in_order(box[0], held, self.feed_cfg)
            self.state.update(box)
            yield from out
            return
        box = self._load(ctx.get_current_key())
        if box[1] != timestamp:
            return  # superseded
        box[1] = None
        wm = ctx.timer_service().current_watermark()
        if wm >= END_OF_INPUT or self.held.is_empty():
            self.state.update(box)
            return
        now = int(time.time() * 1000)
        upto = fallback_event_time(wm, box[2], box[3], now, self.settings.fallback_grace_ms,
                                   NO_WATERMARK)
        fixes: list[Any] = []
        if upto is not None:
            keys = list(self.held.keys())
            due = sorted(at for at in keys if at <= upto)
            items = [x for at in due for x in self.held.get(at)]
            for at in due:
                self.held.remove(at)
            box[4] = max(box[4], upto)
            fixes = apply_in_order(box[0], items, self.feed_cfg)
            self.counters.inc("feed_fallback_releases")
        if not self.held.is_empty():
            self._schedule_fallback(box, min(self.held.keys()), wm, ctx)
        self.state.update(box)
        yield from fixes

    def _schedule_fallback(self, box: list[Any], next_release: int, wm: int, ctx: Any) -> None:
        """A processing-time timer for when event time, following the wall clock from the
        watermark or the last fallback point (before any watermark: the held input less the
        out-of-orderness), would reach ``next_release``."""
        base = max(wm, box[4]) if NO_WATERMARK < wm < END_OF_INPUT else \
            max(box[4], next_release - 999 - self.settings.out_of_orderness_ms)
        now = int(time.time() * 1000)
        fire = fallback_fire_at(next_release, base, now, self.settings.fallback_grace_ms)
        ctx.timer_service().register_processing_time_timer(fire)
        box[1], box[2], box[3] = fire, base, now


class ShipmentFunction(KeyedProcessFunction):
    """Thin adapter: read state, call udfs.shipment_state, write state, route, set timers."""

    def __init__(self, settings: JobSettings, cfg: DelayConfig) -> None:
        self.settings = settings
        self.cfg = cfg

    def open(self, runtime_context: Any) -> None:
        self.state = runtime_context.get_state(ValueStateDescriptor("shipment", PICKLED))
        self.counters = OperatorCounts(runtime_context.get_metrics_group())

    def _load(self, key: str) -> list[Any]:
        # [ShipmentState, event_timer_at, proc_timer_at, event_time_then, wall_clock_then]
        stored = self.state.value()
        return stored if stored is not None else [ShipmentState(key), None, None, None, None]

    def process_element(self, value: Event, ctx: KeyedProcessFunction.Context):  # type: ignore[no-untyped-def]
        box = self._load(value.shipment_id)
        was_open = is_open(box[0])
        counts = StepCounts()
        box[0], outputs = step(box[0], value, self.cfg, counts)
        self.counters.inc("inputs_duplicate", counts.duplicates)
        self.counters.inc("inputs_late", counts.late)
        self.counters.inc("inputs_over_cap", counts.over_cap)
        self.counters.inc("inputs_over_cap_dropped", counts.over_cap_dropped)
        wm = ctx.timer_service().current_watermark()
        if NO_WATERMARK < wm < END_OF_INPUT and value.ts <= wm:
            box[0], more = advance(box[0], wm, self.cfg)
            outputs += more
        yield from self._route(outputs)
        self._finish(box, was_open, ctx)

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext):  # type: ignore[no-untyped-def]
        box = self._load(ctx.get_current_key())
        wm = ctx.timer_service().current_watermark()
        if ctx.time_domain().name == "EVENT_TIME":
            if box[1] != timestamp:
                return  # superseded timer
            box[1] = None
            # At the end of a bounded input the watermark jumps to the end of time: walk the
            # deadlines one timer at a time instead.
            now_evt = timestamp if wm >= END_OF_INPUT else max(timestamp, wm)
        else:
            if box[2] != timestamp:
                return
            box[2] = None
            fallback = self._fallback_event_time(box, wm)
            if fallback is None:
                self._schedule(box, ctx)
                self.state.update(box)
                return
            self.counters.inc("fallback_advances")
            now_evt = fallback
        was_open = is_open(box[0])
        # the end of a bounded input walks every deadline but expires nothing (not weeks of
        # silence: a backfill resumed from its savepoint must find its shipments)
        box[0], outputs = advance(box[0], now_evt, self.cfg, expire=wm < END_OF_INPUT)
        yield from self._route(outputs)
        self._finish(box, was_open, ctx)

    def _finish(self, box: list[Any], was_open: bool, ctx: Any) -> None:
        now_open = is_open(box[0])
        if now_open != was_open:
            self.counters.inc("shipments_opened" if now_open else "shipments_closed")
        if finished(box[0], self.cfg):
            self.state.clear()
            return
        self._schedule(box, ctx)
        self.state.update(box)

    def _fallback_event_time(self, box: list[Any], wm: int) -> int | None:
        """Event time to assume when the watermark has stalled; None if it keeps pace."""
        return fallback_event_time(wm, box[3], box[4], int(time.time() * 1000),
                                   self.settings.fallback_grace_ms, NO_WATERMARK)

    def _event_time_estimate(self, box: list[Any], wm: int) -> int:
        """The watermark, or before the first one, the newest input less the bound."""
        if NO_WATERMARK < wm < END_OF_INPUT:
            return wm
        newest = box[0].scans[-1].ts if box[0].scans else box[0].processed_until
        return max(box[0].processed_until, newest - self.settings.out_of_orderness_ms)

    def _schedule(self, box: list[Any], ctx: Any) -> None:
        timers = ctx.timer_service()
        due = next_deadline(box[0], self.cfg,
                            expire=timers.current_watermark() < END_OF_INPUT)
        if due is None:
            return
        if box[1] != due:
            timers.register_event_time_timer(due)
            box[1] = due
        base = self._event_time_estimate(box, timers.current_watermark())
        now = int(time.time() * 1000)
        fire = fallback_fire_at(due, base, now, self.settings.fallback_grace_ms)
        if box[2] is None or fire < box[2]:
            timers.register_processing_time_timer(fire)  # a replaced one fires and is ignored
            box[2], box[3], box[4] = fire, base, now

    def _route(self, outputs: list[Any]):  # type: ignore[no-untyped-def]
        for out in outputs:
            if isinstance(out, AlertEvent):
                self.counters.inc(f"alerts_{out.alert_class}_{out.event_action}")
                if isinstance(out.custom_details.get("delay_severity"), int) and \
                        out.event_action == "trigger":
                    self.counters.inc(f"late_severity_{out.custom_details['delay_severity']}")
                yield ALERT_TAG, Row(out.dedup_key, out.to_json().decode())
            else:
                yield out


class DelayRedisFunction(BufferedWriterFunction):
    """Applies the shipments' Redis effects in order (see :mod:`flink_jobs.buffered_writer`).
    Also publishes gauges of `delays` by severity (read back from Redis, so they survive
    restarts)."""

    buffer_state = "pending_effects"
    written_count = "redis_effects"

    def open_writer(self, runtime_context: Any) -> None:
        from flink_jobs.delay_writer import RedisDelayWriter

        self.writer = RedisDelayWriter(self.settings.redis_url)
        self.late_counts: dict[int, int] = dict.fromkeys(range(1, 6), 0)
        self.last_gauge_read = 0.0
        group = runtime_context.get_metrics_group().add_group("fleetpulse")
        for sev in range(1, 6):
            group.gauge(f"delays_severity_{sev}", lambda s=sev: self.late_counts[s])

    def close(self) -> None:
        self.writer.close()

    def write(self, items: list[RedisEffect]) -> None:
        self.writer.apply(items)

    def after_flush(self) -> None:
        if time.time() - self.last_gauge_read > 5:
            self.last_gauge_read = time.time()
            self.late_counts = self.writer.late_counts()


def attempts_matches(t_env: StreamTableEnvironment, scans: DataStream, cfg: DelayConfig
                     ) -> DataStream:
    """``delivery_attempts_failed`` by Flink CEP: two failed attempts (distinct scans) of one
    shipment within the window, whatever happens in between, as AttemptsMatch objects.

    ``scans`` are the validated scans (CEP_ROW), with the source's watermarks: the pattern never
    sees a record that validation rejected."""
    t_env.create_temporary_view("valid_scans", t_env.from_data_stream(
        scans, Schema.new_builder()
        .column("shipment_id", DataTypes.STRING())
        .column("scan_type", DataTypes.STRING())
        .column("scan_id", DataTypes.STRING())
        .column("ts", DataTypes.BIGINT())
        .column_by_expression("rowtime", "TO_TIMESTAMP_LTZ(`ts`, 3)")
        .watermark("rowtime", "SOURCE_WATERMARK()")
        .build()))
    within_min = max(1, cfg.failed_attempts_within_s // 60)
    matches = t_env.sql_query(f"""
        SELECT shipment_id, first_ts, last_ts FROM valid_scans
        MATCH_RECOGNIZE (
          PARTITION BY shipment_id
          ORDER BY rowtime
          MEASURES F1.ts AS first_ts, F2.ts AS last_ts
          ONE ROW PER MATCH
          AFTER MATCH SKIP PAST LAST ROW
          PATTERN (F1 X* F2) WITHIN INTERVAL '{within_min}' MINUTE(6)
          DEFINE
            F1 AS F1.scan_type = 'DELIVERY_ATTEMPT_FAILED',
            X AS X.scan_type <> 'DELIVERY_ATTEMPT_FAILED',
            F2 AS F2.scan_type = 'DELIVERY_ATTEMPT_FAILED' AND F2.scan_id <> F1.scan_id
        )""")
    return t_env.to_data_stream(matches).map(
        lambda r: AttemptsMatch(r[0], int(r[1]), int(r[2]), 2), output_type=PICKLED
    ).name("attempts-matches").uid("attempts-matches")


def build(t_env: StreamTableEnvironment, scans: KeyedStream, pings: DataStream | None,
          settings: JobSettings, opts: DelayOptions) -> dict[str, DataStream]:
    """The job as a function of its sources: ``scans`` (RAW_RECORD rows keyed by Kafka
    partition, with the source's watermarks: :func:`read_scans`) and optionally ``pings``
    (RAW_RECORD rows of `fleet.gps`). Returns the streams of each sink: ``alerts`` and ``dlq``
    (KEYED_TEXT), ``effects`` (RedisEffect objects)."""
    # The region index is built here, in the client, and shipped with the function: importing
    # geopandas inside thread-mode operators while others open or close hangs the embedded
    # interpreter (the tracking job found the same).
    cfg = opts.cfg if opts.cfg.region_of is not default_region_of else \
        replace(opts.cfg, region_of=default_regions().region_of)
    feed = pings is not None and opts.at_risk
    parsed = scans.process(ParseScans(settings.scans_topic, feed,
                                      settings.max_record_age_s * 1000), output_type=PICKLED) \
        .name("parse-scans").uid("parse-scans")
    inputs = parsed.union(attempts_matches(t_env, parsed.get_side_output(CEP_TAG), cfg))
    if feed:
        assert pings is not None
        valid_pings = pings.process(ParsePings(), output_type=Types.PICKLED_BYTE_ARRAY()) \
            .name("parse-pings").uid("parse-pings")
        fixes = (valid_pings.connect(parsed.get_side_output(ASSIGN_TAG))
                 .key_by(lambda p: p[0], lambda a: a[0], key_type=Types.STRING())
                 .process(TruckFeedFunction(opts.feed, settings), output_type=PICKLED)
                 .name("truck-feed").uid("truck-feed"))
        inputs = inputs.union(fixes)
    shipments = (inputs.key_by(lambda e: e.shipment_id, key_type=Types.STRING())
                 .process(ShipmentFunction(settings, cfg), output_type=PICKLED)
                 .name("shipment-state").uid("shipment-state"))
    return {"alerts": shipments.get_side_output(ALERT_TAG),
            "dlq": parsed.get_side_output(DLQ_TAG),
            "effects": shipments}


def attach_redis(effects: DataStream, settings: JobSettings) -> None:
    shards = writer_shards(settings)
    (effects.key_by(lambda e: shard_of(e.shipment_id, shards), key_type=Types.INT())
     .process(DelayRedisFunction(settings)).name("redis-delays").uid("redis-delays"))


def read_scans(t_env: StreamTableEnvironment, settings: JobSettings) -> KeyedStream:
    """`fleet.scans` read by ONE Kafka source: its RAW_RECORD rows keyed by Kafka partition in
    the JVM, for :class:`ParseScans`, whose valid scans feed both the Python path and
    ``MATCH_RECOGNIZE``.

    One source matters: two queries of the Kafka table would be two sources with separate
    checkpointed offsets but one group id. A source that had not yet read a partition when a
    checkpoint was taken stores "committed offset" for it, and after a restore resolves that
    against the group's offsets, which the other source had committed further on: it skipped
    records. Watermarks are emitted per record so a checkpoint never holds records without
    their watermark.
    """
    kafka_raw_table(t_env, settings, settings.scans_topic, "scans_kafka",
                    watermark_per_record=True)
    return keyed_by_sql(t_env, "scans_kafka", PARTITION_KEY_SQL, RAW_RECORD)


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    opts, rest = parse_options(list(sys.argv[1:] if argv is None else argv))
    # Alerts are the product here: short network-buffer flushes (see docs/delay.md).
    settings = parse_settings(rest, JOB_NAME, buffer_timeout_ms=10,
                              max_record_age_s=DEFAULT_MAX_SCAN_AGE_S)
    execute(job(settings, opts), JOB_NAME, settings)


def job(settings: JobSettings, opts: DelayOptions) -> StreamExecutionEnvironment:
    """The whole job, sources to sinks, in a new environment, ready to execute."""
    env, t_env = create_environment(settings, JOB_NAME)
    scans = read_scans(t_env, settings)
    pings = kafka_raw_source(t_env, settings, settings.gps_topic, "gps_source") \
        if opts.at_risk else None
    outputs = build(t_env, scans, pings, settings, opts)
    attach_redis(outputs["effects"], settings)
    attach_sinks(t_env, {
        kafka_text_sink(t_env, settings, settings.alerts_topic, "alerts_sink"): outputs["alerts"],
    })
    dead_letter_sink(env, outputs["dlq"], settings)
    return env


if __name__ == "__main__":
    # Run the imported module's main, not this __main__ copy: cloudpickle ships classes of
    # __main__ by value (with every global they touch), those of a module by reference.
    from flink_jobs.delay_job import main as module_main

    module_main(sys.argv[1:])
