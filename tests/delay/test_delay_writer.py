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


def test_sweep_removes_the_members_no_shipment_reasserts(redis_url: str, redis_client) -> None:  # type: ignore[no-untyped-def]
    """Anti-entropy (issue 29): a score stamps its member; a member not stamped again before
    the cutoff is swept, one never stamped (an older writer's) is stamped first, then swept."""
    writer = RedisDelayWriter(redis_url)
    try:
        redis_client.zadd("delays", {"shipment:OLD": 2})  # written before stamps existed
        writer.apply([DelayScore("S1", 3), DelayScore("S2", 1)], now_ms=1_000)
        writer.apply([DelayScore("S2", 2)], now_ms=5_000)  # S2 re-asserted, S1 not
        assert writer.sweep(now_ms=6_000, cutoff_ms=2_000) == (1, 1)  # OLD stamped, S1 swept
        assert redis_client.zrange("delays", 0, -1, withscores=True) == [
            (b"shipment:OLD", 2.0),
            (b"shipment:S2", 2.0),
        ]
        assert writer.sweep(now_ms=9_000, cutoff_ms=5_500) == (0, 1)  # S2 was stamped at 5 s
        assert redis_client.zrange("delays", 0, -1) == [b"shipment:OLD"]
        writer.apply([DelayCleared("OLD")], now_ms=9_000)  # a removal drops its stamp too
        assert redis_client.zcard("delays") == 0 and redis_client.zcard("{delays}:asserted") == 0
    finally:
        writer.close()
