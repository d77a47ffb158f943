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

Run embedded:  python -m flink_jobs.delay.job --bootstrap 127.0.0.1:9092 --redis-url ...
                 --checkpoint-dir ... [--restore latest] [--stuck-after-s 21600 ...]
Submit:        flink run -d -py flink_jobs/delay/job.py -- --bootstrap ... (same flags)
Settings:      flink_jobs/delay/settings.py; --help or docs/configuration.md lists them.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import replace

from pyflink.common import Types
from pyflink.datastream import DataStream, KeyedStream, StreamExecutionEnvironment
from pyflink.table import StreamTableEnvironment

from flink_jobs.delay.effects_writer import DelayRedisFunction
from flink_jobs.delay.parse import (
    ASSIGN_TAG,
    CEP_TAG,
    DLQ_TAG,
    PARTITION_KEY_SQL,
    ParsePings,
    ParseScans,
)
from flink_jobs.delay.patterns import attempts_matches
from flink_jobs.delay.settings import DelaySettings
from flink_jobs.delay.shipments import ALERT_TAG, ShipmentFunction
from flink_jobs.delay.truck_feed import TruckFeedFunction
from flink_jobs.runtime.buffered_writer import shard_of, writer_shards
from flink_jobs.runtime.environment import create_environment, execute
from flink_jobs.runtime.geography import regions_for
from flink_jobs.runtime.jvm_keying import keyed_by_sql
from flink_jobs.runtime.kafka import (
    attach_sinks,
    dead_letter_sink,
    kafka_raw_source,
    kafka_raw_table,
    kafka_text_sink,
)
from flink_jobs.runtime.records import RAW_RECORD
from udfs.shipment_state import DelayConfig, default_region_of

log = logging.getLogger("fleetpulse.delay")

JOB_NAME = "fleetpulse-delay"
PICKLED = Types.PICKLED_BYTE_ARRAY()


def with_regions(settings: DelaySettings, cfg: DelayConfig) -> DelayConfig:
    """``cfg`` counting shipments in the regions the settings choose (``--regions-file`` or
    the packaged ones), unless a test gave it its own ``region_of``."""
    if cfg.region_of is default_region_of:
        return replace(cfg, region_of=regions_for(settings).region_of)
    return cfg


def build(
    t_env: StreamTableEnvironment,
    scans: KeyedStream,
    pings: DataStream | None,
    settings: DelaySettings,
    cfg: DelayConfig | None = None,
) -> dict[str, DataStream]:
    """The job as a function of its sources: ``scans`` (RAW_RECORD rows keyed by Kafka
    partition, with the source's watermarks: :func:`read_scans`) and optionally ``pings``
    (RAW_RECORD rows of `fleet.gps`). Returns the streams of each sink: ``alerts`` and ``dlq``
    (KEYED_TEXT), ``effects`` (RedisEffect objects). ``cfg``: the delay patterns' thresholds,
    ``settings.delay_config`` unless a test sets more of them."""
    # The region index is built here, in the client, and shipped with the function: importing
    # geopandas inside thread-mode operators while others open or close hangs the embedded
    # interpreter (the tracking job found the same).
    cfg = with_regions(settings, settings.delay_config if cfg is None else cfg)
    feed = pings is not None and settings.at_risk
    parsed = (
        scans.process(
            ParseScans(settings.scans_topic, feed, settings.max_record_age_s * 1000),
            output_type=PICKLED,
        )
        .name("parse-scans")
        .uid("parse-scans")
    )
    inputs = parsed.union(attempts_matches(t_env, parsed.get_side_output(CEP_TAG), cfg))
    if feed:
        assert pings is not None
        valid_pings = (
            pings.process(ParsePings(), output_type=Types.PICKLED_BYTE_ARRAY())
            .name("parse-pings")
            .uid("parse-pings")
        )
        fixes = (
            valid_pings.connect(parsed.get_side_output(ASSIGN_TAG))
            .key_by(lambda p: p[0], lambda a: a[0], key_type=Types.STRING())
            .process(TruckFeedFunction(settings.feed_config, settings), output_type=PICKLED)
            .name("truck-feed")
            .uid("truck-feed")
        )
        inputs = inputs.union(fixes)
    shipments = (
        inputs.key_by(lambda e: e.shipment_id, key_type=Types.STRING())
        .process(ShipmentFunction(settings, cfg), output_type=PICKLED)
        .name("shipment-state")
        .uid("shipment-state")
    )
    return {
        "alerts": shipments.get_side_output(ALERT_TAG),
        "dlq": parsed.get_side_output(DLQ_TAG),
        "effects": shipments,
    }


def attach_redis(effects: DataStream, settings: DelaySettings, parallelism: int) -> None:
    shards = writer_shards(parallelism)
    (
        effects.key_by(lambda e: shard_of(e.shipment_id, shards), key_type=Types.INT())
        .process(DelayRedisFunction(settings))
        .name("redis-delays")
        .uid("redis-delays")
    )


def read_scans(t_env: StreamTableEnvironment, settings: DelaySettings) -> KeyedStream:
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
    kafka_raw_table(t_env, settings, settings.scans_topic, "scans_kafka", watermark_per_record=True)
    return keyed_by_sql(t_env, "scans_kafka", PARTITION_KEY_SQL, RAW_RECORD)


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    settings = DelaySettings.from_argv(argv)
    execute(job(settings), JOB_NAME, settings)


def job(settings: DelaySettings) -> StreamExecutionEnvironment:
    """The whole job, sources to sinks, in a new environment, ready to execute."""
    env, t_env = create_environment(settings, JOB_NAME)
    scans = read_scans(t_env, settings)
    pings = (
        kafka_raw_source(t_env, settings, settings.gps_topic, "gps_source")
        if settings.at_risk
        else None
    )
    outputs = build(t_env, scans, pings, settings)
    attach_redis(outputs["effects"], settings, env.get_parallelism())
    attach_sinks(
        t_env,
        {kafka_text_sink(t_env, settings, settings.alerts_topic, "alerts_sink"): outputs["alerts"]},
    )
    dead_letter_sink(env, outputs["dlq"], settings)
    return env


if __name__ == "__main__":
    # Run the imported module's main, not this __main__ copy: cloudpickle ships classes of
    # __main__ by value (with every global they touch), those of a module by reference.
    from flink_jobs.delay.job import main as module_main

    module_main(sys.argv[1:])
