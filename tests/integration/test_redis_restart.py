"""Redis as `up` runs it (append-only file fsynced every second, a password) against a real
redis-server: a ``kill -9`` loses nothing acknowledged, and when Redis comes back from files
that lack the last writes (a machine crash loses up to a second), the jobs' next absolute
re-assertion (the delay job's refresh, the tracking job's census tick) restores every counter
and `delays` exactly."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, cast

import pytest
import redis

from fleetpulse.services.process import ManagedProcess
from fleetpulse.services.redis_server import RedisServer, redis_password
from fleetpulse.waiting import free_port, wait_until
from flink_jobs.delay.redis_writer import RedisDelayWriter
from flink_jobs.tracking.redis_writer import RedisTruckWriter, region_count_fields
from udfs.shipment_state import DelayConfig, RedisEffect, ShipmentState, reassert

pytestmark = pytest.mark.integration
NOW_MS = 1_764_000_000_000  # the writers' clock, fixed so `{delays}:asserted` compares too


def shipment(sid: str, region: str, score: int, hours: float) -> ShipmentState:
    return ShipmentState(
        sid, score=score, counted_region=region, delay_hours=(region, hours) if hours else None
    )


def refresh(url: str, states: list[ShipmentState], census: dict[str, dict[str, int]]) -> None:
    """What the jobs write every refresh: each shipment's absolute values, each region's
    truck counts."""
    effects = [o for s in states for o in reassert(s, DelayConfig()) if isinstance(o, RedisEffect)]
    delay, trucks = RedisDelayWriter(url), RedisTruckWriter(url)
    try:
        delay.apply(effects, now_ms=NOW_MS)
        trucks.write_region_counts({r: region_count_fields(c) for r, c in census.items()})
    finally:
        delay.close()
        trucks.close()


def picture(url: str) -> dict[str, object]:
    """Everything the jobs' Redis values mean: region hashes and the `delays` sets."""
    client = redis.Redis.from_url(url, decode_responses=True)
    try:
        out: dict[str, object] = {k: client.hgetall(k) for k in client.scan_iter("region:*")}
        for key in ("delays", "{delays}:asserted"):
            out[key] = client.zrange(key, 0, -1, withscores=True)
        return out
    finally:
        client.close()


def test_redis_restarted_from_its_files_converges_on_the_jobs_state(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "redis", free_port(), password=redis_password(tmp_path))
    before = [
        shipment("S1", "WEST", 2, 3.5),
        shipment("S2", "WEST", 1, 0.25),
        shipment("S3", "EAST", 0, 0.0),
    ]
    census_before = {"WEST": {"MOVING": 4, "STOPPED": 1}, "EAST": {"MOVING": 2}}
    after = [
        shipment("S1", "EAST", 3, 5.0),  # pickup region corrected, later and later
        shipment("S2", "WEST", 0, 0.0),  # back on schedule
        shipment("S3", "EAST", 0, 0.0),
        shipment("S4", "WEST", 1, 1.5),  # new
    ]
    census_after = {"WEST": {"MOVING": 3, "STOPPED": 2}, "EAST": {"MOVING": 1, "STOPPED": 1}}
    proc: ManagedProcess | None = server.start(tmp_path / "redis.log")
    try:
        with pytest.raises(redis.AuthenticationError):  # no password, no access
            redis.Redis(port=server.port).ping()
        refresh(server.url, before, census_before)
        first = picture(server.url)
        assert first["region:WEST"] == {
            "total_shipments": "2",
            "total_delay_hours": "3.75",
            "active_trucks": "5",
            "moving_trucks": "4",
            "stopped_trucks": "1",
        }

        # kill -9: every acknowledged write was in the append-only file (written before the
        # reply; the fsync every second only matters to a machine crash)
        assert proc is not None
        proc.kill()
        proc = server.start(tmp_path / "redis.log")
        assert picture(server.url) == first
        shutil.copytree(tmp_path / "redis", tmp_path / "older")  # the files as of `first`

        refresh(server.url, after, census_after)
        second = picture(server.url)
        assert second != first
        # ... a crash that lost the writes since: Redis comes back from the older files
        proc.kill()
        proc = None
        shutil.rmtree(tmp_path / "redis")
        shutil.copytree(tmp_path / "older", tmp_path / "redis")
        proc = server.start(tmp_path / "redis.log")
        assert picture(server.url) == first  # stale until the jobs write again

        refresh(server.url, after, census_after)  # the jobs' next refresh
        assert picture(server.url) == second
        assert second["region:EAST"] == {
            "total_shipments": "2",
            "total_delay_hours": "5",
            "active_trucks": "2",
            "moving_trucks": "1",
            "stopped_trucks": "1",
        }
        assert second["delays"] == [("shipment:S4", 1.0), ("shipment:S1", 3.0)]
    finally:
        if proc is not None:
            proc.stop()


def test_a_snapshot_left_before_the_append_only_file_is_kept(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "redis", free_port(), password=redis_password(tmp_path))
    server.data_dir.mkdir()
    # Redis as versions before the append-only file ran it: snapshots only, saved on stop
    argv = RedisServer(server.data_dir, server.port).argv(from_snapshot=True)
    old = ManagedProcess("redis", argv, tmp_path / "old.log").start()
    try:
        wait_until(lambda: redis.Redis(port=server.port).ping(), 30, "the old Redis")
        redis.Redis(port=server.port).hset("region:WEST", "total_shipments", "9")
    finally:
        old.stop()
    assert (server.data_dir / "dump.rdb").exists()
    proc = server.start(tmp_path / "redis.log")
    try:
        proc.kill()  # after the switch, the append-only file holds the snapshot's data
        proc = server.start(tmp_path / "redis.log")
        client = redis.Redis.from_url(server.url)
        assert client.hget("region:WEST", "total_shipments") == b"9"
        assert cast(dict[str, Any], client.info("persistence"))["aof_enabled"] == 1
        client.close()
    finally:
        proc.stop()
