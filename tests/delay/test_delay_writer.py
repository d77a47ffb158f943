"""The delay job's Redis writer against a real Redis: idempotent under replay, corrections."""

from __future__ import annotations

import pytest

from flink_jobs.delay.redis_writer import RedisDelayWriter
from udfs.shipment_state import DelayCleared, DelayScore, RegionDelayHours, RegionShipmentCounted

pytestmark = pytest.mark.integration


def _region(client, name: str) -> dict[str, float]:  # type: ignore[no-untyped-def]
    return {k.decode(): float(v) for k, v in client.hgetall(f"region:{name}").items()}


def test_replayed_effects_count_once_and_corrections_replace(redis_url: str, redis_client) -> None:  # type: ignore[no-untyped-def]
    writer = RedisDelayWriter(redis_url)
    history = [
        RegionShipmentCounted("WEST", "S1"),
        DelayScore("S1", 1),
        DelayScore("S1", 3),
        RegionShipmentCounted("WEST", "S2"),
        DelayCleared("S1"),
        RegionDelayHours("WEST", "S1", 2.5),
    ]
    try:
        writer.apply(history)
        writer.apply(history[2:])  # a replay from a checkpoint re-sends a suffix
        writer.apply(history)
        assert redis_client.zrange("delays", 0, -1, withscores=True) == []
        assert _region(redis_client, "WEST") == {"total_shipments": 2.0, "total_delay_hours": 2.5}
        writer.apply([DelayScore("S2", 4)])
        assert redis_client.zscore("delays", "shipment:S2") == 4.0
        # A late scan corrects: S1 was only 1 h late; S2's pickup was really in the SOUTH.
        writer.apply([RegionDelayHours("WEST", "S1", 1.0), RegionShipmentCounted("SOUTH", "S2")])
        writer.apply([RegionDelayHours("WEST", "S1", 1.0)])
        assert _region(redis_client, "WEST") == {"total_shipments": 1.0, "total_delay_hours": 1.0}
        assert _region(redis_client, "SOUTH") == {"total_shipments": 1.0}
        writer.apply([RegionDelayHours("WEST", "S1", 0.0)])
        assert _region(redis_client, "WEST")["total_delay_hours"] == 0.0
        assert redis_client.ttl("delayjob:shipment:S1") > 0
    finally:
        writer.close()
