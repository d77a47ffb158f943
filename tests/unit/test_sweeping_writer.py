"""SweepingPositionWriter: writes pass through, and the geo sweep runs at most every
SWEEP_EVERY_S, with or without positions to write."""

from __future__ import annotations

from typing import Any

import pytest

from flink_jobs.tracking import redis_writer
from flink_jobs.tracking.redis_writer import SweepingPositionWriter
from udfs.truck_state import PositionWrite

pytestmark = pytest.mark.unit


class RecordingWriter:
    def __init__(self, *args: Any) -> None:
        self.calls: list[Any] = []

    def write_positions(self, writes: list[PositionWrite]) -> int:
        self.calls.append(("write", len(writes)))
        return len(writes)

    def sweep_geo(self) -> int:
        self.calls.append("sweep")
        return 0


def test_the_sweep_runs_once_an_interval_with_or_without_writes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(redis_writer, "open_truck_writer", RecordingWriter)
    clock = [1000.0]
    monkeypatch.setattr(redis_writer.time, "monotonic", lambda: clock[0])
    writer = SweepingPositionWriter("redis://unused")
    position = PositionWrite("T1", 1, 40.0, -100.0, 50.0, 0.0, "MOVING", "MIDWEST")
    every = SweepingPositionWriter.SWEEP_EVERY_S
    writer([position])  # the first call sweeps
    clock[0] += every / 2
    writer([position, position])
    writer([])  # idle, but its interval has not passed
    clock[0] += every / 2 + 1
    writer([])  # idle, and an interval since the last sweep
    calls = writer.writer.calls  # type: ignore[attr-defined]
    assert calls == [("write", 1), "sweep", ("write", 2), "sweep"]
