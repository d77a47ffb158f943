"""The tracking job's truck function: one Python call per bundle of a shard's pings.

The records reach Python in ``Row(shard, bundle)``, keyed by shard in the JVM
(:mod:`flink_jobs.tracking.bundling`). The function validates each ping, runs it through its
truck's state machine (``udfs.truck_state``) and keeps its state per shard:

- ``trucks``: map state, truck id -> ``[TruckState, wake second]``, stored as compact JSON
  (:mod:`flink_jobs.tracking.state_codec`: half the cost of pickling the pair).
- ``due``: map state, second (ms) -> truck ids indexed under it, with one event-time timer per
  shard and second. A truck is indexed again when its wake-up moves to another second; an
  entry whose truck no longer names that second is stale and skipped when the second fires.
- ``newest``: value state, the newest accepted ping time per Kafka partition (the reference
  of ``STALE_TIMESTAMP``).
- Both maps live in Python memory between checkpoints
  (:class:`flink_jobs.tracking.shard_state.WriteBackState`): a shard's map state is read whole
  once per function instance, and its changes are written back at the shard's checkpoint
  marker (an empty bundle, just ahead of each barrier). Beyond ``--trucks-in-memory`` trucks
  per instance, shards are read and written through the state per bundle instead.
- A processing-time tick per shard (:mod:`flink_jobs.tracking.wakeups`) wakes the due seconds
  up to the event time the stall rule assumes once the watermark has stalled
  (:mod:`udfs.stall_fallback`). Its reference is kept in memory, not in the checkpoint: after
  a restore the fallback waits one grace period before judging, and the downtime itself is
  never taken for event time.
- The same tick sends again the trigger of every alert still open whose last was sent
  ``--alert-refresh-s`` ago or more (a receiver resolves an incident not re-asserted), from an
  index of the shard's open alerts kept in memory: read off the shard's trucks at its first
  tick in this instance (so right after a restore every open alert is sent again), then kept by
  the alerts the shard sends.

Positions are written to Redis by the function itself, on a background thread
(:mod:`flink_jobs.runtime.background_writes`), drained at each checkpoint marker: the marker
that writes the state back also guarantees that no position of a change in the checkpoint is
still unwritten. Outputs per call: the census deltas summed by region and status, and alerts,
geofence transitions and dead letters, each kind's rows as one batch per call
(:data:`flink_jobs.tracking.outputs.BATCHED`), spread out in the JVM.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from pyflink.common import Row
from pyflink.common.typeinfo import Types
from pyflink.datastream import KeyedProcessFunction, OutputTag
from pyflink.datastream.state import MapStateDescriptor, ValueStateDescriptor

from flink_jobs.runtime.background_writes import BackgroundWriter
from flink_jobs.runtime.clock import Clock, wall_clock_ms
from flink_jobs.runtime.gc_tuning import relax_young_collections
from flink_jobs.runtime.metrics import OperatorCounts, Series
from flink_jobs.runtime.profiling import start_profiler, stop_profiler
from flink_jobs.runtime.records import dead_letter_row, parse_safely
from flink_jobs.runtime.timers import NO_WATERMARK
from flink_jobs.tracking.bundling import as_columns, decode_bundle
from flink_jobs.tracking.outputs import (
    ALERT_TAG,
    BATCHED,
    CENSUS_TAG,
    DEAD_LETTERS,
    DLQ_TAG,
    GEOFENCE_TAG,
    PARSED,
    POSITION_WRITES,
    TRUCKS_EXPIRED,
    alert_count,
    alert_row,
    arrival_counts,
    geofence_row,
    reassert_count,
)
from flink_jobs.tracking.settings import TrackingSettings
from flink_jobs.tracking.shard_state import CodedMapState, WriteBackState
from flink_jobs.tracking.shards import ShardOf
from flink_jobs.tracking.state_codec import decode_truck, encode_truck
from flink_jobs.tracking.wakeups import next_tick, tick_period_ms, wake_second
from udfs.geo import GeofenceIndex, RegionIndex
from udfs.models import AlertEvent, GeofenceTransition, Ping, Reason, Rejection
from udfs.ping_validation import parse_ping
from udfs.record_age import stale
from udfs.stall_fallback import Reference, assumed_event_time, followed
from udfs.truck_state import (
    OFFLINE,
    STOPPED_UNPLANNED,
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
    open_alerts,
)


@dataclass(slots=True)
class TruckEntry:
    """A truck's entry in the shard's map state: its state machine and the wake-up second (ms)
    it is indexed under in ``due``, or None."""

    state: TruckState
    wake_second: int | None = None


def encode_entry(entry: TruckEntry) -> bytes:
    """An entry as Flink stores it: compact JSON (:mod:`flink_jobs.tracking.state_codec`), not
    pickled whole."""
    return encode_truck(entry.state, entry.wake_second)


def decode_entry(value: bytes | list[Any]) -> TruckEntry:
    """A stored entry. A list is ``[TruckState, wake second]`` pickled whole, by a checkpoint
    taken before the JSON form (2026-11-27)."""
    if isinstance(value, list):
        return TruckEntry(value[0], value[1])
    state, second = decode_truck(value)
    return TruckEntry(state, second)


class BundleOutputs:
    """What one call (a bundle or a timer) emits, gathered so that each kind crosses to the JVM
    once (census deltas summed), and the positions it writes to Redis."""

    def __init__(self, topic: str, counters: OperatorCounts, now_ms: int) -> None:
        self.topic = topic
        self.counters = counters
        self.now_ms = now_ms
        self.counts: Counter[Series] = Counter()
        self.side: dict[OutputTag, list[Row]] = {}
        self.positions: list[PositionWrite] = []
        self.census: Counter[tuple[str, str]] = Counter()
        self.alerts: list[AlertEvent] = []  # routed, in order: they keep the re-assert index

    def dead_letter(
        self, partition: int, offset: int, raw: bytes, key: bytes | None, rejection: Rejection
    ) -> None:
        self.counts[DEAD_LETTERS[rejection.reason]] += 1
        self.side.setdefault(DLQ_TAG, []).append(
            dead_letter_row(
                self.topic,
                partition,
                offset,
                rejection.reason.value,
                rejection.detail,
                raw,
                key,
                self.now_ms,
            )
        )

    def route(self, outputs: Iterable[object]) -> None:
        for out in outputs:
            if isinstance(out, PositionWrite):
                self.positions.append(out)
            elif isinstance(out, CensusDelta):
                self.census[(out.region, out.status)] += out.delta
            elif isinstance(out, AlertEvent):
                self.counts[alert_count(out)] += 1
                self.side.setdefault(ALERT_TAG, []).append(alert_row(out))
                self.alerts.append(out)
            elif isinstance(out, GeofenceTransition):
                self.side.setdefault(GEOFENCE_TAG, []).append(geofence_row(out))

    def reassert(self, alert: AlertEvent) -> None:
        """The trigger of an alert still open, sent again (counted in ``reasserted_alerts``)."""
        self.counts[reassert_count(alert)] += 1
        self.side.setdefault(ALERT_TAG, []).append(alert_row(alert))

    def count_arrivals(self, counts: Counters) -> None:
        self.counts.update(arrival_counts(counts))

    def emit(self) -> Iterator[Any]:
        """The counts (one JVM call per series counted), and the side outputs gathered, each
        kind's rows as one batch (``tracking_outputs.BATCHED``)."""
        self.counters.add_all(self.counts)
        by_region: dict[str, list[tuple[str, int]]] = {}
        for (region, status), delta in self.census.items():
            if delta:
                by_region.setdefault(region, []).append((status, delta))
        if by_region:
            self.side[CENSUS_TAG] = [Row(region, deltas) for region, deltas in by_region.items()]
        for tag, rows in self.side.items():
            yield BATCHED[tag], as_columns(rows)


