"""The benchmark's input: a fleet of trucks driving straight lines across the continental US,
one ping per truck every 30 s of event time, ending a minute before now (so no ping is in the
future and none is far enough back to be dropped). Truck ``i`` is ``T{i:07d}``; its pings go
to partition ``crc32(id) % partitions`` so the benchmark knows which ping is the last of each
partition, and of each truck.

This is the clean path on purpose (no duplicates, disorder or bad records): throughput is
measured for valid traffic; the fault handling is covered by the tests.
"""

from __future__ import annotations

import math
import random
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import orjson

US_BOX = (-122.0, 27.0, -70.0, 47.0)  # lng/lat box well inside the lower 48
INTERVAL_MS = 30_000


def truck_id(i: int) -> str:
    return f"T{i:07d}"


def partition_of(tid: str, partitions: int) -> int:
    return zlib.crc32(tid.encode()) % partitions


@dataclass
class Dataset:
    topic: str
    pings: int
    trucks: int
    partitions: int
    bytes_total: int = 0
    last_ts: dict[str, int] = field(default_factory=dict)  # truck -> ts of its last ping
    tail: dict[str, int] = field(default_factory=dict)  # trucks whose last ping is near the
    # end of its partition -> that ts (the ones written last, polled to detect the end)

    @property
    def bytes_per_ping(self) -> float:
        return self.bytes_total / max(1, self.pings)


def generate(
    pings: int, trucks: int, partitions: int, now_ms: int | None = None, seed: int = 8
) -> Iterator[tuple[int, bytes, bytes, str, int]]:
    """(partition, key, value, truck_id, ts) in event-time order."""
    rng = random.Random(seed)
    rounds = math.ceil(pings / trucks)
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    start = now_ms - 60_000 - rounds * INTERVAL_MS
    lng0, lat0, lng1, lat1 = US_BOX
    ids = [truck_id(i) for i in range(trucks)]
    parts = [partition_of(t, partitions) for t in ids]
    keys = [t.encode() for t in ids]
    lat = [rng.uniform(lat0, lat1) for _ in range(trucks)]
    lng = [rng.uniform(lng0, lng1) for _ in range(trucks)]
    heading = [rng.uniform(0, 360) for _ in range(trucks)]
    speed = [rng.uniform(60, 105) for _ in range(trucks)]
    offset = [int(i * INTERVAL_MS / trucks) for i in range(trucks)]
    n = 0
    for r in range(rounds):
        base = start + r * INTERVAL_MS
        for i in range(trucks):
            if n >= pings:
                return
            if r:
                km = speed[i] * INTERVAL_MS / 3_600_000
                h = math.radians(heading[i])
                la = lat[i] + km / 111.2 * math.cos(h)
                ln = lng[i] + km / (111.2 * math.cos(math.radians(la))) * math.sin(h)
                if not (lat0 <= la <= lat1 and lng0 <= ln <= lng1):
                    heading[i] = (heading[i] + 180) % 360
                else:
                    lat[i], lng[i] = la, ln
            ts = base + offset[i]
            value = orjson.dumps(
                {
                    "truck_id": ids[i],
                    "ts": ts,
                    "lat": round(lat[i], 6),
                    "lng": round(lng[i], 6),
                    "speed_kph": round(speed[i], 1),
                    "heading": round(heading[i]),
                    "accuracy_m": 5,
                    "status": "IN_TRANSIT",
                }
            )
            n += 1
            yield parts[i], keys[i], value, ids[i], ts


def preload(
    bootstrap: str,
    topic: str,
    pings: int,
    trucks: int,
    partitions: int,
    on_progress: Callable[[int], None] | None = None,
    tail_per_partition: int = 500,
) -> Dataset:
    """Produce the dataset into ``topic`` (must exist) and wait for every acknowledgement."""
    from confluent_kafka import Producer

    ds = Dataset(topic, pings, trucks, partitions)
    errors: list[str] = []

    def on_delivery(err: object, _msg: object) -> None:
        if err is not None:
            errors.append(str(err))

    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "linger.ms": 20,
            "acks": 1,
            "batch.size": 1024 * 1024,
            "compression.type": "none",
            "queue.buffering.max.messages": 1_000_000,
            "queue.buffering.max.kbytes": 512 * 1024,
        }
    )
    last_of_partition: list[list[tuple[str, int]]] = [[] for _ in range(partitions)]
    for n, (part, key, value, tid, ts) in enumerate(generate(pings, trucks, partitions), 1):
        while True:
            try:
                producer.produce(topic, value, key, partition=part, on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.05)
        ds.bytes_total += len(value)
        ds.last_ts[tid] = ts
        tail = last_of_partition[part]
        tail.append((tid, ts))
        if len(tail) > 2 * tail_per_partition:
            del tail[:tail_per_partition]
        if n % 20_000 == 0:
            producer.poll(0)
            if on_progress is not None:
                on_progress(n)
    left = producer.flush(120)
    if left or errors:
        raise RuntimeError(
            f"preload of {topic}: {left} unacknowledged, {len(errors)} errors ({errors[:3]})"
        )
    for tail in last_of_partition:
        for tid, _ in tail[-tail_per_partition:]:
            ds.tail[tid] = ds.last_ts[tid]
    if on_progress is not None:
        on_progress(pings)
    return ds
