"""Peer (b): the tracking job's logic on Quix Streams, the Python stream-processing library a
user would pick instead of PyFlink.

    python -m bench.peers.quix --bootstrap HOST:PORT --redis-url URL --topic fleet.gps \
        [--idle-stop-s 5]

One ``Application``: the topic's raw bytes -> ``parse_ping`` -> a stateful ``apply`` keyed by
the message key (the truck id) that keeps the ``TruckState`` in Quix's RocksDB state
(pickled; changelog topics on, so state survives a restart like the job's checkpoints) and
calls ``on_ping`` -> positions and census deltas into a ``BatchingSink`` that writes through
the same guarded Lua script as the job (``RedisTruckWriter``) at every commit
(``--commit-interval-s``, 1 s), alerts and geofence transitions to Kafka with ``to_topic``.

Difference from the job that Quix imposes: it has no per-key timers, so ``advance`` (detection
and timeouts) runs for a truck when its own next ping arrives, against a watermark kept in
the process (max ts seen - 10 s); a truck that goes silent raises no ``truck_offline`` here.
Bad records are filtered out (the benchmark's input has none). The application stops after
``--idle-stop-s`` without new messages.
"""

from __future__ import annotations

import argparse
import pickle
import sys
import tempfile
from collections import Counter
from typing import Any

import orjson

from bench.peers import peer_parser
from flink_jobs.tracking.redis_writer import RedisTruckWriter, region_count_fields
from udfs.geo import GeofenceIndex, default_regions
from udfs.models import AlertEvent, GeofenceTransition, Ping
from udfs.ping_validation import parse_ping
from udfs.truck_state import (
    CensusDelta,
    Counters,
    PositionWrite,
    TrackingConfig,
    TruckState,
    advance,
    next_wakeup,
    on_ping,
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = peer_parser("quix")
    p.add_argument("--commit-interval-s", type=float, default=1.0)
    p.add_argument("--idle-stop-s", type=float, default=5.0)
    p.add_argument("--state-dir", default="")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    from quixstreams import Application
    from quixstreams.sinks import BatchingSink, SinkBatch
    from quixstreams.state.rocksdb import RocksDBOptions

    args = parse_args(argv)
    cfg = TrackingConfig()
    regions = default_regions()
    geofences = GeofenceIndex.from_file()
    clock = {"max_ts": -1}

    class RedisPositionsSink(BatchingSink):  # type: ignore[misc]
        """Positions through the job's guarded script; region counts as absolute values."""

        def setup(self) -> None:
            self.writer = RedisTruckWriter(args.redis_url, args.stream_maxlen)
            self.census: Counter[tuple[str, str]] = Counter()

        def write(self, batch: SinkBatch) -> None:
            positions: list[PositionWrite] = []
            census_changed = False
            for item in batch:
                v = item.value
                if isinstance(v, PositionWrite):
                    positions.append(v)
                elif isinstance(v, CensusDelta):
                    self.census[(v.region, v.status)] += v.delta
                    census_changed = True
            if positions:
                self.writer.write_positions(positions)
            if census_changed:
                by_region: dict[str, dict[str, int]] = {}
                for (region, status), n in self.census.items():
                    by_region.setdefault(region, {})[status] = n
                self.writer.write_region_counts(
                    {r: region_count_fields(c) for r, c in by_region.items()}
                )

    def parse(raw: bytes) -> Ping | None:
        import time

        result = parse_ping(raw or b"", int(time.time() * 1000))
        return result if isinstance(result, Ping) else None

    def track(ping: Ping, state: Any) -> list[Any]:
        st = state.get("truck")
        if st is None:
            st = TruckState(ping.truck_id)
        outs: list[Any] = on_ping(st, ping, cfg, regions.region_of, Counters())
        if ping.ts > clock["max_ts"]:
            clock["max_ts"] = ping.ts
        watermark = clock["max_ts"] - args.out_of_orderness_ms
        due = next_wakeup(st, cfg)
        if due is not None and due <= watermark:
            outs += advance(st, watermark, cfg, geofences.containing)
        state.set("truck", st)
        return outs

    state_dir = args.state_dir or tempfile.mkdtemp(prefix="bench-quix-state-")
    app = Application(
        broker_address=args.bootstrap,
        consumer_group=args.group_id,
        auto_offset_reset="earliest",
        commit_interval=args.commit_interval_s,
        state_dir=state_dir,
        loglevel="WARNING",
        rocksdb_options=RocksDBOptions(dumps=pickle.dumps, loads=pickle.loads),
    )
    source = app.topic(args.topic, value_deserializer="bytes", key_deserializer="str")
    alerts = app.topic(args.alerts_topic, value_serializer="bytes", key_serializer="str")
    fences = app.topic(args.geofence_topic, value_serializer="bytes", key_serializer="str")
    sdf = app.dataframe(source)
    sdf = sdf.apply(parse).filter(lambda p: p is not None)
    outs = sdf.apply(track, stateful=True, expand=True)
    outs.filter(lambda o: isinstance(o, PositionWrite | CensusDelta)).sink(RedisPositionsSink())
    outs.filter(lambda o: isinstance(o, AlertEvent)).apply(lambda o: o.to_json()).to_topic(alerts)
    outs.filter(lambda o: isinstance(o, GeofenceTransition)).apply(
        lambda o: orjson.dumps(o.to_dict())
    ).to_topic(fences)
    app.run(timeout=args.idle_stop_s, collect=False)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
