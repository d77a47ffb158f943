"""The tracking job's keyed function as an adapter: what it does with a record around the pure
state machine now that records arrive keyed by the JVM (validation first, the JVM's key
checked, the writer's shard attached)."""

from __future__ import annotations

import time
from typing import Any

import orjson
import pytest
from pyflink.common import Row, Types
from pyflink.datastream.state import ValueStateDescriptor

from flink_jobs.buffered_writer import shard_of
from flink_jobs.settings import JobSettings
from flink_jobs.tracking_job import DLQ_TAG, TruckFunction
from tests.unit.flink_fakes import FakeContext, FakeRuntime
from udfs.geo import GeofenceIndex, default_regions
from udfs.truck_state import PositionWrite, TrackingConfig

pytestmark = pytest.mark.unit
SHARDS = 4  # the writer's shards at parallelism 2


def stored(runtime: FakeRuntime) -> Any:
    """The truck's state box as the function left it (None: never written)."""
    return runtime.get_state(ValueStateDescriptor("truck", Types.PICKLED_BYTE_ARRAY())).stored


def opened() -> tuple[TruckFunction, FakeRuntime]:
    fn = TruckFunction(JobSettings(bounded=True, parallelism=2), TrackingConfig(),
                       default_regions(), GeofenceIndex.from_file())
    runtime = FakeRuntime()
    fn.open(runtime)
    return fn, runtime


def record(value: bytes) -> Row:
    return Row(value, 3, 42, b"key")  # RAW_RECORD: bytes, partition, offset, key


def a_ping(truck: str) -> bytes:
    return orjson.dumps({"truck_id": truck, "ts": int(time.time() * 1000) - 60_000,
                         "lat": 40.0, "lng": -100.0, "speed_kph": 50})


def dead_letters(outputs: list[Any]) -> list[dict[str, Any]]:
    return [orjson.loads(o[1][1]) for o in outputs
            if not isinstance(o, Row) and o[0] is DLQ_TAG]


def test_a_ping_keyed_as_another_truck_is_dead_lettered_and_not_applied() -> None:
    fn, runtime = opened()
    out = list(fn.process_element(record(a_ping("T1")), FakeContext(key="T2")))
    [letter] = dead_letters(out)
    assert (letter["reason"], letter["partition"], letter["offset"]) == ("BAD_VALUE", 3, 42)
    assert len(out) == 1 and stored(runtime) is None
    assert fn.counters.totals["dlq_bad_value"] == 1


def test_a_broken_record_is_dead_lettered_under_the_empty_key() -> None:
    fn, runtime = opened()
    out = list(fn.process_element(record(b"{broken"), FakeContext(key="")))
    assert [d["reason"] for d in dead_letters(out)] == ["MALFORMED_JSON"]
    assert stored(runtime) is None


def test_a_ping_under_its_own_key_goes_to_the_writers_shard_and_into_state() -> None:
    fn, runtime = opened()
    ctx = FakeContext(key="T1")
    out = list(fn.process_element(record(a_ping("T1")), ctx))
    writes = [o for o in out if isinstance(o, Row)]
    assert len(writes) == 1
    shard, write = writes[0]
    assert isinstance(write, PositionWrite) and write.truck_id == "T1"
    assert shard == shard_of("T1", SHARDS)
    assert dead_letters(out) == []
    assert stored(runtime)[0].pos_ts == write.ts
    assert [kind for kind, _, _ in ctx.registered] == ["event"]  # its detection wake-up
    assert fn.counters.totals["parsed"] == 1


def test_the_next_arrival_detects_the_ping_the_watermark_passed_and_moves_the_wake_up() -> None:
    fn, runtime = opened()
    first = orjson.loads(a_ping("T1"))
    second = {**first, "ts": first["ts"] + 30_000, "lat": 40.003}
    list(fn.process_element(record(orjson.dumps(first)), FakeContext(key="T1")))
    slack = fn.cfg.detection_slack_ms
    box = stored(runtime)
    assert box[1] == first["ts"] + slack and box[0].det_ts == -1  # buffered, not detected

    ctx = FakeContext(key="T1", watermark=second["ts"] - 10_000)
    list(fn.process_element(record(orjson.dumps(second)), ctx))
    box = stored(runtime)
    assert box[0].det_ts == first["ts"]  # detected on this arrival, not on a timer
    assert [p.ts for p in box[0].pending] == [second["ts"]]
    assert ctx.deleted == [("event", "T1", first["ts"] + slack)]
    assert ctx.registered == [("event", "T1", second["ts"] + slack)]
    assert box[1] == second["ts"] + slack
