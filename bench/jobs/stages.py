"""The tracking job cut after a stage, to profile it: the same Kafka source and operators as
``flink_jobs.tracking_job``, ending in a counter that adds to the Redis key ``bench:done``
every 1,000 records (and at the end), which the benchmark polls instead of positions.

    python -m bench.jobs.stages --stage parse|truck  <tracking job flags, with --bounded>

- ``parse``: Kafka source (JSON ``ts`` and ``truck_id`` extracted in the JVM, for the watermark
  and the key) -> a keyed function that only validates (what TruckFunction does first)
- ``truck``: Kafka source -> TruckFunction (validation, state machine, timers), no Redis writer
- ``state``: ``parse`` plus one keyed state read and write per ping (the truck state box's
  round trip, without the state machine): the per-record transport the job is built on
- ``batch``: the same work with records handed to Python in bundles
  (:mod:`flink_jobs.bundling`: ``--shards`` shards, flushed every ``--batch-ms`` at most and at
  each watermark), and a function keyed by shard validates each ping, reads its truck's state
  from map state and writes the bundle's states back with one ``put_all``. The transport a
  batched tracking job would use, measured before building one
- ``batch-truck``: ``batch`` plus the truck function's arrival path (``catch_up`` to the
  watermark, ``on_ping``, ``next_wakeup``), its outputs pickled once per bundle as if handed
  on; no timers are registered (a bundled job would need one per shard and second, not one per
  truck). Compare with ``truck``, which does the same per record, with timers, and hands each
  output to a Python operator
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from pyflink.common import Types
from pyflink.datastream import KeyedProcessFunction, ProcessFunction
from pyflink.datastream.state import MapStateDescriptor, ValueStateDescriptor

from flink_jobs.bundling import bundled_by_shard, decode_bundle
from flink_jobs.common import create_environment, kafka_raw_table
from flink_jobs.settings import JobSettings, parse_settings
from flink_jobs.tracking_job import (
    ALERT_TAG,
    CENSUS_TAG,
    DLQ_TAG,
    GEOFENCE_TAG,
    SHARDED_WRITE,
    TRUCK_KEY_SQL,
    TruckFunction,
    load_geofences,
    pings_by_truck,
    terminate,
    validate,
)
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


class ValidateOnly(KeyedProcessFunction):
    """The validation TruckFunction starts with, alone: valid pings go on, the rest vanish."""

    def process_element(self, value: Any, ctx: KeyedProcessFunction.Context):  # type: ignore[no-untyped-def]
        _, ping = validate(value, ctx.get_current_key())
        if not isinstance(ping, Rejection):
            yield ping.truck_id


class ValidateAndState(KeyedProcessFunction):
    """Validation plus the truck's state read and written once, per record."""

    def open(self, runtime_context: Any) -> None:
        self.state = runtime_context.get_state(
            ValueStateDescriptor("box", Types.PICKLED_BYTE_ARRAY()))

    def process_element(self, value: Any, ctx: KeyedProcessFunction.Context):  # type: ignore[no-untyped-def]
        _, ping = validate(value, ctx.get_current_key())
        if not isinstance(ping, Rejection):
            box = self.state.value() or [ping.truck_id, 0, None, None, None]
            box[1] += 1
            self.state.update(box)
            yield ping.truck_id


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
            MapStateDescriptor("boxes", Types.STRING(), Types.PICKLED_BYTE_ARRAY()))

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
            MapStateDescriptor("trucks", Types.STRING(), Types.PICKLED_BYTE_ARRAY()))

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
            box = changed.get(tid) or self.state.get(tid) or [TruckState(tid), None, None,
                                                                None, None]
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


class Discard(ProcessFunction):
    def process_element(self, value: Any, ctx: ProcessFunction.Context):  # type: ignore[no-untyped-def]
        return iter(())


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--stage", choices=["parse", "truck", "state", "batch", "batch-truck"],
                   required=True)
    p.add_argument("--shards", type=int, default=8)
    p.add_argument("--batch-ms", type=int, default=100)
    ns, rest = p.parse_known_args(argv)
    settings: JobSettings = parse_settings(rest, "bench-stages")
    env, t_env = create_environment(settings, f"bench-{ns.stage}")
    kafka_raw_table(t_env, settings, settings.gps_topic, "gps_source")
    counter = CountToRedis(settings.redis_url)
    if ns.stage.startswith("batch"):
        batches = bundled_by_shard(env, t_env, "gps_source", TRUCK_KEY_SQL, ns.shards, 2000,
                                   ns.batch_ms)
        fn = (ValidateAndStateBatched() if ns.stage == "batch" else
              TruckArrivalsBatched(TrackingConfig(), default_regions(), load_geofences(settings)))
        last = batches.process(fn, output_type=Types.INT()).name(ns.stage)
        counter = CountBatchesToRedis(settings.redis_url)
    elif ns.stage == "parse":
        last = pings_by_truck(t_env, "gps_source").process(
            ValidateOnly(), output_type=Types.STRING()).name("validate")
    elif ns.stage == "state":
        last = pings_by_truck(t_env, "gps_source").process(
            ValidateAndState(), output_type=Types.STRING()).name("state")
    else:
        truck_fn = TruckFunction(settings, TrackingConfig(), default_regions(),
                                 load_geofences(settings))
        last = pings_by_truck(t_env, "gps_source").process(
            truck_fn, output_type=SHARDED_WRITE).name("truck-state")
        for tag in (DLQ_TAG, ALERT_TAG, GEOFENCE_TAG, CENSUS_TAG):
            terminate(last.get_side_output(tag).process(Discard()).name(f"discard-{tag}"))
    terminate(last.process(counter).name("count"))
    env.execute(f"bench-{ns.stage}")


if __name__ == "__main__":
    main(sys.argv[1:])
