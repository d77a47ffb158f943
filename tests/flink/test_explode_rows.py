"""Side-output batches spread out in the JVM (:func:`flink_jobs.tracking.bundling.exploded`), as the
bundled tracking job emits its alerts, dead letters, geofence transitions and census deltas:
every row of every batch comes out once, whole, in its batch's order, text and pickled columns
alike."""

from __future__ import annotations

import pickle
from typing import Any

import pytest
from pyflink.common import Row, Types
from pyflink.datastream import ProcessFunction

from flink_jobs.tracking.outputs import BATCHED, CENSUS_TAG, DLQ_TAG

pytestmark = pytest.mark.flink


def run_batches(batches: list[list[tuple[str, int]]]) -> tuple[list[Any], list[Any]]:
    """Each batch through one Python call that emits it twice, as text rows and as census-like
    rows with a pickled column; both exploded and collected."""
    from flink_jobs.runtime.environment import create_environment
    from flink_jobs.runtime.records import KEYED_TEXT
    from flink_jobs.runtime.settings import JobSettings
    from flink_jobs.tracking.bundling import exploded, use_operators_jar

    class EmitBatches(ProcessFunction):
        def process_element(self, value: str, ctx: ProcessFunction.Context):  # type: ignore[no-untyped-def]
            # Imported here, not closed over: a closure pickles the tags by value, and a tag
            # that has met the JVM (in an earlier test) holds a gateway lock.
            from flink_jobs.tracking.bundling import as_columns
            from flink_jobs.tracking.outputs import BATCHED, CENSUS_TAG, DLQ_TAG

            rows = batches[int(value)]
            if rows:
                yield BATCHED[DLQ_TAG], as_columns([Row(k, f"v{n}") for k, n in rows])
                yield BATCHED[CENSUS_TAG], as_columns([Row(k, [("MOVING", n)]) for k, n in rows])
            yield value

    settings = JobSettings(parallelism=1, checkpoint_interval_ms=600_000, restart_attempts=0)
    env, _ = create_environment(settings, "explode-test")
    use_operators_jar(env)
    calls = env.from_collection([str(i) for i in range(len(batches))], Types.STRING())
    emitted = calls.process(EmitBatches(), output_type=Types.STRING())
    text = exploded(emitted.get_side_output(BATCHED[DLQ_TAG]), KEYED_TEXT, "text-rows")
    census = exploded(
        emitted.get_side_output(BATCHED[CENSUS_TAG]), CENSUS_TAG.type_info, "census-rows"
    )
    with text.execute_and_collect() as out:
        text_rows = [tuple(r) for r in out]
    with census.execute_and_collect() as out:
        # collect hands a pickled field over as its bytes
        census_rows = [(r[0], pickle.loads(r[1])) for r in out]
    return text_rows, census_rows


def test_every_row_of_every_batch_comes_out_once_in_order() -> None:
    batches = [
        [("a", 1), ("b", 2), ("a", 3)],
        [],
        [("c", 4)],
        [(f"k{i}", 10 + i) for i in range(500)],
    ]
    text_rows, census_rows = run_batches(batches)

    flat = [row for batch in batches for row in batch]
    assert text_rows == [(k, f"v{n}") for k, n in flat]
    assert census_rows == [(k, [("MOVING", n)]) for k, n in flat]
