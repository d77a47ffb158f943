"""Keying in the JVM (:mod:`flink_jobs.runtime.jvm_keying`) gives a Python keyed function what
``key_by`` gives it: every record of a key on one subtask, with that key's state, and the
record itself unchanged. MiniCluster, parallelism 2."""

from __future__ import annotations

import threading
from typing import Any

import orjson
import pytest

from flink_jobs.runtime.settings import JobSettings

pytestmark = pytest.mark.flink


def test_records_keyed_by_sql_share_their_keys_state_across_two_subtasks() -> None:
    from pyflink.common import Row, Types
    from pyflink.datastream import KeyedProcessFunction
    from pyflink.datastream.state import ValueStateDescriptor

    from flink_jobs.runtime.environment import create_environment
    from flink_jobs.runtime.jvm_keying import keyed_by_sql
    from flink_jobs.runtime.records import RAW_RECORD

    class CountPerKey(KeyedProcessFunction):
        def open(self, runtime_context: Any) -> None:
            self.seen = runtime_context.get_state(ValueStateDescriptor("seen", Types.INT()))
            # thread mode runs each subtask on a task thread of its own
            self.subtask = threading.get_ident()

        def process_element(self, value: Any, ctx: KeyedProcessFunction.Context):  # type: ignore[no-untyped-def]
            n = (self.seen.value() or 0) + 1
            self.seen.update(n)
            yield orjson.dumps(
                [
                    ctx.get_current_key(),
                    n,
                    self.subtask,
                    bytes(value[0]).decode("latin-1"),
                    value[1],
                    value[2],
                ]
            ).decode()

    trucks = [f"T{i}" for i in range(8)]
    records = [orjson.dumps({"truck_id": trucks[i % 8], "i": i}) for i in range(64)]
    records += [b"not json", orjson.dumps({"i": 99})]  # no truck_id: key ''
    settings = JobSettings(parallelism=2, checkpoint_interval_ms=600_000, restart_attempts=0)
    env, t_env = create_environment(settings, "jvm-keying-test")
    rows = [Row(r, i % 3, i, None) for i, r in enumerate(records)]
    t_env.create_temporary_view("keyed_input", env.from_collection(rows, type_info=RAW_RECORD))
    keyed = keyed_by_sql(
        t_env,
        "keyed_input",
        "COALESCE(JSON_VALUE(CAST(`value` AS STRING), '$.truck_id'), '')",
        RAW_RECORD,
    )
    with keyed.process(CountPerKey(), output_type=Types.STRING()).execute_and_collect() as out:
        results = [orjson.loads(line) for line in out]

    assert len(results) == len(records)
    by_key: dict[str, list[int]] = {}
    subtasks: dict[str, set[int]] = {}  # key -> task threads that saw it
    for key, n, subtask, raw, partition, offset in results:
        by_key.setdefault(key, []).append(n)
        subtasks.setdefault(key, set()).add(subtask)
        # the record arrives whole, with where it came from
        assert raw.encode("latin-1") == records[offset]
        assert partition == offset % 3
        if key:
            assert orjson.loads(raw)["truck_id"] == key
    assert set(by_key) == {*trucks, ""}
    # one state per key: its counts run 1..n with nothing split between subtasks
    assert all(sorted(ns) == list(range(1, len(ns) + 1)) for ns in by_key.values())
    assert all(len(s) == 1 for s in subtasks.values())
    assert {len(by_key[t]) for t in trucks} == {8} and len(by_key[""]) == 2
    # at parallelism 2 the keys are spread over both subtasks
    assert len(set().union(*subtasks.values())) == 2


def test_a_python_operators_row_key_value_output_is_keyed_without_a_key_by() -> None:
    from pyflink.common import Row, Types
    from pyflink.datastream import KeyedProcessFunction, ProcessFunction
    from pyflink.datastream.state import ValueStateDescriptor

    from flink_jobs.runtime.environment import create_environment
    from flink_jobs.runtime.jvm_keying import keyed_on_first_field

    class Shard(ProcessFunction):
        def process_element(self, value: Any, ctx: ProcessFunction.Context):  # type: ignore[no-untyped-def]
            yield Row(value % 5, {"n": value})  # any picklable value travels with its key

    class CountPerKey(KeyedProcessFunction):
        def open(self, runtime_context: Any) -> None:
            self.seen = runtime_context.get_state(ValueStateDescriptor("seen", Types.INT()))

        def process_element(self, value: Any, ctx: KeyedProcessFunction.Context):  # type: ignore[no-untyped-def]
            n = (self.seen.value() or 0) + 1
            self.seen.update(n)
            yield orjson.dumps(
                [ctx.get_current_key(), n, value["n"], threading.get_ident()]
            ).decode()

    settings = JobSettings(parallelism=2, checkpoint_interval_ms=600_000, restart_attempts=0)
    env, _ = create_environment(settings, "jvm-keying-test")
    sharded = env.from_collection(list(range(100)), type_info=Types.INT()).process(
        Shard(), output_type=Types.ROW([Types.INT(), Types.PICKLED_BYTE_ARRAY()])
    )
    keyed = keyed_on_first_field(sharded, Types.INT(), Types.PICKLED_BYTE_ARRAY())
    with keyed.process(CountPerKey(), output_type=Types.STRING()).execute_and_collect() as out:
        results = [orjson.loads(line) for line in out]

    assert sorted(n for _, _, n, _ in results) == list(range(100))
    assert all(key == n % 5 for key, _, n, _ in results)
    for key in range(5):
        counts = sorted(c for k, c, _, _ in results if k == key)
        assert counts == list(range(1, 21))  # one state per key, all 20 records in it
        assert len({t for k, _, _, t in results if k == key}) == 1
