"""Event clock, pacing and the JSONL format (no servers, injected clocks)."""

from __future__ import annotations

import pytest
from simtest_support import Run

from simulator.cli import replay_paced
from simulator.fleet import Record
from simulator.pacing import EventClock, paced
from simulator.sinks import decode_line, encode_line

pytestmark = pytest.mark.unit


class FakeTime:
    def __init__(self, wall_ms: int) -> None:
        self.wall = wall_ms
        self.slept = 0.0

    def wall_ms(self) -> int:
        return self.wall

    def mono(self) -> float:
        return self.wall / 1000

    def sleep(self, s: float) -> None:
        self.slept += s
        self.wall += int(s * 1000) + 1


def test_event_clock_speeds_up_but_never_passes_the_wall() -> None:
    ft = FakeTime(10_000_000)
    clock = EventClock(start_ms=10_000_000 - 3_600_000, speedup=60, wall_ms=ft.wall_ms)
    assert clock.now_ms() == 10_000_000 - 3_600_000
    ft.wall += 30_000  # 30 s wall = 30 min simulated
    assert clock.now_ms() == 10_000_000 - 1_800_000
    for _ in range(100):
        ft.wall += 1_000
        assert clock.now_ms() <= ft.wall
    assert clock.now_ms() == ft.wall  # caught up: real time from here


def test_paced_waits_for_the_event_clock() -> None:
    ft = FakeTime(1_000_000_000)
    start = ft.wall - 600_000
    clock = EventClock(start, speedup=100, wall_ms=ft.wall_ms)
    recs = [Record("gps", b"k", b"{}", start + i * 60_000) for i in range(5)]
    out = list(paced(recs, lambda r: r.emit_ms, clock, sleep=ft.sleep, monotonic=ft.mono))
    assert out == recs
    assert 2.3 <= ft.slept <= 2.6  # 4 simulated minutes at 100x


def test_rate_cap() -> None:
    ft = FakeTime(1_000_000_000)
    clock = EventClock(ft.wall - 10**9, speedup=1e9, wall_ms=ft.wall_ms)
    recs = [Record("gps", b"k", b"{}", 0) for _ in range(101)]
    list(paced(recs, lambda r: r.emit_ms, clock, max_rate=50, sleep=ft.sleep, monotonic=ft.mono))
    assert 1.9 <= ft.slept <= 2.2


def test_replay_pace_scaled() -> None:
    ft = FakeTime(0)
    recs = [Record("gps", b"k", b"{}", 1_000_000 + i * 10_000) for i in range(4)]
    assert list(replay_paced(iter(recs), 10, sleep=ft.sleep, monotonic=ft.mono)) == recs
    assert 2.9 <= ft.slept <= 3.1


def test_jsonl_roundtrip_keeps_broken_values(faulty_run: Run) -> None:
    for r in faulty_run.records[:2000] + [Record("scans", b"S1", b"\xff\x00{", 5)]:
        assert decode_line(encode_line(r), "x") == r


class _KafkaError:
    def __init__(self, fatal: bool) -> None:
        self._fatal = fatal

    def fatal(self) -> bool:
        return self._fatal

    def __str__(self) -> str:
        return "127.0.0.1:9092/1: Connect to ipv4#127.0.0.1:9092 failed: Connection refused"


def test_a_broker_restart_is_not_counted_as_lost_records() -> None:
    """librdkafka reports each refused connection through error_cb while the broker restarts;
    only records it gave up on (delivery reports) are lost, and only a fatal error stops."""
    from simulator import SimulatorError
    from simulator.sinks import KafkaSink

    sink = KafkaSink.__new__(KafkaSink)  # the callbacks only, no producer
    sink.errors = 0
    for _ in range(87):
        sink._on_error(_KafkaError(fatal=False))
    assert sink.errors == 0
    sink._on_delivery(_KafkaError(fatal=False), None)
    assert sink.errors == 1
    with pytest.raises(SimulatorError, match="failed"):
        sink._on_error(_KafkaError(fatal=True))
