"""The per-thread CPU reader of bench.threads: names fold into groups, ticks become cores."""

from __future__ import annotations

import ctypes
import os
import threading
import time
from pathlib import Path

import pytest

from bench.threads import CLOCK_TICKS, ThreadWindow, cores_by_group, group_name, thread_ticks

pytestmark = pytest.mark.unit


def test_trailing_numbers_fold_so_pools_show_as_one_row() -> None:
    assert group_name("GC Thread#0") == group_name("GC Thread#1") == "GC Thread"
    assert group_name("C2 CompilerThre") == "C2 CompilerThre"
    assert group_name("kafka-producer-") == "kafka-producer-"
    assert group_name("42") == "42"


def test_cores_count_each_threads_ticks_over_the_window() -> None:
    before = {(1, "truck-state (1/"): 100, (2, "GC Thread#0"): 10}
    after = {
        (1, "truck-state (1/"): 100 + 2 * CLOCK_TICKS,
        (2, "GC Thread#0"): 10,
        (3, "GC Thread#1"): CLOCK_TICKS,
    }  # born during the window
    used = cores_by_group(before, after, seconds=4.0)
    assert used["truck-state (1/"] == pytest.approx(0.5)
    assert used["GC Thread"] == pytest.approx(0.25)


def test_reads_the_threads_of_a_live_process() -> None:
    ticks = thread_ticks(os.getpid())
    name = Path(f"/proc/{os.getpid()}/comm").read_text().strip()
    assert (os.getpid(), name) in ticks
    assert all(t >= 0 for t in ticks.values())


def test_the_window_reads_the_threads_between_its_two_points_once() -> None:
    window = ThreadWindow(start=0.25, end=0.75)
    pid = os.getpid()
    stop = threading.Event()

    def burn() -> None:
        ctypes.CDLL(None).prctl(15, b"burner", 0, 0, 0)  # PR_SET_NAME
        while not stop.is_set():
            pass

    window(0.1, pid)  # before the window: not yet
    burner = threading.Thread(target=burn, daemon=True)
    burner.start()
    try:
        window(0.3, pid)  # opens
        time.sleep(0.3)
        window(0.5, pid)
        assert window.rows == []
        window(0.8, pid)  # closes
    finally:
        stop.set()
        burner.join()
    assert window.fraction == pytest.approx(0.5)
    assert window.seconds >= 0.3
    rows = [r for r in window.rows if r["threads"] == "burner"]
    assert len(rows) == 1 and rows[0]["cores"] > 0.2
    assert rows[0]["process"] == Path(f"/proc/{pid}/comm").read_text().strip()
    assert window.rows == sorted(window.rows, key=lambda r: -r["cores"])
    before = list(window.rows)
    window(0.9, pid)
    assert window.rows == before
