"""The tracking job's Redis writer on one redis-server and on a three-master Redis Cluster, by
the same cases (tests/integration/test_redis_writer.py's): the newest position wins, a status
change at one ts is applied once, every accepted change is one stream entry, the sweeper's index
and the sweep. On the cluster, every script runs with only its declared keys, all of one slot
(the server refuses anything else, failing the test); a crash between the cluster path's steps
and a replay converge, and a node that forgot its scripts is served again."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import redis

from flink_jobs.runtime.cluster_scripts import ClusterScripts
from flink_jobs.tracking.cluster_writer import CAS_LUA, LAST, SEEN, rev_key
from flink_jobs.tracking.redis_writer import (
    STREAM_KEY,
    SWEEP_LUA,
    TRUCK_TTL_S,
    RedisTruckWriter,
    open_truck_writer,
)
from udfs.truck_state import PositionWrite

pytestmark = pytest.mark.integration
T0 = 1_764_000_000_000


@dataclass
class Target:
    """A Redis the writer writes, a client of it, and where the writer keeps its bookkeeping."""

    url: str
    client: redis.Redis | redis.RedisCluster
    cluster: bool

    @property
    def seen(self) -> str:
        return SEEN if self.cluster else "trucks:seen"

    def revs(self, trucks: list[str]) -> set[str]:
        """The trucks with a recorded status change at an equal ts."""
        if self.cluster:
            return {t for t in trucks if self.client.exists(rev_key(t))}
        return {m.decode() for m in self.client.hkeys("trucks:rev")}


@pytest.fixture(params=["standalone", "cluster"])
def target(request: pytest.FixtureRequest) -> Iterator[Target]:
    if request.param == "cluster":
        url = request.getfixturevalue("redis_cluster_url")
        client = redis.RedisCluster.from_url(url)
        client.flushall(target_nodes=redis.RedisCluster.PRIMARIES)
        yield Target(url, client, True)
    else:
        url = request.getfixturevalue("redis_url")
        client = request.getfixturevalue("redis_client")
        yield Target(url, client, False)
    client.close()


def write(
    truck: str, ts: int, lat: float = 40.0, status: str = "MOVING", rev: int = 0
) -> PositionWrite:
    return PositionWrite(truck, ts, lat, -100.123456789, 61.25, 270.0, status, "WEST", rev)


def hash_of(client: redis.Redis | redis.RedisCluster, truck: str) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in client.hgetall(f"truck:{truck}").items()}


def geo_members(client: redis.Redis | redis.RedisCluster) -> set[str]:
    return {m.decode() for m in client.zrange("trucks:geo", 0, -1)}


def seen_scores(t: Target) -> dict[str, float]:
    return {m.decode(): s for m, s in t.client.zrange(t.seen, 0, -1, withscores=True)}


def redis_now(client: redis.Redis | redis.RedisCluster) -> int:
    return int(client.time()[0])


def stream(client: redis.Redis | redis.RedisCluster) -> list[tuple[str, int, str]]:
    return [
        (f[b"truck_id"].decode(), int(f[b"ts_ms"]), f[b"status"].decode())
        for _, f in client.xrange(STREAM_KEY)
    ]


def test_the_cluster_gets_the_cluster_writer(target: Target) -> None:
    writer = open_truck_writer(target.url)
    try:
        assert isinstance(writer, RedisTruckWriter) is not target.cluster
    finally:
        writer.close()


def test_an_older_position_never_overwrites_a_newer_one(target: Target) -> None:
    writer = open_truck_writer(target.url)
    try:
        assert writer.write_positions([write("T1", T0 + 2000, lat=40.2)]) == 1
        older_and_new = [write("T1", T0 + 1000, lat=40.1), write("T2", T0, lat=41.0)]
        assert writer.write_positions(older_and_new) == 1
        assert writer.write_positions([write("T1", T0 + 2000, lat=40.2)]) == 0  # replay
        change = write("T1", T0 + 2000, lat=40.2, status="STOPPED", rev=1)
        assert writer.write_positions([change]) == 1  # a status change at the same ts
    finally:
        writer.close()
    assert hash_of(target.client, "T1") == {
        "lat": "40.2",
        "lng": "-100.123456789",
        "speed_kph": "61.25",
        "heading": "270.0",
        "status": "STOPPED",
        "updated": str((T0 + 2000) // 1000),
        "ts_ms": str(T0 + 2000),
        "region": "WEST",
    }
    assert 3500 < target.client.ttl("truck:T1") <= 3600
    lng, lat = target.client.geopos("trucks:geo", "T2")[0]
    assert (lat, lng) == (pytest.approx(41.0, abs=1e-5), pytest.approx(-100.123456789, abs=1e-5))
    assert stream(target.client) == [
        ("T1", T0 + 2000, "MOVING"),
        ("T2", T0, "MOVING"),
        ("T1", T0 + 2000, "STOPPED"),
    ]
    assert set(seen_scores(target)) == {"T1", "T2"}


def test_a_replay_of_status_changes_at_one_ts_writes_nothing_again(target: Target) -> None:
    ping = write("T1", T0, status="MOVING")
    stopped = write("T1", T0, status="STOPPED", rev=1)
    offline = write("T1", T0, status="OFFLINE", rev=2)
    writer = open_truck_writer(target.url)
    try:
        assert writer.write_positions([ping, stopped]) == 2
        assert writer.write_positions([ping]) == 0
        assert hash_of(target.client, "T1")["status"] == "STOPPED"
        assert writer.write_positions([stopped]) == 0
        assert writer.write_positions([offline]) == 1
        assert writer.write_positions([ping, stopped, offline]) == 0
        assert writer.write_positions([write("T1", T0 + 1000, status="MOVING")]) == 1
        assert writer.write_positions([write("T1", T0 + 1000, status="STOPPED", rev=1)]) == 1
    finally:
        writer.close()
    assert [(ts, st) for _, ts, st in stream(target.client)] == [
        (T0, "MOVING"),
        (T0, "STOPPED"),
        (T0, "OFFLINE"),
        (T0 + 1000, "MOVING"),
        (T0 + 1000, "STOPPED"),
    ]
    assert hash_of(target.client, "T1")["status"] == "STOPPED"
    if target.cluster:  # the rev lives and dies with the hash
        assert 3500 < target.client.ttl(rev_key("T1")) <= 3600


def test_two_writers_racing_leave_every_truck_at_its_newest_position(target: Target) -> None:
    history = [
        write(f"T{t}", T0 + i * 1000, lat=40.0 + i * 0.001) for i in range(200) for t in range(20)
    ]

    def run(writes: list[PositionWrite]) -> None:
        writer = open_truck_writer(target.url)
        try:
            for start in range(0, len(writes), 50):
                writer.write_positions(writes[start : start + 50])
        finally:
            writer.close()

    racers = [
        threading.Thread(target=run, args=(history,)),
        threading.Thread(target=run, args=(history[::-1],)),
    ]
    for r in racers:
        r.start()
    for r in racers:
        r.join()
    for t in range(20):
        assert hash_of(target.client, f"T{t}")["ts_ms"] == str(T0 + 199_000)
        assert hash_of(target.client, f"T{t}")["lat"] == "40.199"
    last: dict[str, int] = {}
    for truck, ts, _ in stream(target.client):  # every entry is a move forward for its truck
        assert ts > last.get(truck, -1)
        last[truck] = ts


def test_a_latitude_redis_geo_cannot_hold_is_written_without_a_geo_member(target: Target) -> None:
    writer = open_truck_writer(target.url)
    try:
        assert writer.write_positions([write("T1", T0, lat=40.0), write("T2", T0, lat=40.0)]) == 2
        beyond = [write("T1", T0 + 1000, lat=89.0), write("T3", T0, lat=41.0)]
        assert writer.write_positions(beyond) == 2
    finally:
        writer.close()
    assert hash_of(target.client, "T1")["lat"] == "89.0"
    assert geo_members(target.client) == {"T2", "T3"}
    assert target.client.xlen(STREAM_KEY) == 4


def test_the_index_scores_a_truck_with_the_redis_second_of_its_latest_write(target: Target) -> None:
    writer = open_truck_writer(target.url)
    try:
        writer.write_positions([write("T1", T0)])
        assert abs(seen_scores(target)["T1"] - redis_now(target.client)) <= 1
        target.client.zadd(target.seen, {"T1": 5})
        writer.write_positions([write("T1", T0 - 1000)])  # older: ignored, but the truck lives
        assert abs(seen_scores(target)["T1"] - redis_now(target.client)) <= 1
    finally:
        writer.close()


def test_the_sweep_drops_the_trucks_whose_hash_expired_and_rescores_the_others(
    target: Target,
) -> None:
    c = target.client
    writer = open_truck_writer(target.url)
    try:
        writer.write_positions([write(t, T0) for t in ("GONE", "LIVE", "FRESH", "KEPT")])
        writer.write_positions([write(t, T0, status="STOPPED", rev=1) for t in ("GONE", "LIVE")])
        assert target.revs(["GONE", "LIVE", "FRESH", "KEPT"]) == {"GONE", "LIVE"}
        now = redis_now(c)
        c.delete("truck:GONE")  # as if its hour had passed
        c.expire("truck:LIVE", 1000)  # last written 2,600 s ago...
        c.persist("truck:KEPT")  # a hash without expiry
        old = now - TRUCK_TTL_S - 400  # ...but each scored before its last write
        c.zadd(target.seen, {"GONE": old, "LIVE": old, "KEPT": old})
        assert writer.sweep_geo() == 1
        assert geo_members(c) == {"LIVE", "FRESH", "KEPT"}
        scores = seen_scores(target)
        assert set(scores) == {"LIVE", "FRESH", "KEPT"}
        assert 0 <= scores["LIVE"] - (now - 2600) <= 2  # its last write, from its TTL
        assert abs(scores["KEPT"] - now) <= 2
        assert abs(scores["FRESH"] - now) <= 2
        if target.cluster:  # a truck's rev expires with its hash (renewed with it)
            assert 0 < c.ttl(rev_key("GONE")) <= TRUCK_TTL_S
            # the stream's record of its last entry goes with the dropped truck only
            assert {k.decode() for k in c.hkeys(LAST)} == {"LIVE", "FRESH", "KEPT"}
        else:
            assert target.revs([]) == {"LIVE"}  # a dropped truck's goes too
        assert writer.sweep_geo() == 0  # nothing is due again
    finally:
        writer.close()


def test_a_sweep_goes_on_past_its_per_call_limit(target: Target) -> None:
    writer = open_truck_writer(target.url)
    try:
        trucks = [f"T{i}" for i in range(7)]
        writer.write_positions([write(t, T0) for t in trucks])
        for t in trucks[:5]:
            target.client.delete(f"truck:{t}")
        old = redis_now(target.client) - TRUCK_TTL_S - 1
        target.client.zadd(target.seen, {t: old for t in trucks})
        assert writer.sweep_geo(limit=2) == 5
        assert geo_members(target.client) == set(trucks[5:])
        assert set(seen_scores(target)) == set(trucks[5:])
    finally:
        writer.close()


# -- the cluster path only ---------------------------------------------------------------------


@pytest.fixture
def cluster(redis_cluster_url: str) -> Iterator[redis.RedisCluster]:
    client = redis.RedisCluster.from_url(redis_cluster_url)
    client.flushall(target_nodes=redis.RedisCluster.PRIMARIES)
    yield client
    client.close()


def test_a_crash_after_the_truck_hashes_and_a_replay_converge(
    redis_cluster_url: str, cluster: redis.RedisCluster
) -> None:
    """Step 1 (the trucks' hashes) done, then the process died: the replay of the whole batch
    finds the hashes equal (answer 2), puts the trucks in `trucks:geo` and the index, and
    streams the entries the crash cut off, once; a second replay streams nothing."""
    batch = [write("T1", T0, lat=40.5), write("T2", T0, lat=41.5), write("T3", T0, lat=89.5)]
    cas = cluster.register_script(CAS_LUA)
    for w in batch:  # step 1 alone, as the writer runs it
        keys = [f"truck:{w.truck_id}", rev_key(w.truck_id)]
        args = [TRUCK_TTL_S, w.truck_id, w.ts, w.lat, w.lng, w.speed_kph, w.heading]
        assert cas(keys=keys, args=[*args, w.status, w.region, w.rev]) == 1
    assert geo_members(cluster) == set() and cluster.xlen(STREAM_KEY) == 0
    writer = open_truck_writer(redis_cluster_url)
    try:
        assert writer.write_positions(batch) == 0
        assert geo_members(cluster) == {"T1", "T2"}  # T3 is beyond what geo holds
        assert {m.decode() for m in cluster.zrange(SEEN, 0, -1)} == {"T1", "T2", "T3"}
        assert cluster.xlen(STREAM_KEY) == 3
        assert writer.write_positions(batch) == 0  # a second replay changes nothing
        assert cluster.xlen(STREAM_KEY) == 3
        assert writer.write_positions([write("T1", T0 + 1000, lat=40.6)]) == 1
    finally:
        writer.close()
    assert stream(cluster) == [
        ("T1", T0, "MOVING"),
        ("T2", T0, "MOVING"),
        ("T3", T0, "MOVING"),
        ("T1", T0 + 1000, "MOVING"),
    ]
    lng, lat = cluster.geopos("trucks:geo", "T1")[0]
    assert lat == pytest.approx(40.6, abs=1e-5)


def forget_scripts(cluster: redis.RedisCluster) -> None:
    for node in cluster.get_primaries():
        cluster.get_redis_connection(node).script_flush()


def test_a_node_that_forgot_the_scripts_is_served_again(
    redis_cluster_url: str, cluster: redis.RedisCluster
) -> None:
    """As after a node restart: every primary's scripts flushed between two batches."""
    writer = open_truck_writer(redis_cluster_url)
    try:
        trucks = [f"T{i}" for i in range(50)]  # on every node
        assert writer.write_positions([write(t, T0) for t in trucks]) == 50
        forget_scripts(cluster)
        assert writer.write_positions([write(t, T0 + 1000) for t in trucks]) == 50
        forget_scripts(cluster)
        assert writer.sweep_geo() == 0
    finally:
        writer.close()
    assert cluster.xlen(STREAM_KEY) == 100
    assert len(geo_members(cluster)) == 50


def test_a_script_reaching_beyond_its_declared_slot_is_refused(cluster: redis.RedisCluster) -> None:
    """The proof the cluster tests rely on: run as the cluster path runs its scripts, one that
    touches keys of another slot than its declared keys' fails, even where both slots are on
    one node (the standalone sweep, which reads the TTL of undeclared `truck:` keys)."""
    scripts = ClusterScripts(cluster, sweep=SWEEP_LUA)
    keys = ["{x}:geo", "{x}:seen", "{x}:rev"]  # one slot, declared
    node = cluster.get_node_from_key(keys[0])
    same_node = next(
        f"T{i}"
        for i in range(10_000)
        if cluster.get_node_from_key(f"truck:T{i}") == node
        and cluster.keyslot(f"truck:T{i}") != cluster.keyslot(keys[0])
    )
    cluster.zadd(keys[1], {same_node: 0})
    with pytest.raises(redis.ResponseError, match="same slot"):
        scripts.run([scripts.call("sweep", keys, [TRUCK_TTL_S, 10, "truck:"])])
    cluster.zadd(keys[1], {f"T{i}": 0 for i in range(20)})  # on every node
    with pytest.raises(redis.ResponseError, match="same slot|non local"):
        scripts.run([scripts.call("sweep", keys, [TRUCK_TTL_S, 100, "truck:"])])
