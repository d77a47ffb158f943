"""Writing the contract's Redis data into the test session's Redis Cluster, for the tests that
run the gateway, the exporter and the CLI against it (docs/redis-cluster.md)."""

from __future__ import annotations

import time

import redis

from udfs.contract import POSITIONS_STREAM, TRUCK_TTL_S, TRUCKS_GEO, truck_key


def cluster_client(url: str) -> redis.RedisCluster:
    """A cluster client on ``url``, every primary flushed (the cluster is the session's)."""
    r = redis.RedisCluster.from_url(url)
    r.flushall(target_nodes=redis.RedisCluster.PRIMARIES)
    return r


def node_port(r: redis.RedisCluster, key: str) -> int:
    """Port of the primary that holds ``key``'s slot."""
    return int(r.get_node_from_key(key).port)


def put_truck(
    r: redis.RedisCluster,
    truck_id: str,
    lat: float,
    lng: float,
    status: str = "MOVING",
    ts_ms: int | None = None,
) -> str:
    """One accepted position as CONTRACT.md's Redis model has it: the `truck:` hash (with its
    EXPIRE), the `trucks:geo` member and a `stream:positions` entry. The keys live on
    different nodes, so this is one pipeline per node, no MULTI. Returns the entry id."""
    ts_ms = ts_ms if ts_ms is not None else int(time.time() * 1000)
    fields = {
        "lat": lat,
        "lng": lng,
        "speed_kph": 60.0,
        "heading": 90.0,
        "status": status,
        "updated": ts_ms // 1000,
        "ts_ms": ts_ms,
        "region": "WEST",
    }
    entry = {"truck_id": truck_id, **{k: v for k, v in fields.items() if k != "updated"}}
    pipe = r.pipeline(transaction=False)
    pipe.hset(truck_key(truck_id), mapping=fields)
    pipe.expire(truck_key(truck_id), TRUCK_TTL_S)
    pipe.geoadd(TRUCKS_GEO, (lng, lat, truck_id))
    pipe.xadd(POSITIONS_STREAM, entry, maxlen=100_000, approximate=True)
    entry_id = pipe.execute()[-1]
    return entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)


def move_slot(r: redis.RedisCluster, key: str, to_port: int) -> None:
    """Give ``key``'s (empty) slot to the primary on ``to_port``, the way resharding does:
    IMPORTING on the target, MIGRATING on the owner, then the new owner on every node."""
    slot = r.keyslot(key)
    source = r.get_node_from_key(key)
    target = next(n for n in r.get_primaries() if int(n.port) == to_port)
    ids = {n.name: r.cluster_myid(n) for n in r.get_primaries()}
    if source.name == target.name:
        return
    r.execute_command("CLUSTER SETSLOT", slot, "IMPORTING", ids[source.name], target_nodes=target)
    r.execute_command("CLUSTER SETSLOT", slot, "MIGRATING", ids[target.name], target_nodes=source)
    for node in (target, source, *(n for n in r.get_primaries() if n not in (source, target))):
        r.execute_command("CLUSTER SETSLOT", slot, "NODE", ids[target.name], target_nodes=node)
    r.nodes_manager.initialize()  # the client's slot table
    assert int(r.get_node_from_key(key).port) == to_port


def default_port(url: str) -> int:
    """The node a fresh client sends keyless commands to (redis-py: the owner of slot 0)."""
    fresh = redis.RedisCluster.from_url(url)
    try:
        return int(fresh.get_default_node().port)
    finally:
        fresh.close()
