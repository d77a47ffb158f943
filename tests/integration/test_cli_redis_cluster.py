"""The commands that read Redis, pointed at a real three-master Redis Cluster by one node's URL:
`fleetpulse exporter`, `fleetpulse status` and `fleetpulse gateway run` (docs/redis-cluster.md).

Kafka is given as a port nothing listens on: these tests are about Redis, and a source that is
down is only a scrape error for the exporter and an "(unread)" line for `status`."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from fleetpulse.config import UpSettings
from fleetpulse.services.process import ManagedProcess
from fleetpulse.waiting import free_port, wait_until
from tests.integration.redis_cluster_data import (
    cluster_client,
    default_port,
    move_slot,
    node_port,
    put_truck,
)
from udfs.contract import DELAYS, POSITIONS_STREAM, delay_member, region_key, truck_key

pytestmark = pytest.mark.integration

REGIONS = ("NORTHEAST", "MIDWEST", "SOUTH", "WEST", "OTHER")


@pytest.fixture()
def cluster(redis_cluster_url: str) -> Iterator[redis.RedisCluster]:
    r = cluster_client(redis_cluster_url)
    yield r
    r.close()


def other_node_url(r: redis.RedisCluster) -> str:
    """A primary that does not hold `stream:positions`: what the user names need not be it."""
    stream_port = node_port(r, POSITIONS_STREAM)
    port = next(int(n.port) for n in r.get_primaries() if int(n.port) != stream_port)
    return f"redis://127.0.0.1:{port}/0"


def write_readings(r: redis.RedisCluster) -> None:
    """What the jobs leave for the exporter: region hashes (on several nodes), delays, and a
    newest position written two minutes ago by the clock of the stream's node."""
    assert len({node_port(r, region_key(x)) for x in REGIONS}) > 1  # the test means something
    r.hset(region_key("WEST"), mapping={"active_trucks": 3, "moving_trucks": 2,
                                        "stopped_trucks": 1, "total_shipments": 10,
                                        "total_delay_hours": 2.5})  # fmt: skip
    r.hset(region_key("NORTHEAST"), mapping={"active_trucks": 7})
    r.zadd(DELAYS, {delay_member("S1"): 1, delay_member("S2"): 1, delay_member("S3"): 4})
    stream_node = r.get_node_from_key(POSITIONS_STREAM)
    seconds, _micros = cast("tuple[int, int]", r.time(target_nodes=stream_node))
    r.xadd(POSITIONS_STREAM, {"truck_id": "T1", "ts_ms": 1}, id=f"{(seconds - 120) * 1000}-0")
    r.config_resetstat(target_nodes=redis.RedisCluster.PRIMARIES)


def time_calls(r: redis.RedisCluster) -> dict[int, int]:
    """TIME calls per primary's port since the stats were reset."""
    out = {}
    for node in r.get_primaries():
        stats = cast("dict[str, Any]", r.info("commandstats", target_nodes=node))
        out[int(node.port)] = int(stats.get("cmdstat_time", {}).get("calls", 0))
    return out


def samples(port: int) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=15).read()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text.decode())
        for s in family.samples
    }


def test_exporter_reads_regions_delays_and_position_age(
    cluster: redis.RedisCluster, tmp_path: Path
) -> None:
    r = cluster
    # keyless commands go to the client's default node: keep the stream off it, so that a
    # TIME sent there would be seen
    default = default_port(other_node_url(r))
    if node_port(r, POSITIONS_STREAM) == default:
        others = [int(n.port) for n in r.get_primaries()]
        move_slot(r, POSITIONS_STREAM, next(p for p in others if p != default))
    write_readings(r)
    port, nothing = free_port(), free_port()
    url = other_node_url(r)
    argv = [sys.executable, "-m", "fleetpulse.cli", "exporter", "--port", str(port),
            "--bootstrap", f"127.0.0.1:{nothing}", "--group", "g",
            "--redis-url", url, "--timeout", "1", "--cache-seconds", "600"]  # fmt: skip
    proc = ManagedProcess("exporter", argv, tmp_path / "exporter.log").start()
    try:

        def read() -> dict[tuple[str, frozenset[tuple[str, str]]], float] | None:
            if not proc.alive():
                pytest.fail(proc.log_tail())
            try:
                return samples(port)
            except OSError:
                return None

        s = wait_until(read, 60, "the exporter's /metrics", interval_s=0.2)

        def v(name: str, **labels: str) -> float | None:
            return s.get((name, frozenset(labels.items())))

        assert v("fleetpulse_exporter_scrape_errors_total", source="redis") == 0, proc.log_tail()
        assert v("fleetpulse_region_trucks", region="WEST", state="active") == 3
        assert v("fleetpulse_region_trucks", region="WEST", state="stopped") == 1
        assert v("fleetpulse_region_trucks", region="NORTHEAST", state="active") == 7
        assert v("fleetpulse_region_trucks", region="SOUTH", state="active") is None
        assert v("fleetpulse_region_shipments", region="WEST") == 10
        assert v("fleetpulse_region_delay_hours", region="WEST") == 2.5
        assert v("fleetpulse_delayed_shipments", severity="1") == 2
        assert v("fleetpulse_delayed_shipments", severity="4") == 1
        assert v("fleetpulse_delayed_shipments", severity="5") == 0
        age = v("fleetpulse_position_age_seconds")
        assert age is not None and 120 <= age < 3600
        # Redis's clock is that of the node holding the stream (not the node of the URL)
        calls = time_calls(r)
        stream_port = node_port(r, POSITIONS_STREAM)
        assert calls[stream_port] >= 1
        assert all(n == 0 for p, n in calls.items() if p != stream_port), calls
    finally:
        proc.stop()


