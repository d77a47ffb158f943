"""Tracking job: `fleet.gps` -> live truck picture in Redis, motion alerts, geofence events.

Pipeline (one Flink job)::

    Kafka fleet.gps (raw bytes, partition, offset; watermark from ts per partition)
      -> key_by truck_id      read from the JSON by SQL in the JVM (no Python call)
      -> TruckFunction        validate (bad records -> fleet.dlq), then udfs.truck_state:
                              dedup, newest-wins position, impossible jumps
                              (-> fleet.dlq), event-time-ordered detection with timers
                              -> alerts (fleet.alerts), geofence transitions, census deltas
      -> key_by shard (JVM) -> RedisWriterFunction   positions buffered in Flink list state,
                                               flushed as guarded batches
      census -> key_by region (JVM) -> RegionCensusFunction   absolute region:{R} counts every 2 s

That is the per-record job (``--bundle-shards 0``). By default (``--bundle-shards 32``) the
records reach Python in bundles instead, one call per shard of trucks and flush
(:mod:`flink_jobs.bundling`), and :class:`flink_jobs.tracking_bundled.BundledTruckFunction`
does per bundle what TruckFunction does per ping, with the same pure logic. It keeps its state
in Python memory between checkpoints and writes Redis itself, on a background thread, both
settled at a checkpoint marker just ahead of each barrier (:mod:`flink_jobs.shard_state`), so
it needs no writer operator. Same outputs, same semantics, several times the rate.

Timeouts (offline, unplanned stop) run on event-time timers. When the whole input goes quiet the
watermark stops, so a processing-time fallback takes over: if, on a truck's fallback timer, the
watermark has advanced less than the wall clock since the timer was set (minus a grace period),
event time is taken to be the watermark then seen plus the wall-clock time elapsed, and the
due timeouts fire with the event times they would have had. Pings that later arrive behind that
point are counted as late and do not rewrite the alerts already sent.

Run embedded:  python -m flink_jobs.tracking_job --bootstrap 127.0.0.1:9092 --redis-url ...
Submit:        flink run -d -py flink_jobs/tracking_job.py -- --bootstrap ... (same flags)
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path
from typing import Any

from pyflink.common import Row, Types
from pyflink.datastream import (
    DataStream,
    KeyedProcessFunction,
    KeyedStream,
    OutputTag,
    StreamExecutionEnvironment,
)
from pyflink.datastream.state import ValueStateDescriptor
from pyflink.table import StreamTableEnvironment

from flink_jobs.buffered_writer import (
    END_OF_INPUT,
    BufferedWriterFunction,
    shard_of,
    writer_shards,
)
from flink_jobs.bundling import bundled_by_shard, exploded
from flink_jobs.common import (
    NO_WATERMARK,
    RAW_RECORD,
    attach_sinks,
    create_environment,
    dead_letter_sink,
    execute,
    kafka_raw_table,
    kafka_text_sink,
    parse_raw_record,
    rejection_row,
)
from flink_jobs.gc_tuning import relax_young_collections
from flink_jobs.jvm_keying import keyed_by_sql, keyed_on_first_field
from flink_jobs.metrics import OperatorCounts
from flink_jobs.profiling import start_profiler, stop_profiler
from flink_jobs.settings import JobSettings, parse_settings
from flink_jobs.timers import TimersOnce
from flink_jobs.tracking_bundled import BundledTruckFunction
from flink_jobs.tracking_outputs import (
    ALERT_TAG,
    BATCHED,
    CENSUS_TAG,
    DLQ_TAG,
    GEOFENCE_TAG,
    SHARDED_WRITE,
    alert_count_name,
    alert_row,
    arrival_counts,
    geofence_row,
)
from udfs.geo import GeofenceIndex, RegionIndex, default_regions
from udfs.models import AlertEvent, GeofenceTransition, Ping, Reason, Rejection
from udfs.ping_validation import parse_ping
from udfs.record_age import stale
from udfs.truck_state import (
    CensusDelta,
    Counters,
    PositionWrite,
    SpeedRejection,
    TrackingConfig,
    TruckState,
    advance,
    catch_up,
    expire,
    next_wakeup,
    on_ping,
)

JOB_NAME = "fleetpulse-tracking"

log = logging.getLogger("fleetpulse.tracking")

# The truck a `fleet.gps` record names, read in the JVM ('' when it names none: such a record
# is dead-lettered by the parser, whatever its key). The bundler only hashes it to a shard.
TRUCK_KEY_SQL = "COALESCE(JSON_VALUE(CAST(`value` AS STRING), '$.truck_id'), '')"
# The same as the key the per-record function gets: '' too when it names none that could be
# valid (udfs.ping_validation.TRUCK_ID_RE), so a hostile id (a lone surrogate, 300 KB of text)
# never becomes a key, which PyFlink fails to hand to Python (a UnicodeDecodeError that fails
# the task). Not for the bundler: a regular expression per record costs the JVM thread more.
TRUCK_KEY_SQL_CHECKED = ("COALESCE(REGEXP_EXTRACT(JSON_VALUE(CAST(`value` AS STRING), "
                         "'$.truck_id'), '^([A-Za-z0-9_.-]{1,64})$', 1), '')")


def validate(value: Row, key: str) -> tuple[bytes, Ping | Rejection]:
    """A RAW_RECORD row keyed by the JVM as its bytes and the ping they hold, or why not."""
    raw, ping = parse_raw_record(parse_ping, value)
    if not isinstance(ping, Rejection) and ping.truck_id != key:
        # The JVM's JSON reader and the parser disagree on the truck_id: the record cannot be
        # placed with certainty. (A guard: no such input is known; a key given twice resolves
        # to the last one in both.)
        return raw, Rejection(Reason.BAD_VALUE, "truck_id is ambiguous")
    return raw, ping


class TruckFunction(KeyedProcessFunction):
    """Thin adapter: validate the record (bad ones to the DLQ), read state, call
    udfs.truck_state, write state, route outputs, set timers.

    Validation happens here rather than in an operator of its own because the records arrive
    keyed by the JVM (:func:`pings_by_truck`): one Python call per ping instead of two.
    """

    def __init__(self, settings: JobSettings, cfg: TrackingConfig, regions: RegionIndex,
                 geofences: GeofenceIndex) -> None:
        # Regions and geofences are built by the client and shipped with the function:
        # importing geopandas inside several thread-mode operators at once hangs the
        # embedded interpreter, and the client is the one place that reads the files.
        self.settings = settings
        self.cfg = cfg
        self.regions = regions
        self.geofences = geofences
        self.shards = writer_shards(settings)

    def open(self, runtime_context: Any) -> None:
        relax_young_collections()
        self.state = runtime_context.get_state(
            ValueStateDescriptor("truck", Types.PICKLED_BYTE_ARRAY()))
        self.counters = OperatorCounts(runtime_context.get_metrics_group())
        self.run_counts = Counters()
        self.profiler = start_profiler()

    def close(self) -> None:
        stop_profiler(self.profiler, "truck-state")

    def _load(self, key: str) -> list[Any]:
        # [TruckState, event_timer_at, proc_timer_at, watermark_at_proc_timer, wall_at_proc_timer]
        stored = self.state.value()
        return stored if stored is not None else [TruckState(key), None, None, None, None]

    def process_element(self, value: Row, ctx: KeyedProcessFunction.Context):  # type: ignore[no-untyped-def]
        raw, ping = validate(value, ctx.get_current_key())
        if isinstance(ping, Rejection):
            self.counters.inc(f"dlq_{ping.reason.value.lower()}")
            yield DLQ_TAG, rejection_row(self.settings.gps_topic, value, raw, ping)
            return
        box = self._load(ping.truck_id)
        # Per record, the function sees one truck's state only: a ping's age is judged against
        # its truck's newest or the watermark, whichever is later (the bundled function keeps
        # the newest per Kafka partition). A truck's first ping has only the watermark, which a
        # restore sets back: a ping far behind it may be judged otherwise when read again.
        wm = ctx.timer_service().current_watermark()
        reference = max(box[0].pos_ts, wm if wm > NO_WATERMARK else -1)
        too_old = stale(ping.ts, reference if reference >= 0 else None,
                        self.settings.max_record_age_s * 1000)
        if too_old is not None:
            self.counters.inc(f"dlq_{too_old.reason.value.lower()}")
            yield DLQ_TAG, rejection_row(self.settings.gps_topic, value, raw, too_old)
            return
        self.counters.inc("parsed")
        if box[0].pending:  # detect what the watermark has passed, now that state is loaded
            wm = ctx.timer_service().current_watermark()
            for out in catch_up(box[0], wm, self.cfg, self.geofences.containing):
                yield from self._route(out)
        counts = Counters()
        outputs = on_ping(box[0], ping, self.cfg, self.regions.region_of, counts)
        self._count(counts)
        for out in outputs:
            if isinstance(out, SpeedRejection):
                self.counters.inc("dlq_impossible_speed")
                yield DLQ_TAG, rejection_row(self.settings.gps_topic, value, raw,
                                             Rejection(Reason.IMPOSSIBLE_SPEED, out.detail))
            else:
                yield from self._route(out)
        self._schedule(box, ctx)
        self.state.update(box)

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext):  # type: ignore[no-untyped-def]
        box = self._load(ctx.get_current_key())
        wm = ctx.timer_service().current_watermark()
        if ctx.time_domain().name == "EVENT_TIME":
            if box[1] != timestamp:
                return  # superseded timer
            box[1] = None
            now_evt = max(timestamp, wm)
        else:
            if box[2] != timestamp:
                return
            box[2] = None
            now_evt = self._fallback_event_time(box, wm)
            if now_evt is None:
                self._schedule(box, ctx)
                self.state.update(box)
                return
        for out in advance(box[0], now_evt, self.cfg, self.geofences.containing):
            yield from self._route(out)
        closing = expire(box[0], now_evt, self.cfg)
        if closing is not None:  # no ping for --truck-state-ttl-s: forget the truck
            for out in closing:
                yield from self._route(out)
            self.counters.inc("trucks_expired")
            self.state.clear()  # its timers still set find no state and do nothing
            return
        self._schedule(box, ctx, now_evt)
        self.state.update(box)

    def _fallback_event_time(self, box: list[Any], wm: int) -> int | None:
        """Event time to assume when the watermark has stalled; None if it keeps pace."""
        wm_then, wall_then = box[3], box[4]
        elapsed = int(time.time() * 1000) - wall_then
        if wm > NO_WATERMARK and wm_then is not None and wm - wm_then >= elapsed - \
                self.settings.fallback_grace_ms:
            return None
        base = wm_then if wm_then is not None else box[0].pos_ts - self.settings.out_of_orderness_ms
        return max(wm, base + elapsed)

    def _schedule(self, box: list[Any], ctx: Any, reached: int | None = None) -> None:
        """Set the truck's timers for its next wake-up. ``reached``: the event time a timer
        just advanced it to; a wake-up not after it (only the expiry an end of input declined,
        :func:`expire`) would fire at once, for ever, so it is not set."""
        due = next_wakeup(box[0], self.cfg)
        if due is None or reached is not None and due <= reached:
            return
        timers = ctx.timer_service()
        if box[1] != due:
            # One event-time timer per truck: a superseded one is deleted now rather than left
            # to fire later, which would cost a call and a state load for nothing (each ping
            # arriving moves the wake-up to the oldest buffered ping, usually itself, plus the
            # detection slack).
            if box[1] is not None:
                timers.delete_event_time_timer(box[1])
            timers.register_event_time_timer(due)
            box[1] = due
        if box[2] is None and not self.settings.bounded:
            # Bounded runs end with a final watermark that fires every event-time timer, and a
            # pending processing-time timer would keep the finished job waiting.
            wm = timers.current_watermark()
            wm_known = wm if wm > NO_WATERMARK else None
            ahead = due - (wm_known if wm_known is not None else box[0].pos_ts)
            now = int(time.time() * 1000)
            fire = now + max(ahead, 1000) + self.settings.fallback_grace_ms
            fire -= fire % 1000
            timers.register_processing_time_timer(fire)
            box[2], box[3], box[4] = fire, wm_known, now

    def _count(self, counts: Counters) -> None:
        for name, n in arrival_counts(counts).items():
            self.counters.inc(name, n)

    def _route(self, out: object):  # type: ignore[no-untyped-def]
        if isinstance(out, PositionWrite):
            # (shard, write): keyed for the writer in the JVM, see keyed_on_first_field
            yield Row(shard_of(out.truck_id, self.shards), out)
        elif isinstance(out, CensusDelta):
            yield CENSUS_TAG, Row(out.region, [(out.status, out.delta)])
        elif isinstance(out, AlertEvent):
            self.counters.inc(alert_count_name(out))
            yield ALERT_TAG, alert_row(out)
        elif isinstance(out, GeofenceTransition):
            yield GEOFENCE_TAG, geofence_row(out)


class RedisWriterFunction(BufferedWriterFunction):
    """Writes positions as guarded batches (see :mod:`flink_jobs.buffered_writer`), and
    sweeps expired trucks out of ``trucks:geo`` (``SweepingPositionWriter``)."""

    buffer_state = "pending_writes"
    written_count = "redis_position_writes"

    def open_writer(self, runtime_context: Any) -> None:
        from flink_jobs.redis_writer import SweepingPositionWriter

        self.writer = SweepingPositionWriter(self.settings.redis_url, self.settings.stream_maxlen)
        self.profiler = start_profiler()

    def close(self) -> None:
        stop_profiler(self.profiler, "redis-positions")
        self.writer.close()

    def write(self, items: list[PositionWrite]) -> None:
        self.writer(items)

    def after_flush(self) -> None:
        self.writer([])  # the sweep, when it is due, even with nothing to write


class RegionCensusFunction(KeyedProcessFunction):
    """Per-region counts of trucks by status, written as absolute values on a timer."""

    def __init__(self, settings: JobSettings) -> None:
        self.settings = settings

    def open(self, runtime_context: Any) -> None:
        from flink_jobs.redis_writer import RedisTruckWriter

        self.counts = runtime_context.get_state(
            ValueStateDescriptor("census", Types.PICKLED_BYTE_ARRAY()))
        self.writer = RedisTruckWriter(self.settings.redis_url)
        self.timers = TimersOnce()

    def close(self) -> None:
        self.writer.close()

    def process_element(self, value: list[tuple[str, int]], ctx: KeyedProcessFunction.Context):  # type: ignore[no-untyped-def]
        counts = self.counts.value()
        if counts is None:
            counts = {}
            now = ctx.timer_service().current_processing_time()
            ctx.timer_service().register_processing_time_timer(
                now + self.settings.region_refresh_ms)
        for status, delta in value:
            counts[status] = counts.get(status, 0) + delta
        self.counts.update(counts)
        self.timers.event(ctx, END_OF_INPUT)
        return iter(())

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext):  # type: ignore[no-untyped-def]
        from flink_jobs.redis_writer import region_count_fields

        counts = self.counts.value() or {}
        self.writer.write_region_counts({ctx.get_current_key(): region_count_fields(counts)})
        ended = ctx.timer_service().current_watermark() >= END_OF_INPUT
        if ctx.time_domain().name != "EVENT_TIME" and not ended:
            ctx.timer_service().register_processing_time_timer(
                timestamp + self.settings.region_refresh_ms)
        return iter(())


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


def load_geofences(settings: JobSettings) -> GeofenceIndex:
    if settings.geofences_file:
        return GeofenceIndex.from_file(Path(settings.geofences_file))
    return GeofenceIndex.from_file()


def pings_by_truck(t_env: StreamTableEnvironment, table: str) -> KeyedStream:
    """The RAW_RECORD rows of ``table`` keyed by the truck their JSON names, read in the JVM
    (see :mod:`flink_jobs.jvm_keying`)."""
    return keyed_by_sql(t_env, table, TRUCK_KEY_SQL_CHECKED, RAW_RECORD)


def build_from_table(env: StreamExecutionEnvironment, t_env: StreamTableEnvironment,
                     table: str, settings: JobSettings, cfg: TrackingConfig
                     ) -> dict[str, DataStream]:
    """The job over ``table`` (the columns of RAW_RECORD and a watermark, like
    :func:`flink_jobs.common.kafka_raw_table`'s), per record or bundled as ``settings`` say:
    returns the streams each sink consumes."""
    if settings.bundle_shards:
        bundles = bundled_by_shard(env, t_env, table, TRUCK_KEY_SQL, settings.bundle_shards,
                                   settings.bundle_max_records, settings.bundle_flush_ms)
        bundled_fn = BundledTruckFunction(settings, cfg, default_regions(),
                                          load_geofences(settings))
        return assemble(bundles, bundled_fn, None, settings, batched=True)
    return build(pings_by_truck(t_env, table), settings, cfg)


def build(pings: KeyedStream, settings: JobSettings, cfg: TrackingConfig
          ) -> dict[str, DataStream]:
    """The per-record job as a function of its source (:func:`pings_by_truck`)."""
    truck_fn = TruckFunction(settings, cfg, default_regions(), load_geofences(settings))
    return assemble(pings, truck_fn, RedisWriterFunction(settings), settings)


def assemble(source: KeyedStream, truck_fn: KeyedProcessFunction,
             writer_fn: RedisWriterFunction | None, settings: JobSettings,
             batched: bool = False) -> dict[str, DataStream]:
    """The truck function over ``source``, its positions keyed by writer shard in the JVM for
    ``writer_fn`` (None: the function writes Redis itself, as the bundled one does), its census
    deltas keyed by region; returns the streams each sink consumes. ``batched``: the function
    emits its side outputs as arrays (``tracking_outputs.BATCHED``), spread out in the JVM
    here."""
    # The two kinds of truck function keep different state (by shard or by truck) under
    # different ids: a checkpoint of one then fails to restore into the other with Flink's
    # plain refusal (flink_jobs.common.execute), not with a key serializer's mismatch.
    trucks = source.process(truck_fn, output_type=SHARDED_WRITE).name("truck-state") \
        .uid("truck-state" if batched else "truck-state-per-record")

    def side(tag: OutputTag) -> DataStream:
        if not batched:
            return trucks.get_side_output(tag)
        return exploded(trucks.get_side_output(BATCHED[tag]), tag.type_info,
                        f"{tag.tag_id}-rows")

    if writer_fn is not None:
        writes = keyed_on_first_field(trucks, Types.INT(), Types.PICKLED_BYTE_ARRAY())
        terminate(writes.process(writer_fn).name("redis-positions").uid("redis-positions"))
    census = keyed_on_first_field(side(CENSUS_TAG), Types.STRING(), Types.PICKLED_BYTE_ARRAY())
    terminate(census.process(RegionCensusFunction(settings)).name("region-census")
              .uid("region-census"))
    return {"alerts": side(ALERT_TAG), "geofence": side(GEOFENCE_TAG), "dlq": side(DLQ_TAG)}


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    settings = parse_settings(argv, JOB_NAME)
    execute(job(settings), JOB_NAME, settings)


def job(settings: JobSettings) -> StreamExecutionEnvironment:
    """The whole job, source to sinks, in a new environment, ready to execute."""
    env, t_env = create_environment(settings, JOB_NAME)
    kafka_raw_table(t_env, settings, settings.gps_topic, "gps_source")
    outputs = build_from_table(env, t_env, "gps_source", settings, tracking_config(settings))
    attach_sinks(t_env, {
        kafka_text_sink(t_env, settings, settings.alerts_topic, "alerts_sink"): outputs["alerts"],
        kafka_text_sink(t_env, settings, settings.geofence_topic, "geofence_sink"):
            outputs["geofence"],
    })
    dead_letter_sink(env, outputs["dlq"], settings)
    return env


def tracking_config(settings: JobSettings) -> TrackingConfig:
    """The truck state machine's thresholds that the job's flags set."""
    return TrackingConfig(detection_slack_ms=settings.detection_slack_ms,
                          state_ttl_s=settings.truck_state_ttl_s)


if __name__ == "__main__":
    # Run the imported module's main so the functions are pickled by reference to
    # flink_jobs.tracking_job, not by value from __main__.
    from flink_jobs.tracking_job import main as module_main

    module_main(sys.argv[1:])
