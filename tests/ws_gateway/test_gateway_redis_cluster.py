"""The gateway against a real three-master Redis Cluster (redis-server processes): the tracking
job's keys spread over the nodes, and a websocket client still gets its snapshot, the live
positions and the delayed list (docs/redis-cluster.md)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from wsgw_helpers import Client, routed, run, settings

from tests.integration.redis_cluster_data import cluster_client, node_port, put_truck
from udfs.contract import POSITIONS_STREAM, truck_key
from ws_gateway.redis_client import is_cluster_client
from ws_gateway.server import running

pytestmark = pytest.mark.integration

BOX = [-125.0, 40.0, -120.0, 45.0]
INSIDE = [f"C{i}" for i in range(1, 9)]  # their `truck:` hashes are on all three nodes


@pytest.fixture()
def cluster(redis_cluster_url: str) -> Iterator[redis.RedisCluster]:
    r = cluster_client(redis_cluster_url)
    yield r
    r.close()


def url_of_other_node(r: redis.RedisCluster, key: str) -> str:
    """The URL of a primary that does not hold ``key``: the gateway must find the stream."""
    port = next(int(n.port) for n in r.get_primaries() if int(n.port) != node_port(r, key))
    return f"redis://127.0.0.1:{port}/0"


def test_snapshot_live_positions_and_delays_from_a_cluster(cluster: redis.RedisCluster) -> None:
    r = cluster
    assert len({node_port(r, truck_key(t)) for t in INSIDE}) == 3  # the test means something
    for i, tid in enumerate(INSIDE):
        put_truck(r, tid, 41.0 + i * 0.3, -124.0 + i * 0.4)
    put_truck(r, "FAR", 30.0, -100.0)
    r.zadd("delays", {"shipment:S1": 2, "shipment:S2": 5})
    url = url_of_other_node(r, POSITIONS_STREAM)

    async def scenario() -> None:
        async with running(settings(url)) as gw:
            assert is_cluster_client(gw.redis) and is_cluster_client(gw._stream_redis)
            c = await Client.open(gw.port)
            await c.send({"op": "subscribe", "id": "view", "filter": {"bbox": BOX}})
            snap = await c.expect_type("snapshot", sub="view")
            assert sorted(t["truck_id"] for t in snap["trucks"]) == INSIDE
            c1 = next(t for t in snap["trucks"] if t["truck_id"] == "C1")
            assert c1["lat"] == 41.0 and c1["lng"] == -124.0 and c1["status"] == "MOVING"
            # live: read from the stream's node, whichever node the URL named
            put_truck(r, "C1", 42.5, -121.5)
            msg = await c.position_of("C1")
            assert msg["sub"] == "view" and msg["truck"]["lat"] == 42.5
            assert msg["seq"] > snap["seq"]
            put_truck(r, "FAR", 41.0, -123.0)  # enters the box
            assert (await c.position_of("FAR"))["truck"]["lng"] == -123.0
            put_truck(r, "C2", 46.0, -121.5)  # leaves
            assert (await c.position_of("C2"))["left"] is True
            # by truck id: one HMGET per hash, pipelined over the nodes
            await c.send({"op": "subscribe", "id": "ids", "filter": {"truck_ids": INSIDE + ["X"]}})
            by_id = await c.expect_type("snapshot", sub="ids")
            assert sorted(t["truck_id"] for t in by_id["trucks"]) == INSIDE
            assert {t["truck_id"]: t["lat"] for t in by_id["trucks"]}["C2"] == 46.0
            # the delayed list, and its change
            await c.send({"op": "delays"})
            d = await c.expect_type("delays")
            assert d["shipments"] == [
                {"shipment_id": "S2", "severity": 5},
                {"shipment_id": "S1", "severity": 2},
            ]
            r.zadd("delays", {"shipment:S3": 4})
            d = await c.expect_type("delays")
            assert [s["shipment_id"] for s in d["shipments"]] == ["S2", "S3", "S1"]
            await c.close()

    run(scenario())


def test_snapshot_of_more_trucks_than_one_pipeline_chunk(cluster: redis.RedisCluster) -> None:
    """2,500 trucks: the snapshot's HMGETs go in chunks of 1,000, each split by node."""
    r = cluster
    n = 2500
    pipe = r.pipeline(transaction=False)
    for i in range(n):
        tid = f"M{i:05d}"
        lat, lng = 40.5 + (i % 50) * 0.08, -124.5 + (i // 50) * 0.08
        pipe.hset(truck_key(tid), mapping={"lat": lat, "lng": lng, "status": "MOVING"})
        pipe.geoadd("trucks:geo", (lng, lat, tid))
    pipe.execute()
    last = put_truck(r, "M00000", 40.5, -124.5)

    async def scenario() -> None:
        async with running(settings(url_of_any(r))) as gw:
            c = await Client.open(gw.port)
            await c.send({"op": "subscribe", "id": "all", "filter": {"bbox": [-125, 40, -120, 45]}})
            snap = await c.expect_type("snapshot", sub="all", timeout_s=30)
            got = {t["truck_id"]: (t["lat"], t["lng"]) for t in snap["trucks"]}
            assert len(got) == n and "truncated" not in snap
            assert got["M01234"] == (40.5 + 34 * 0.08, -124.5 + 24 * 0.08)
            put_truck(r, "M01234", 41.0, -122.0)
            await routed(gw, last)
            assert (await c.position_of("M01234"))["truck"]["lat"] == 41.0
            await c.close()

    run(scenario())


def url_of_any(r: redis.RedisCluster) -> str:
    node = r.get_primaries()[0]
    return f"redis://127.0.0.1:{node.port}/0"
