"""BackgroundWriter: items written in order on one thread, batched while a write is in flight,
drained on demand, failures handed back to the task thread."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest

from flink_jobs.runtime.background_writes import BackgroundWriter, WriteFailed

pytestmark = pytest.mark.unit


def test_items_submitted_while_a_write_is_in_flight_go_out_together_in_order() -> None:
    release = threading.Event()
    batches: list[list[int]] = []

    def write(batch: list[int]) -> None:
        if not batches:
            release.wait()  # hold the first write in flight
        batches.append(batch)

    writer: BackgroundWriter[int] = BackgroundWriter(write, name="test")
    writer.submit([1])
    for n in range(2, 6):
        writer.submit([n])
    release.set()
    writer.drain()
    assert [x for b in batches for x in b] == [1, 2, 3, 4, 5]
    assert len(batches) <= 3  # 2..5 waited for the first write and went out together
    writer.close()


def test_drain_waits_for_the_write_in_flight() -> None:
    release = threading.Event()
    done: list[int] = []

    def write(batch: list[int]) -> None:
        release.wait()
        done.extend(batch)

    writer: BackgroundWriter[int] = BackgroundWriter(write, name="test")
    writer.submit([7])
    drained = threading.Thread(target=writer.drain)
    drained.start()
    drained.join(0.2)
    assert drained.is_alive() and done == []
    release.set()
    drained.join()
    assert done == [7]
    writer.close()


def test_a_failed_write_fails_the_next_submit_drain_and_close() -> None:
    def write(batch: list[int]) -> None:
        raise ConnectionError("redis is down")

    writer: BackgroundWriter[int] = BackgroundWriter(write, name="test")
    writer.submit([1])
    with pytest.raises(WriteFailed, match="redis is down"):
        writer.drain()
    with pytest.raises(WriteFailed):
        writer.submit([2])
    with pytest.raises(WriteFailed):
        writer.close()


def test_close_writes_what_is_queued_and_idle_upkeep_runs_without_items() -> None:
    batches: list[list[int]] = []
    idle = threading.Event()

    def write(batch: list[int]) -> None:
        batches.append(batch)
        if not batch:
            idle.set()

    writer: BackgroundWriter[int] = BackgroundWriter(write, name="test", idle_s=0.05)
    assert idle.wait(2)  # no items for 50 ms: an empty write for upkeep
    writer.submit([1, 2])
    writer.close()
    assert [1, 2] in batches


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc thread names")
def test_the_thread_carries_its_name_in_the_os() -> None:
    names: list[str] = []

    def write(batch: list[int]) -> None:
        names.append(Path(f"/proc/self/task/{threading.get_native_id()}/comm").read_text())

    writer: BackgroundWriter[int] = BackgroundWriter(write, name="redis-positions")
    writer.submit([1])
    writer.close()
    assert names == ["redis-positions\n"]
