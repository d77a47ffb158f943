"""The tracking job cut after a stage, to profile it: the same Kafka source and operators as
``flink_jobs.tracking_job``, ending in a counter that adds to the Redis key ``bench:done``
every 1,000 records (and at the end), which the benchmark polls instead of positions.

    python -m bench.jobs.stages --stage parse|truck  <tracking job flags, with --bounded>

- ``parse``: Kafka source (JSON ``ts`` and ``truck_id`` extracted in the JVM, for the watermark
  and the key) -> a keyed function that only validates (what TruckFunction does first)
- ``truck``: Kafka source -> TruckFunction (validation, state machine, timers), no Redis writer
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from pyflink.common import Types
from pyflink.datastream import KeyedProcessFunction, ProcessFunction

from flink_jobs.common import create_environment, kafka_raw_table
from flink_jobs.settings import JobSettings, parse_settings
from flink_jobs.tracking_job import (
    ALERT_TAG,
    CENSUS_TAG,
    DLQ_TAG,
    GEOFENCE_TAG,
    SHARDED_WRITE,
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
        self.n += 1
        if self.n >= EVERY:
            self.r.incrby(DONE_KEY, self.n)
            self.n = 0
        return iter(())

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


class Discard(ProcessFunction):
    def process_element(self, value: Any, ctx: ProcessFunction.Context):  # type: ignore[no-untyped-def]
        return iter(())


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--stage", choices=["parse", "truck"], required=True)
    ns, rest = p.parse_known_args(argv)
    settings: JobSettings = parse_settings(rest, "bench-stages")
    env, t_env = create_environment(settings, f"bench-{ns.stage}")
    kafka_raw_table(t_env, settings, settings.gps_topic, "gps_source")
    pings = pings_by_truck(t_env, "gps_source")
    if ns.stage == "parse":
        last = pings.process(ValidateOnly(), output_type=Types.STRING()).name("validate")
    else:
        truck_fn = TruckFunction(settings, TrackingConfig(), default_regions(),
                                 load_geofences(settings))
        last = pings.process(truck_fn, output_type=SHARDED_WRITE).name("truck-state")
        for tag in (DLQ_TAG, ALERT_TAG, GEOFENCE_TAG, CENSUS_TAG):
            terminate(last.get_side_output(tag).process(Discard()).name(f"discard-{tag}"))
    terminate(last.process(CountToRedis(settings.redis_url)).name("count"))
    env.execute(f"bench-{ns.stage}")


if __name__ == "__main__":
    main(sys.argv[1:])
