"""BufferedWriterFunction: records wait in list state and are written, in order, on a tick."""

from __future__ import annotations

from typing import Any

import pytest

from flink_jobs.runtime.buffered_writer import BufferedWriterFunction, shard_of
from flink_jobs.runtime.settings import BufferedWriterSettings
from flink_jobs.runtime.timers import END_OF_INPUT_TIMER as END_OF_INPUT
from tests.unit.flink_fakes import FakeContext, FakeRuntime

pytestmark = pytest.mark.unit


class RecordingWriter(BufferedWriterFunction):
    buffer_state = "pending_test"
    written_kind = "test"

    def open_writer(self, runtime_context: Any) -> None:
        self.batches: list[list[Any]] = []
        self.ticks = 0

    def write(self, items: list[Any]) -> None:
        self.batches.append(items)

    def after_flush(self) -> None:
        self.ticks += 1


def opened() -> tuple[RecordingWriter, FakeRuntime]:
    fn, runtime = RecordingWriter(BufferedWriterSettings(redis_flush_ms=200)), FakeRuntime()
    fn.open(runtime)
    return fn, runtime


def test_records_wait_in_list_state_until_the_tick_writes_them_in_order() -> None:
    fn, runtime = opened()
    ctx = FakeContext(key=3, now=1_050)
    for item in ["a", "b", "c"]:
        assert list(fn.process_element(item, ctx)) == []
    assert runtime.states["pending_test"].items == ["a", "b", "c"]  # in the checkpoint
    assert fn.batches == []
    # one tick timer and one end-of-input timer, however many records arrive
    assert ctx.registered == [("processing", 3, 1_200), ("event", 3, END_OF_INPUT)]

    assert list(fn.on_timer(1_200, ctx)) == []
    assert fn.batches == [["a", "b", "c"]]
    assert runtime.states["pending_test"].items == []
    assert runtime.counters["fleetpulse.kind.test.redis_writes"].count == 3
    assert fn.ticks == 1


def test_a_tick_with_nothing_buffered_writes_nothing_and_still_runs_the_upkeep() -> None:
    fn, runtime = opened()
    fn.on_timer(END_OF_INPUT, FakeContext(key=0, now=0))
    assert fn.batches == []
    assert fn.ticks == 1
    assert "fleetpulse.kind.test.redis_writes" not in runtime.counters


def test_shards_are_stable_and_in_range() -> None:
    assert shard_of("T00042", 4) == shard_of("T00042", 4)
    assert {shard_of(f"T{i:05d}", 4) for i in range(200)} == {0, 1, 2, 3}
    assert shard_of("T00042", 4) == 2  # crc32, the same in every process and after restarts


class RecordingBundleWriter(RecordingWriter):
    """Elements are lists of records, one per bundle (as the bundled truck function sends)."""

    def unpack(self, buffered: list[list[Any]]) -> list[Any]:
        return [item for bundle in buffered for item in bundle]


def test_bundles_wait_as_one_element_each_and_are_written_flat_in_order() -> None:
    fn, runtime = RecordingBundleWriter(BufferedWriterSettings(redis_flush_ms=200)), FakeRuntime()
    fn.open(runtime)
    ctx = FakeContext(key=1, now=1_050)
    for bundle in (["a", "b"], ["c"]):
        list(fn.process_element(bundle, ctx))
    assert runtime.states["pending_test"].items == [["a", "b"], ["c"]]
    list(fn.on_timer(1_200, ctx))
    assert fn.batches == [["a", "b", "c"]]
    assert runtime.counters["fleetpulse.kind.test.redis_writes"].count == 3  # not bundles
