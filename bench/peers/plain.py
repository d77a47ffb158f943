"""Peer (a): the tracking job's logic as a plain Python Kafka consumer, no Flink.

    python -m bench.peers.plain --bootstrap HOST:PORT --redis-url URL --topic fleet.gps \
        [--bounded] [--instances N --index I]

Same work per record as the job: ``udfs.ping_validation.parse_ping``, the per-truck state
machine (``udfs.truck_state.on_ping``; ``advance`` when the event-time watermark passes a
truck's next wake-up, on a heap of timers), alerts and geofence transitions to Kafka, bad
records to the DLQ, positions through the same guarded Lua script
(``flink_jobs.tracking.redis_writer.RedisTruckWriter``) flushed every ``--flush-ms`` like the job's
writer, region counts every 2 s. Truck state lives in a dict (no serialization), offsets are
committed by the consumer; nothing is checkpointed, so unlike the job it cannot restore its
state after a crash. Partitions are assigned statically (``partition % instances == index``).
"""

from __future__ import annotations

import argparse
import heapq
import sys
import time
from collections import Counter
from typing import Any

import orjson

from bench.peers import peer_parser
from flink_jobs.tracking.redis_writer import RedisTruckWriter, region_count_fields
from udfs.geo import GeofenceIndex, default_regions
from udfs.models import AlertEvent, DeadLetter, GeofenceTransition, Reason, Rejection
from udfs.ping_validation import parse_ping
from udfs.truck_state import (
    END_OF_INPUT_MS,
    CensusDelta,
    Counters,
    Output,
    PositionWrite,
    SpeedRejection,
    TrackingConfig,
    TruckState,
    advance,
    expire,
    next_wakeup,
    on_ping,
)

END_OF_INPUT = END_OF_INPUT_MS  # the watermark at the end of a bounded input, as Flink's


class Outputs:
    """Routes the state machine's outputs: positions buffered for Redis, census counted,
    alerts / geofence transitions / dead letters produced to Kafka."""

    def __init__(self, producer: Any, args: argparse.Namespace) -> None:
        self.producer = producer
        self.args = args
        self.positions: list[PositionWrite] = []
        self.census: Counter[tuple[str, str]] = Counter()
        self.census_dirty = False

    def route(self, outs: list[Output], raw: bytes, partition: int, offset: int) -> None:
        for out in outs:
            if isinstance(out, PositionWrite):
                self.positions.append(out)
            elif isinstance(out, CensusDelta):
                self.census[(out.region, out.status)] += out.delta
                self.census_dirty = True
            elif isinstance(out, AlertEvent):
                self._produce(self.args.alerts_topic, out.to_json(), out.dedup_key.encode())
            elif isinstance(out, GeofenceTransition):
                self._produce(
                    self.args.geofence_topic, orjson.dumps(out.to_dict()), out.truck_id.encode()
                )
            elif isinstance(out, SpeedRejection):
                self.dead_letter(Reason.IMPOSSIBLE_SPEED.value, out.detail, raw, partition, offset)

    def dead_letter(
        self, reason: str, detail: str, raw: bytes, partition: int, offset: int
    ) -> None:
        letter = DeadLetter(
            self.args.topic, partition, offset, reason, detail, raw, int(time.time() * 1000)
        )
        self._produce(self.args.dlq_topic, letter.to_json(), self.args.topic.encode())

    def _produce(self, topic: str, value: bytes, key: bytes) -> None:
        """Produce, waiting for deliveries while librdkafka's local queue is full: the end of
        a bounded input fires every truck's timeout at once (100,000 alerts), more than the
        queue's default 100,000 messages, and a record dropped there is an alert lost."""
        while True:
            try:
                self.producer.produce(topic, value, key)
                return
            except BufferError:
                self.producer.poll(0.1)

    def region_counts(self) -> dict[str, dict[str, int]]:
        by_region: dict[str, dict[str, int]] = {}
        for (region, status), n in self.census.items():
            by_region.setdefault(region, {})[status] = n
        return {region: region_count_fields(c) for region, c in by_region.items()}


