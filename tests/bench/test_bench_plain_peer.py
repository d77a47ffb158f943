"""The plain-Python peer of `fleetpulse bench` runs the tracking job's logic: positions on
arrival, detection and the offline timeout when its event-time timers fire, dead letters for
bad records. A fake producer stands in for Kafka; nothing is timed."""

from __future__ import annotations

import argparse

import orjson
import pytest

from bench.peers.plain import END_OF_INPUT, Outputs, Tracker
from udfs.truck_state import PositionWrite, TrackingConfig

pytestmark = pytest.mark.unit
T0 = 1_764_000_000_000


class FakeProducer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bytes]] = []

    def produce(self, topic: str, value: bytes, key: bytes) -> None:
        self.sent.append((topic, value, key))


def args() -> argparse.Namespace:
    return argparse.Namespace(
        topic="fleet.gps",
        alerts_topic="fleet.alerts",
        geofence_topic="fleet.geofence-events",
        dlq_topic="fleet.dlq",
    )


def ping(ts: int, lat: float) -> bytes:
    return orjson.dumps({"truck_id": "T1", "ts": ts, "lat": lat, "lng": -90.0, "speed_kph": 60.0})


def test_positions_timers_alerts_and_dead_letters() -> None:
    producer = FakeProducer()
    out = Outputs(producer, args())
    tracker = Tracker(TrackingConfig(), out)
    now = T0 + 3_600_000
    for i in range(3):
        assert (
            tracker.on_record(ping(T0 + i * 30_000, 40.0 + i * 0.005), 0, i, now) == T0 + i * 30_000
        )
    assert tracker.on_record(b"{not json", 0, 3, now) is None
    assert [w.ts for w in out.positions if isinstance(w, PositionWrite)] == [
        T0,
        T0 + 30_000,
        T0 + 60_000,
    ]
    assert producer.sent[0][0] == "fleet.dlq"
    assert orjson.loads(producer.sent[0][1])["reason"] == "MALFORMED_JSON"
    # the watermark passes the pings: detection, but no alert yet
    tracker.fire(T0 + 70_000)
    assert [t for t, _, _ in producer.sent] == ["fleet.dlq"]
    # end of input: every timer is due, so the 10-minute silence raises truck_offline
    tracker.fire(END_OF_INPUT)
    alerts = [orjson.loads(v) for t, v, _ in producer.sent if t == "fleet.alerts"]
    assert [a["dedup_key"] for a in alerts] == ["truck_offline:T1"]
    assert alerts[0]["payload"]["custom_details"]["event_ts"] == T0 + 60_000 + 600_000
    assert out.region_counts() == {
        "MIDWEST": {"active_trucks": 0, "moving_trucks": 0, "stopped_trucks": 0}
    }


class FullQueueProducer(FakeProducer):
    """librdkafka's local queue, full for the first ``full_for`` attempts."""

    def __init__(self, full_for: int) -> None:
        super().__init__()
        self.full_for = full_for
        self.polls = 0

    def produce(self, topic: str, value: bytes, key: bytes) -> None:
        if self.full_for > 0:
            self.full_for -= 1
            raise BufferError("Local: Queue full")
        super().produce(topic, value, key)

    def poll(self, timeout: float) -> int:
        self.polls += 1
        return 0


def test_a_full_producer_queue_waits_for_deliveries_instead_of_losing_the_alert() -> None:
    """The end of a bounded input fires 100,000 offline alerts at once, more than the
    producer's queue holds: the peer crashed there with BufferError before."""
    producer = FullQueueProducer(full_for=3)
    out = Outputs(producer, args())
    tracker = Tracker(TrackingConfig(), out)
    tracker.on_record(ping(T0, 40.0), 0, 0, T0 + 3_600_000)
    tracker.fire(END_OF_INPUT)
    assert [orjson.loads(v)["dedup_key"] for t, v, _ in producer.sent if t == "fleet.alerts"] == [
        "truck_offline:T1"
    ]
    assert producer.polls == 3
