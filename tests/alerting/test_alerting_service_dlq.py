"""The dispatcher loop and its dead letters, with fake Kafka clients: a dead letter that cannot
be written is counted and logged with its record's partition and offset and the loop goes on;
offsets are committed only when no dead letter is in flight (so a restart re-reads a record
whose dead letter was neither written nor given up on)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from alerting_receiver import alert_doc

from alerting.config import parse_config
from alerting.kafka_io import InRecord, Origin, WriteFailure
from alerting.metrics import Metrics
from alerting.service import Dispatcher, Settings

pytestmark = pytest.mark.unit

CFG = """
receivers: [{name: hook, type: webhook, url: "http://127.0.0.1:1/", secret: s}]
route: {receiver: hook}
"""


class FakeSource:
    def __init__(self) -> None:
        self.batches: list[list[InRecord]] = []
        self.commits = 0

    def poll(self, timeout_ms: int, max_records: int) -> list[InRecord]:
        return self.batches.pop(0) if self.batches else []

    def commit(self, asynchronous: bool = False) -> bool:
        self.commits += 1
        return True

    def caught_up(self, max_lag: int) -> bool:
        return True


class FakeProducer:
    """Dead letters stay in flight until ``ack`` or ``fail``; ``refuse`` fails them at send."""

    def __init__(self, on_failure: Callable[[WriteFailure], None]) -> None:
        self.on_failure = on_failure
        self.pending: list[tuple[Origin, bytes, bytes]] = []
        self.refuse = False

    def send(self, key: bytes, value: bytes, origin: Origin) -> None:
        if self.refuse:
            self.on_failure(WriteFailure(origin, "refused"))
        else:
            self.pending.append((origin, key, value))

    def ack(self) -> None:
        self.pending.clear()

    def fail(self) -> None:
        for origin, _, _ in self.pending:
            self.on_failure(WriteFailure(origin, "timed out"))
        self.pending.clear()

    def in_flight(self) -> int:
        return len(self.pending)

    def flush(self, timeout_s: float) -> int:
        return self.in_flight()

    def serve(self) -> None:
        pass


@pytest.fixture()
def loop(tmp_path: Path) -> Iterator[tuple[Dispatcher, FakeSource, FakeProducer]]:
    d = Dispatcher(
        parse_config(CFG, "t.yaml"),
        Settings(bootstrap="unused", state_dir=str(tmp_path / "s")),
        metrics=Metrics(),
    )
    source = FakeSource()
    producer = FakeProducer(d.dlq_write_failed)
    yield d, source, producer
    d.store.close()


def rec(offset: int, value: bytes | None, partition: int = 3) -> InRecord:
    return InRecord("fleet.alerts", partition, offset, 1, value, b"key")


def step(d: Dispatcher, source: FakeSource, producer: FakeProducer) -> None:
    d._step(source, producer)  # type: ignore[arg-type]


def failures(d: Dispatcher) -> float:
    return d.metrics.value("fleetpulse_alerting_dlq_write_failures_total")


def test_offsets_wait_for_dead_letters_in_flight(
    loop: tuple[Dispatcher, FakeSource, FakeProducer],
) -> None:
    d, source, producer = loop
    source.batches = [[rec(0, b"{bad"), rec(1, orjson.dumps(alert_doc()))]]
    step(d, source, producer)
    assert source.commits == 0 and producer.in_flight() == 1
    [(origin, key, value)] = producer.pending
    assert (origin, key) == (Origin("fleet.alerts", 3, 0), b"fleet.alerts")
    assert orjson.loads(value)["key"] == "key"
    step(d, source, producer)  # still in flight: nothing committed
    assert source.commits == 0
    producer.ack()
    step(d, source, producer)  # acknowledged: the owed commit is made
    assert source.commits == 1
    step(d, source, producer)  # nothing new read: nothing to commit
    assert source.commits == 1
    assert failures(d) == 0


def test_a_lost_dead_letter_is_counted_logged_and_committed_past(
    loop: tuple[Dispatcher, FakeSource, FakeProducer], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="alerting.service")
    d, source, producer = loop
    producer.refuse = True
    source.batches = [[rec(7, b"\xff"), rec(8, None)]]
    step(d, source, producer)
    assert failures(d) == 2 and source.commits == 1
    producer.refuse = False
    source.batches = [[rec(9, b"[]")]]
    step(d, source, producer)
    producer.fail()  # given up on later (e.g. the message timeout)
    step(d, source, producer)
    assert failures(d) == 3 and source.commits == 2
    assert [r.getMessage() for r in caplog.records] == [
        f"dead letter not written to fleet.dlq for fleet.alerts partition 3 offset {o}: {e}"
        for o, e in ((7, "refused"), (8, "refused"), (9, "timed out"))
    ]
    assert d.metrics.value("fleetpulse_alerting_records_total", outcome="malformed") == 3


def test_a_dead_letter_that_cannot_be_built_is_a_counted_failure(
    loop: tuple[Dispatcher, FakeSource, FakeProducer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Building a dead letter cannot fail today (details are escaped); if it ever does, that is
    one more counted write failure, not an exception out of the loop."""
    import alerting.service

    d, source, producer = loop

    def broken(*_: Any) -> tuple[bytes, bytes]:
        raise ValueError("cannot encode")

    monkeypatch.setattr(alerting.service, "dlq_record", broken)
    source.batches = [[rec(0, b"{bad")]]
    step(d, source, producer)
    assert failures(d) == 1 and source.commits == 1
