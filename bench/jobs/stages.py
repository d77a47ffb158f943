"""The tracking job's transport cut after a stage, to profile it: the same Kafka source and
JVM bundler as ``flink_jobs.tracking.job``, ending in a counter that adds to the Redis key
``bench:done`` every 1,000 records (and at the end), which the benchmark polls instead of
positions.

    python -m bench.jobs.stages --stage batch|batch-truck  <tracking job flags, with --bounded>

- ``batch``: records handed to Python in bundles (:mod:`flink_jobs.tracking.bundling`:
  ``--shards`` shards, flushed every ``--batch-ms`` at most and at each watermark); a function
  keyed by shard validates each ping, reads its truck's state from map state and writes the
  bundle's states back with one ``put_all``: the transport alone.
- ``batch-truck``: ``batch`` plus the truck function's arrival path (``catch_up`` to the
  watermark, ``on_ping``, ``next_wakeup``), its outputs pickled once per bundle as if handed
  on; no timers are registered.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from pyflink.common import Types
from pyflink.datastream import KeyedProcessFunction, ProcessFunction
from pyflink.datastream.state import MapStateDescriptor

from flink_jobs.runtime.environment import create_environment
from flink_jobs.runtime.kafka import kafka_raw_table
from flink_jobs.tracking.bundling import bundled_by_shard, decode_bundle
from flink_jobs.tracking.job import TRUCK_KEY_SQL, load_geofences, terminate
from flink_jobs.tracking.settings import TrackingSettings
from udfs.geo import default_regions
from udfs.models import Rejection
from udfs.truck_state import TrackingConfig

DONE_KEY = "bench:done"
EVERY = 1000


class CountToRedis(ProcessFunction):
    def __init__(self, redis_url: str) -> None:
        self.redis_url = redis_url

    def open(self, runtime_context: Any) -> None:
        import redis

        self.r = redis.Redis.from_url(self.redis_url)
        self.n = 0

    def process_element(self, value: Any, ctx: ProcessFunction.Context):  # type: ignore[no-untyped-def]
        self._add(1)
        return iter(())

    def _add(self, k: int) -> None:
        self.n += k
        if self.n >= EVERY:
            self.r.incrby(DONE_KEY, self.n)
            self.n = 0

    def close(self) -> None:
        if self.n:
            self.r.incrby(DONE_KEY, self.n)
        self.r.close()


def valid_pings(bundle: bytes) -> tuple[int, list[Any]]:
    """How many records a bundle holds, and its valid pings in order (rejects dropped)."""
    import time

    from udfs.ping_validation import parse_ping

    now = int(time.time() * 1000)
    records = list(decode_bundle(bundle))
    parsed = (parse_ping(raw or b"", now) for _, _, _, raw in records)
    return len(records), [p for p in parsed if not isinstance(p, Rejection)]


class ValidateAndStateBatched(KeyedProcessFunction):
    """``ValidateAndState`` for a bundle of one shard's records: one call per bundle, a map
    state read per ping and one ``put_all`` per bundle."""

    def open(self, runtime_context: Any) -> None:
        self.state = runtime_context.get_map_state(
            MapStateDescriptor("boxes", Types.STRING(), Types.PICKLED_BYTE_ARRAY())
        )

    def process_element(self, value: Any, ctx: KeyedProcessFunction.Context):  # type: ignore[no-untyped-def]
        n, pings = valid_pings(value)
        changed: dict[str, Any] = {}
        for ping in pings:
            tid = ping.truck_id
            box = changed.get(tid) or self.state.get(tid) or [tid, 0, None, None, None]
            box[1] += 1
            changed[tid] = box
        if changed:
            self.state.put_all(changed)
        yield n


class TruckArrivalsBatched(KeyedProcessFunction):
    """``TruckFunction``'s arrival path for a bundle of one shard's records (see the module
    docstring, ``batch-truck``)."""

    def __init__(self, cfg: TrackingConfig, regions: Any, geofences: Any) -> None:
        self.cfg = cfg
        self.regions = regions
        self.geofences = geofences

    def open(self, runtime_context: Any) -> None:
        self.state = runtime_context.get_map_state(
            MapStateDescriptor("trucks", Types.STRING(), Types.PICKLED_BYTE_ARRAY())
        )

    def process_element(self, value: Any, ctx: KeyedProcessFunction.Context):  # type: ignore[no-untyped-def]
        import pickle

        from udfs.truck_state import Counters, TruckState, catch_up, next_wakeup, on_ping

        n, pings = valid_pings(value)
        wm = ctx.timer_service().current_watermark()
        cfg, region_of, containing = self.cfg, self.regions.region_of, self.geofences.containing
        counts = Counters()
        changed: dict[str, Any] = {}
        outputs: list[Any] = []
        for ping in pings:
            tid = ping.truck_id
            box = (
                changed.get(tid) or self.state.get(tid) or [TruckState(tid), None, None, None, None]
            )
            if box[0].pending:
                outputs.extend(catch_up(box[0], wm, cfg, containing))
            outputs.extend(on_ping(box[0], ping, cfg, region_of, counts))
            box[1] = next_wakeup(box[0], cfg)
            changed[tid] = box
        if changed:
            self.state.put_all(changed)
        pickle.dumps(outputs)
        yield n


class CountBatchesToRedis(CountToRedis):
    """``CountToRedis`` for batch sizes: adds each value instead of one per record."""

    def process_element(self, value: Any, ctx: ProcessFunction.Context):  # type: ignore[no-untyped-def]
        self._add(value)
        return iter(())


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--stage", choices=["batch", "batch-truck"], required=True)
    p.add_argument("--shards", type=int, default=8)
    p.add_argument("--batch-ms", type=int, default=100)
    ns, rest = p.parse_known_args(argv)
    settings = TrackingSettings.from_argv(rest)
    env, t_env = create_environment(settings, f"bench-{ns.stage}")
    kafka_raw_table(t_env, settings, settings.gps_topic, "gps_source")
    batches = bundled_by_shard(
        env, t_env, "gps_source", TRUCK_KEY_SQL, ns.shards, 2000, ns.batch_ms
    )
    fn = (
        ValidateAndStateBatched()
        if ns.stage == "batch"
        else TruckArrivalsBatched(TrackingConfig(), default_regions(), load_geofences(settings))
    )
    last = batches.process(fn, output_type=Types.INT()).name(ns.stage)
    counter = CountBatchesToRedis(settings.redis_url)
    terminate(last.process(counter).name("count"))
    env.execute(f"bench-{ns.stage}")


if __name__ == "__main__":
    main(sys.argv[1:])