class TruckFunction(KeyedProcessFunction):
    """Keyed by bundle shard: validates a bundle's pings, runs each through its truck's state
    machine, and wakes trucks by the second (see the module docstring)."""

    def __init__(
        self,
        settings: TrackingSettings,
        cfg: TrackingConfig,
        regions: RegionIndex,
        geofences: GeofenceIndex,
        clock: Clock = wall_clock_ms,
    ) -> None:
        self.settings = settings
        self.cfg = cfg
        self.regions = regions
        self.geofences = geofences
        self.clock = clock
        self.tick_ms = tick_period_ms(settings.fallback_grace_ms)
        self.refresh_ms = settings.alert_refresh_s * 1000

    def open(self, runtime_context: Any) -> None:
        relax_young_collections()
        self.trucks: WriteBackState[str, TruckEntry] = WriteBackState(
            CodedMapState(
                runtime_context.get_map_state(
                    MapStateDescriptor("trucks", Types.STRING(), Types.PICKLED_BYTE_ARRAY())
                ),
                encode_entry,
                decode_entry,
            ),
            limit=self.settings.trucks_in_memory,
        )
        self.due: WriteBackState[int, list[str]] = WriteBackState(
            runtime_context.get_map_state(
                MapStateDescriptor("due", Types.LONG(), Types.PICKLED_BYTE_ARRAY())
            )
        )
        # The newest ping time accepted per shard and Kafka partition: the reader's own event
        # time, which a ping must not lag by more than --max-record-age-s (udfs.record_age).
        # Per partition, because a partition's records reach a shard in the partition's order
        # (a shard mixes partitions in whatever order they are read, which a restore changes),
        # and checkpointed: a restored job judges the records it reads again as the stopped one
        # did. A partition the shard has accepted nothing from yet is judged by the watermark.
        self.newest_state = runtime_context.get_state(
            ValueStateDescriptor("newest", Types.PICKLED_BYTE_ARRAY())
        )
        self.counters = OperatorCounts(runtime_context.get_metrics_group())
        self.shard_of = ShardOf(self.settings.bundle_shards)
        self.max_age_ms = self.settings.max_record_age_s * 1000
        # In memory, per instance (see the module docstring): timers registered, shards
        # ticking, the stall fallback's reference, and the newest ping time per shard read from
        # (and written back to) its state.
        self.event_timers: set[tuple[int, int]] = set()
        self.ticking: set[int] = set()
        self.references: dict[int, Reference | None] = {}
        self.newest_ts: dict[int, dict[int, int]] = {}
        self.newest_dirty: set[int] = set()
        # Per shard, from its first tick: (truck, alert class) -> when its trigger was last
        # sent (wall clock, ms), for each alert open, oldest first (see _reassert).
        self.asserted: dict[int, dict[tuple[str, str], int]] = {}
        self.position_writer = self.open_position_writer()
        self.writes: BackgroundWriter[PositionWrite] = BackgroundWriter(
            self.position_writer, name="redis-positions", idle_s=10.0
        )
        self.profiler = start_profiler()

    def open_position_writer(self) -> Callable[[list[PositionWrite]], object]:
        """Where positions go, called on the background thread: Redis, through the guarded
        script (tests substitute a list)."""
        from flink_jobs.tracking.redis_writer import SweepingPositionWriter

        return SweepingPositionWriter(self.settings.redis_url, self.settings.stream_maxlen)

    def close(self) -> None:
        stop_profiler(self.profiler, "truck-state")
        try:
            self.writes.close()  # the end of a bounded input: everything written before the end
        finally:
            close = getattr(self.position_writer, "close", None)
            if close is not None:
                close()

    def process_element(self, value: bytes, ctx: KeyedProcessFunction.Context):  # type: ignore[no-untyped-def]
        shard = ctx.get_current_key()
        if not value:  # the checkpoint marker: a barrier follows (flink_jobs.tracking.shard_state)
            self._settle(shard)
            return
        timers = ctx.timer_service()
        watermark = timers.current_watermark()
        now = self.clock()
        out = BundleOutputs(self.settings.gps_topic, self.counters, now)
        counts = Counters()
        changed: dict[str, TruckEntry] = {}
        cfg, region_of, containing = self.cfg, self.regions.region_of, self.geofences.containing
        newest = self._newest(shard)
        records: list[tuple[int, int, bytes, bytes | None, Ping]] = []
        for partition, offset, key, value_bytes in decode_bundle(value):
            raw = value_bytes if value_bytes is not None else b""
            ping = parse_safely(parse_ping, raw, now)
            if not isinstance(ping, Rejection) and self.shard_of(ping.truck_id) != shard:
                # The JVM read another truck_id than the parser (a guard: no such input is known).
                ping = Rejection(Reason.BAD_VALUE, "truck_id is ambiguous")
            if isinstance(ping, Rejection):
                out.dead_letter(partition, offset, raw, key, ping)
            else:
                records.append((partition, offset, raw, key, ping))
        known = watermark if watermark > NO_WATERMARK else None
        max_age, moved, parsed = self.max_age_ms, False, 0
        for partition, offset, raw, key, ping in records:
            current = newest.get(partition)
            reference = current if current is not None else known
            if reference is not None and ping.ts < reference - max_age:  # stale()'s bound, inline
                too_old = stale(ping.ts, reference, max_age)
                assert too_old is not None
                # before the truck's state is touched: changes nothing but its dead letter
                out.dead_letter(partition, offset, raw, key, too_old)
                continue
            parsed += 1
            tid = ping.truck_id
            entry = changed.get(tid) or self.trucks.get(shard, tid) or TruckEntry(TruckState(tid))
            state = entry.state
            if state.pending:  # detect what the watermark has passed, now that state is loaded
                out.route(catch_up(state, watermark, cfg, containing))
            results = on_ping(state, ping, cfg, region_of, counts)
            if results and isinstance(results[0], SpeedRejection):  # returned alone
                out.dead_letter(
                    partition,
                    offset,
                    raw,
                    key,
                    Rejection(Reason.IMPOSSIBLE_SPEED, results[0].detail),
                )
            else:
                out.route(results)
                if current is None or ping.ts > current:
                    newest[partition] = ping.ts  # accepted: the reader's event time moves
                    moved = True
            changed[tid] = entry
        out.counts[PARSED] += parsed
        if moved:
            self.newest_dirty.add(shard)
        out.count_arrivals(counts)
        self._store(shard, changed, timers)
        self._note_alerts(shard, out)
        if not self.settings.bounded and shard not in self.ticking:
            # Bounded runs end with a final watermark that fires every event-time timer, and a
            # pending processing-time timer would keep the finished job waiting.
            self.ticking.add(shard)
            timers.register_processing_time_timer(next_tick(now, self.tick_ms))
        self._submit(out)
        yield from out.emit()

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext):  # type: ignore[no-untyped-def]
        shard = ctx.get_current_key()
        timers = ctx.timer_service()
        watermark = timers.current_watermark()
        now = self.clock()
        out = BundleOutputs(self.settings.gps_topic, self.counters, now)
        if ctx.time_domain().name == "EVENT_TIME":
            self.event_timers.discard((shard, timestamp))
            self._wake(shard, [timestamp], max(timestamp, watermark), out, timers)
            self._note_alerts(shard, out)
            self._submit(out)
        else:
            if self.refresh_ms and shard not in self.asserted:
                self.asserted[shard] = self._open_alert_index(shard)
            event_time = self._stalled_event_time(shard, watermark, now)
            if event_time is not None:
                seconds = sorted(s for s in self.due.keys(shard) if s <= event_time)
                self._wake(shard, seconds, event_time, out, timers)
                self._note_alerts(shard, out)
                # No checkpoint marker need follow a processing-time timer before the next
                # barrier: its changes go to Flink's state, and its positions to Redis, now.
                self._submit(out)
                self._settle(shard)
            if self.refresh_ms:
                self._reassert(shard, now, out)
            self.ticking.add(shard)
            timers.register_processing_time_timer(next_tick(max(now, timestamp), self.tick_ms))
        yield from out.emit()

    def _submit(self, out: BundleOutputs) -> None:
        """Hand the call's positions to the background writer."""
        if out.positions:
            self.counters.add(POSITION_WRITES, len(out.positions))
            self.writes.submit(out.positions)

    def _open_alert_index(self, shard: int) -> dict[tuple[str, str], int]:
        """The shard's open alerts, read off its trucks once per instance (at its first tick),
        each as never sent by this instance: so the first tick after a restore sends them all
        again. Alerts the shard sends before that tick are sent again then too."""
        index: dict[tuple[str, str], int] = {}
        for tid, entry in self.trucks.items(shard):
            state = entry.state
            if state.offline_open:
                index[(tid, OFFLINE)] = 0
            if state.stop_alert_open:
                index[(tid, STOPPED_UNPLANNED)] = 0
        return index

    def _note_alerts(self, shard: int, out: BundleOutputs) -> None:
        """Keep the shard's index of open alerts: a trigger was just sent (to the end, the
        newest), a resolve closed its alert. Before the shard's first tick there is no index:
        that tick reads the trucks instead."""
        index = self.asserted.get(shard)
        if index is None or not out.alerts:
            return
        for alert in out.alerts:
            key = (alert.subject_id, alert.alert_class)
            index.pop(key, None)
            if alert.event_action == "trigger":
                index[key] = out.now_ms

    def _reassert(self, shard: int, now: int, out: BundleOutputs) -> None:
        """Send again the trigger of every alert open whose last was sent ``--alert-refresh-s``
        ago or more, from its truck's state (``udfs.truck_state.open_alerts``), and stamp it.

        The index is kept in the order sent (a trigger or a re-assert moves its alert to the
        end), so a tick reads only the alerts due and the first one that is not: never the
        shard's trucks. (Should the wall clock step back, alerts stamped before the step wait
        at most that step longer.)"""
        index = self.asserted[shard]
        cutoff = now - self.refresh_ms
        due: list[tuple[str, str]] = []
        for key, sent in index.items():
            if sent > cutoff:
                break
            due.append(key)
        for key in due:
            del index[key]
            entry = self.trucks.get(shard, key[0])
            if entry is None:
                continue  # forgotten (expired) since
            for alert in open_alerts(entry.state, self.cfg):
                if alert.alert_class == key[1]:
                    out.reassert(alert)
                    index[key] = now

    def _forget_alerts(self, shard: int, tid: str) -> None:
        """A truck expired: its alerts leave the index (their resolves also take them out)."""
        index = self.asserted.get(shard)
        if index:
            index.pop((tid, OFFLINE), None)
            index.pop((tid, STOPPED_UNPLANNED), None)

    def _newest(self, shard: int) -> dict[int, int]:
        """The newest ping time the shard has accepted per Kafka partition (read from its
        state on first use; the caller updates it in place and marks the shard dirty)."""
        if shard not in self.newest_ts:
            self.newest_ts[shard] = self.newest_state.value() or {}
        return self.newest_ts[shard]

    def _settle(self, shard: int) -> None:
        """Make Flink's state and Redis hold every change made so far: at the checkpoint
        marker, and after work no marker follows."""
        self.trucks.write_back(shard)
        self.due.write_back(shard)
        if shard in self.newest_dirty:
            self.newest_dirty.discard(shard)
            self.newest_state.update(self.newest_ts[shard])
        self.writes.drain()

    def _stalled_event_time(self, shard: int, watermark: int, now: int) -> int | None:
        newest = max(self._newest(shard).values(), default=None)
        if watermark > NO_WATERMARK:
            known: int | None = watermark
        elif newest is not None:  # no watermark yet: the source's own bound on it
            known = newest - self.settings.out_of_orderness_ms
        else:
            known = None
        reference = self.references[shard] = followed(self.references.get(shard), known, now)
        if reference is None:
            return None
        return assumed_event_time(reference, known, now, self.settings.fallback_grace_ms)

    def _wake(
        self, shard: int, seconds: list[int], event_time: int, out: BundleOutputs, timers: Any
    ) -> None:
        """Advance to ``event_time`` the trucks indexed under ``seconds`` that still are."""
        changed: dict[str, TruckEntry] = {}
        for second in seconds:
            ids = self.due.get(shard, second)
            if ids is None:
                continue
            self.due.remove(shard, second)
            for tid in ids:
                entry = changed.get(tid) or self.trucks.get(shard, tid)
                if entry is None or entry.wake_second != second:
                    continue  # stale: the truck moved to another second since
                entry.wake_second = None  # to be indexed afresh, even under the same second
                out.route(advance(entry.state, event_time, self.cfg, self.geofences.containing))
                closing = expire(entry.state, event_time, self.cfg)
                if closing is not None:  # no ping for --truck-state-ttl-s: forget the truck
                    out.route(closing)
                    out.counts[TRUCKS_EXPIRED] += 1
                    changed.pop(tid, None)
                    self.trucks.remove(shard, tid)
                    self._forget_alerts(shard, tid)
                    continue
                changed[tid] = entry
        self._store(shard, changed, timers, event_time)

    def _store(
        self, shard: int, changed: dict[str, TruckEntry], timers: Any, reached: int | None = None
    ) -> None:
        """Write the changed trucks back and index those whose wake-up moved to a new second.
        ``reached``: the event time a wake-up just advanced them to; a wake-up not after it
        (only the expiry an end of input declined, :func:`expire`) would fire at once, for
        ever, so it is not indexed."""
        if not changed:
            return
        moved: dict[int, list[str]] = {}
        for tid, entry in changed.items():
            due = next_wakeup(entry.state, self.cfg)
            if due is not None and reached is not None and due <= reached:
                due = None
            second = wake_second(due) if due is not None else None
            if second != entry.wake_second:
                entry.wake_second = second
                if second is not None:
                    moved.setdefault(second, []).append(tid)
        self.trucks.put_all(shard, changed)
        if not moved:
            return
        self.due.put_all(
            shard,
            {second: (self.due.get(shard, second) or []) + ids for second, ids in moved.items()},
        )
        for second in moved:
            if (shard, second) not in self.event_timers:
                timers.register_event_time_timer(second)
                self.event_timers.add((shard, second))