def test_status_reads_the_cluster_named_in_the_state_file(
    cluster: redis.RedisCluster, tmp_path: Path
) -> None:
    """`status` of an `up` whose Redis is a cluster: the newest position's age comes from it."""
    r = cluster
    write_readings(r)
    settings = UpSettings(data_dir=tmp_path)
    settings.run_dir.mkdir(parents=True)
    state = {
        "supervisor_pid": os.getpid(),  # alive: `status` reads on
        "ready": True,
        "kafka_bootstrap": f"127.0.0.1:{free_port()}",
        "redis_url": other_node_url(r),
        "jobs": [],
        "groups": {},
        "components": {},
    }
    settings.state_file.write_text(json.dumps(state))
    done = subprocess.run(
        [sys.executable, "-m", "fleetpulse.cli", "status", "--data-dir", str(tmp_path),
         "--timeout", "5"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    out = done.stdout + done.stderr
    assert "(unread)" not in out, out
    age = re.search(r"^positions\s+newest written (\d+) s ago$", done.stdout, re.MULTILINE)
    assert age is not None and 120 <= int(age.group(1)) < 3600, out
    assert done.returncode == 0, out


def test_gateway_command_serves_a_cluster(cluster: redis.RedisCluster, tmp_path: Path) -> None:
    from websockets.asyncio.client import connect

    r = cluster
    ids = ["G1", "G2", "G3", "G4", "G5", "G6"]
    assert len({node_port(r, truck_key(t)) for t in ids}) == 3
    for i, tid in enumerate(ids):
        put_truck(r, tid, 41.0 + i * 0.5, -123.0)
    port = free_port()
    argv = [sys.executable, "-m", "fleetpulse.cli", "gateway", "run",
            "--redis-url", other_node_url(r), "--port", str(port), "--no-auth"]  # fmt: skip
    proc = ManagedProcess("gateway", argv, tmp_path / "gateway.log").start()

    def healthy() -> bool:
        if not proc.alive():
            pytest.fail(proc.log_tail())
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as resp:
                return resp.status == 200
        except OSError:
            return False

    async def scenario() -> None:
        async with connect(f"ws://127.0.0.1:{port}/ws") as ws:
            sub = {"op": "subscribe", "id": "t", "filter": {"truck_ids": ids}}
            await ws.send(json.dumps(sub))
            snap = json.loads(await ws.recv())
            assert snap["type"] == "snapshot", snap
            assert sorted(t["truck_id"] for t in snap["trucks"]) == ids
            put_truck(r, "G4", 44.0, -120.0)
            while True:
                msg = json.loads(await ws.recv())
                if msg["type"] == "position":
                    break
            assert msg["truck"]["truck_id"] == "G4" and msg["truck"]["lat"] == 44.0

    try:
        wait_until(healthy, 60, "the gateway's /healthz", interval_s=0.2)
        asyncio.run(asyncio.wait_for(scenario(), 30))
    finally:
        proc.stop()


@pytest.mark.parametrize("kind", ["server", "cluster"])
def test_a_user_without_info_gets_the_right_client(
    kind: str, redis_url: str, cluster: redis.RedisCluster
) -> None:
    """INFO is @dangerous: a least-privilege ACL user may lack it, and still needs the client
    that fits the node (`CLUSTER INFO` tells them apart then)."""
    from flink_jobs.runtime.redis_client import connect, is_cluster_client

    acl = ["ACL", "SETUSER", "fp-noinfo", "on", ">pw", "~*", "&*", "+@all", "-@dangerous"]
    if kind == "server":
        admin = redis.Redis.from_url(redis_url)
        admin.execute_command(*acl)
        admin.close()
        url = redis_url
    else:
        cluster.execute_command(*acl, target_nodes=redis.RedisCluster.PRIMARIES)
        url = other_node_url(cluster)
    url = url.replace("redis://", "redis://fp-noinfo:pw@", 1)
    with pytest.raises(redis.exceptions.NoPermissionError):
        redis.Redis.from_url(url).info("cluster")
    client = connect(url)
    try:
        assert is_cluster_client(client) == (kind == "cluster")
        client.delete(region_key("SOUTH"))  # the session's Redis: other tests wrote it
        client.hset(region_key("SOUTH"), mapping={"active_trucks": 1})
        assert client.hgetall(region_key("SOUTH")) == {b"active_trucks": b"1"}
    finally:
        client.close()
