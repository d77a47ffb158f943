"""The JVM bundler (:mod:`flink_jobs.tracking.bundling`) on a MiniCluster at parallelism 2: every
record
reaches Python once, whole, in its key's order and shard, and never behind a watermark that
followed it upstream (bundles are flushed before each watermark is forwarded)."""

from __future__ import annotations

import threading
from typing import Any

import orjson
import pytest

from flink_jobs.runtime.settings import JobSettings
from flink_jobs.tracking.shards import java_shard

pytestmark = pytest.mark.flink

SHARDS = 5


def run_bundled(n: int, checkpoint_ms: int = 600_000) -> list[Any]:
    """``n`` generated records through the bundler; per bundle: shard, watermark seen, task
    thread, records."""
    from pyflink.common import Types
    from pyflink.datastream import KeyedProcessFunction

    from flink_jobs.runtime.environment import create_environment
    from flink_jobs.tracking.bundling import bundled_by_shard, decode_bundle

    class Unbundle(KeyedProcessFunction):
        def process_element(self, value: Any, ctx: KeyedProcessFunction.Context):  # type: ignore[no-untyped-def]
            watermark = ctx.timer_service().current_watermark()
            records = [
                [p, o, None if k is None else k.decode(), None if v is None else v.decode()]
                for p, o, k, v in decode_bundle(value)
            ]
            yield orjson.dumps(
                [ctx.get_current_key(), watermark, threading.get_ident(), records]
            ).decode()

    settings = JobSettings(parallelism=2, checkpoint_interval_ms=checkpoint_ms, restart_attempts=0)
    env, t_env = create_environment(settings, "bundling-test")
    t_env.get_config().set("pipeline.auto-watermark-interval", "10 ms")
    # Like the Kafka tables: bytes, partition, offset and a watermark declared in SQL; paced
    # so that many watermarks fall between the records. A truck's records all come from one
    # source subtask, as one Kafka partition holds a truck's pings (its parity and hundred:
    # the sequence splits by parity over two subtasks, or in halves); every 50th record has
    # no truck_id.
    t_env.execute_sql(f"""
        CREATE TEMPORARY TABLE bundle_input (
          `seq` BIGINT,
          `value` AS CAST(CASE WHEN MOD(`seq`, 50) = 49 THEN 'not json'
                          ELSE CONCAT('{{"truck_id":"T', CAST(MOD(`seq`, 2) AS STRING), '_',
                                      CAST(`seq` / 100 AS STRING),
                                      '","i":', CAST(`seq` AS STRING), '}}') END AS BYTES),
          `partition` AS CAST(MOD(`seq`, 3) AS INT),
          `offset` AS `seq`,
          `record_key` AS CASE WHEN MOD(`seq`, 7) = 0 THEN CAST(NULL AS BYTES)
                          ELSE CAST(CONCAT('k', CAST(`seq` AS STRING)) AS BYTES) END,
          `rowtime` AS TO_TIMESTAMP_LTZ(`seq`, 3),
          WATERMARK FOR `rowtime` AS `rowtime`
        ) WITH ('connector' = 'datagen', 'rows-per-second' = '600',
                'fields.seq.kind' = 'sequence', 'fields.seq.start' = '0',
                'fields.seq.end' = '{n - 1}')""")
    # flushes by size or timer would take a minute: only watermarks and the end flush here
    bundles = bundled_by_shard(
        env,
        t_env,
        "bundle_input",
        "COALESCE(JSON_VALUE(CAST(`value` AS STRING), '$.truck_id'), '')",
        SHARDS,
        max_records=100_000,
        flush_ms=60_000,
    )
    with bundles.process(Unbundle(), output_type=Types.STRING()).execute_and_collect() as out:
        return [orjson.loads(line) for line in out]


def test_bundles_keep_every_record_in_key_order_and_ahead_of_the_watermark() -> None:
    n = 600
    results = run_bundled(n)

    seen: list[int] = []
    by_key: dict[str, list[int]] = {}
    threads: dict[int, set[int]] = {}
    for shard, watermark, thread, bundle in results:
        threads.setdefault(shard, set()).add(thread)
        for partition, offset, key, value in bundle:
            assert key == (None if offset % 7 == 0 else f"k{offset}")  # the Kafka key travels
            seen.append(offset)
            assert partition == offset % 3
            key = "" if offset % 50 == 49 else f"T{offset % 2}_{offset // 100}"
            assert value == ("not json" if not key else f'{{"truck_id":"{key}","i":{offset}}}')
            assert shard == java_shard(key, SHARDS)
            by_key.setdefault(key, []).append(offset)
            # the record's event time (its offset) is ahead of every watermark already seen
            assert offset > watermark, (offset, watermark)
    assert sorted(seen) == list(range(n))
    bad = {k: o for k, o in by_key.items() if k and o != sorted(o)}
    assert not bad, bad
    assert all(len(t) == 1 for t in threads.values())  # one subtask per shard
    # watermarks cut the stream into many bundles, and did so mid-stream
    assert len(results) > 4 * SHARDS
    assert max(w for _, w, _, _ in results) > 0


def test_before_each_checkpoint_barrier_every_shard_gets_an_empty_bundle() -> None:
    n = 600  # a second of input, with a checkpoint every 100 ms
    results = run_bundled(n, checkpoint_ms=100)
    markers: dict[int, int] = {}
    seen: list[int] = []
    for shard, _, _, bundle in results:
        if not bundle:
            markers[shard] = markers.get(shard, 0) + 1
        seen.extend(offset for _, offset, _, _ in bundle)
    assert sorted(seen) == list(range(n))  # markers take nothing away
    # each of the two bundler subtasks marks every shard at each checkpoint it takes part in
    assert set(markers) == set(range(SHARDS))
    assert min(markers.values()) >= 2