class Tracker:
    """Per-truck state and event-time timers (one per truck, like the job's)."""

    def __init__(self, cfg: TrackingConfig, out: Outputs) -> None:
        self.cfg = cfg
        self.out = out
        self.regions = default_regions()
        self.geofences = GeofenceIndex.from_file()
        self.states: dict[str, TruckState] = {}
        self.timers: dict[str, int] = {}
        self.heap: list[tuple[int, str]] = []
        self.counts = Counters()

    def on_record(self, raw: bytes, partition: int, offset: int, now_ms: int) -> int | None:
        """Process one record; returns the ping's ts (for the watermark) or None."""
        result = parse_ping(raw, now_ms)
        if isinstance(result, Rejection):
            self.out.dead_letter(result.reason.value, result.detail, raw, partition, offset)
            return None
        st = self.states.get(result.truck_id)
        if st is None:
            st = self.states[result.truck_id] = TruckState(result.truck_id)
        outs = on_ping(st, result, self.cfg, self.regions.region_of, self.counts)
        self.out.route(outs, raw, partition, offset)
        self._schedule(st)
        return result.ts

    def _schedule(self, st: TruckState, reached: int | None = None) -> None:
        due = next_wakeup(st, self.cfg)
        if due is not None and reached is not None and due <= reached:
            return  # only the expiry an end of input declined: would fire at once, for ever
        if due is not None and self.timers.get(st.truck_id) != due:
            self.timers[st.truck_id] = due
            heapq.heappush(self.heap, (due, st.truck_id))

    def fire(self, watermark: int) -> None:
        heap = self.heap
        while heap and heap[0][0] <= watermark:
            due, tid = heapq.heappop(heap)
            if self.timers.get(tid) != due:
                continue  # superseded
            del self.timers[tid]
            st = self.states[tid]
            now = max(due, watermark)
            outs = advance(st, now, self.cfg, self.geofences.containing)
            self.out.route(outs, b"", -1, -1)
            closing = expire(st, now, self.cfg)
            if closing is not None:  # as the job: a truck silent for its TTL is forgotten
                self.out.route(closing, b"", -1, -1)
                del self.states[tid]
                continue
            self._schedule(st, now)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = peer_parser("plain")
    p.add_argument("--dlq-topic", default="fleet.dlq")
    p.add_argument("--bounded", action="store_true", help="stop at the end offsets seen at start")
    p.add_argument("--instances", type=int, default=1)
    p.add_argument("--index", type=int, default=0)
    p.add_argument("--flush-ms", type=int, default=200)
    p.add_argument("--region-refresh-ms", type=int, default=2000)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

    args = parse_args(argv)
    consumer = Consumer(
        {
            "bootstrap.servers": args.bootstrap,
            "group.id": args.group_id,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": True,
            "enable.partition.eof": False,
        }
    )
    producer = Producer({"bootstrap.servers": args.bootstrap, "linger.ms": 5, "acks": 1})
    meta = consumer.list_topics(args.topic, timeout=30).topics[args.topic]
    mine = sorted(p for p in meta.partitions if p % args.instances == args.index)
    ends: dict[int, int] = {}
    if args.bounded:
        for part in mine:
            ends[part] = consumer.get_watermark_offsets(
                TopicPartition(args.topic, part), timeout=30
            )[1]
    consumer.assign([TopicPartition(args.topic, part, OFFSET_BEGINNING) for part in mine])
    out = Outputs(producer, args)
    tracker = Tracker(TrackingConfig(), out)
    writer = RedisTruckWriter(args.redis_url, args.stream_maxlen)
    position = {part: 0 for part in mine}
    max_ts: dict[int, int] = {}
    last_flush = last_census = time.monotonic()
    done = args.bounded and all(ends[p] <= 0 for p in mine)
    while not done:
        msgs = consumer.consume(2000, timeout=0.05)
        now_ms = int(time.time() * 1000)
        for m in msgs:
            if m.error():
                continue
            part, offset = int(m.partition() or 0), int(m.offset() or 0)
            ts = tracker.on_record(m.value() or b"", part, offset, now_ms)
            if ts is not None and ts > max_ts.get(part, -1):
                max_ts[part] = ts
            position[part] = offset + 1
        if max_ts:
            tracker.fire(min(max_ts.values()) - args.out_of_orderness_ms)
        now = time.monotonic()
        if out.positions and (now - last_flush) * 1000 >= args.flush_ms:
            writer.write_positions(out.positions)
            out.positions = []
            last_flush = now
        if out.census_dirty and (now - last_census) * 1000 >= args.region_refresh_ms:
            writer.write_region_counts(out.region_counts())
            out.census_dirty, last_census = False, now
        producer.poll(0)
        if args.bounded:
            done = all(position[p] >= ends[p] for p in mine)
    if out.positions:
        writer.write_positions(out.positions)
        out.positions = []
    tracker.fire(END_OF_INPUT)  # end of a bounded input: every timer is due (as in Flink)
    if out.positions:
        writer.write_positions(out.positions)
    writer.write_region_counts(out.region_counts())
    producer.flush(60)
    consumer.close()
    writer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
