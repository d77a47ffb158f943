"""The tracking job's guarded Redis writes against a real redis-server: the newest position
wins whatever the order or the writer, a status correction at the same time replaces the
status, every accepted change is one stream entry, and the contract's fields are exact; the
`trucks:seen` index holds each truck's last write, and the sweep drops exactly the trucks whose
hash has expired."""

from __future__ import annotations

import threading

import pytest
import redis

from flink_jobs.tracking.redis_writer import STREAM_KEY, TRUCK_TTL_S, RedisTruckWriter
from udfs.truck_state import PositionWrite

pytestmark = pytest.mark.integration
T0 = 1_764_000_000_000


def write(
    truck: str, ts: int, lat: float = 40.0, status: str = "MOVING", rev: int = 0
) -> PositionWrite:
    return PositionWrite(truck, ts, lat, -100.123456789, 61.25, 270.0, status, "WEST", rev)


def hash_of(client: redis.Redis, truck: str) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in client.hgetall(f"truck:{truck}").items()}


def geo_members(client: redis.Redis) -> set[str]:
    return {m.decode() for m in client.zrange("trucks:geo", 0, -1)}


def seen_scores(client: redis.Redis) -> dict[str, float]:
    return {m.decode(): score for m, score in client.zrange("trucks:seen", 0, -1, withscores=True)}


def redis_now(client: redis.Redis) -> int:
    return int(client.time()[0])


def test_an_older_position_never_overwrites_a_newer_one(
    redis_url: str, redis_client: redis.Redis
) -> None:
    writer = RedisTruckWriter(redis_url)
    try:
        assert writer.write_positions([write("T1", T0 + 2000, lat=40.2)]) == 1
        assert (
            writer.write_positions(
                [
                    write("T1", T0 + 1000, lat=40.1),  # older: ignored
                    write("T2", T0, lat=41.0),
                ]
            )
            == 1
        )
        assert writer.write_positions([write("T1", T0 + 2000, lat=40.2)]) == 0  # replay
        assert (
            writer.write_positions([write("T1", T0 + 2000, lat=40.2, status="STOPPED", rev=1)]) == 1
        )  # a status change at the same ts
    finally:
        writer.close()
    assert hash_of(redis_client, "T1") == {
        "lat": "40.2",
        "lng": "-100.123456789",
        "speed_kph": "61.25",
        "heading": "270.0",
        "status": "STOPPED",
        "updated": str((T0 + 2000) // 1000),
        "ts_ms": str(T0 + 2000),
        "region": "WEST",
    }
    assert 3500 < redis_client.ttl("truck:T1") <= 3600
    lng, lat = redis_client.geopos("trucks:geo", "T2")[0]
    assert (lat, lng) == (pytest.approx(41.0, abs=1e-5), pytest.approx(-100.123456789, abs=1e-5))
    stream = [
        (f[b"truck_id"].decode(), int(f[b"ts_ms"]), f[b"status"].decode())
        for _, f in redis_client.xrange(STREAM_KEY)
    ]
    assert stream == [
        ("T1", T0 + 2000, "MOVING"),
        ("T2", T0, "MOVING"),
        ("T1", T0 + 2000, "STOPPED"),
    ]
    assert set(seen_scores(redis_client)) == {"T1", "T2"}


def test_a_replay_of_status_changes_at_one_ts_writes_nothing_again(
    redis_url: str, redis_client: redis.Redis
) -> None:
    """The writes of one ts in the truck's order (its ping's, then each status change before
    the next ping), applied, then sent again from the start as after a restart: none is
    applied twice, the hash never goes back to an older status, and a later one still is."""
    ping = write("T1", T0, status="MOVING")
    stopped = write("T1", T0, status="STOPPED", rev=1)
    offline = write("T1", T0, status="OFFLINE", rev=2)
    writer = RedisTruckWriter(redis_url)
    try:
        assert writer.write_positions([ping, stopped]) == 2
        assert writer.write_positions([ping]) == 0
        assert hash_of(redis_client, "T1")["status"] == "STOPPED"
        assert writer.write_positions([stopped]) == 0
        assert writer.write_positions([offline]) == 1
        assert writer.write_positions([ping, stopped, offline]) == 0
        assert writer.write_positions([write("T1", T0 + 1000, status="MOVING")]) == 1
        # a newer ts starts over: its first status change applies although rev 1 was seen
        assert writer.write_positions([write("T1", T0 + 1000, status="STOPPED", rev=1)]) == 1
    finally:
        writer.close()
    stream = [(int(f[b"ts_ms"]), f[b"status"].decode()) for _, f in redis_client.xrange(STREAM_KEY)]
    assert stream == [
        (T0, "MOVING"),
        (T0, "STOPPED"),
        (T0, "OFFLINE"),
        (T0 + 1000, "MOVING"),
        (T0 + 1000, "STOPPED"),
    ]
    assert hash_of(redis_client, "T1")["status"] == "STOPPED"


def test_two_writers_racing_leave_every_truck_at_its_newest_position(
    redis_url: str, redis_client: redis.Redis
) -> None:
    """Two instances write the same trucks' histories in opposite orders at once."""
    history = [
        write(f"T{t}", T0 + i * 1000, lat=40.0 + i * 0.001) for i in range(200) for t in range(20)
    ]

    def run(writes: list[PositionWrite]) -> None:
        writer = RedisTruckWriter(redis_url)
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
        assert hash_of(redis_client, f"T{t}")["ts_ms"] == str(T0 + 199_000)
        assert hash_of(redis_client, f"T{t}")["lat"] == "40.199"
    # every stream entry is a move forward for its truck
    last: dict[str, int] = {}
    for _, f in redis_client.xrange(STREAM_KEY):
        truck, ts = f[b"truck_id"].decode(), int(f[b"ts_ms"])
        assert ts > last.get(truck, -1)
        last[truck] = ts


def test_a_latitude_redis_geo_cannot_hold_is_written_without_a_geo_member(
    redis_url: str, redis_client: redis.Redis
) -> None:
    """GEOADD would refuse 89°N with an error, failing the whole batch (and the job, again at
    every replay): the truck keeps its hash and stream entry, leaves trucks:geo."""
    writer = RedisTruckWriter(redis_url)
    try:
        assert writer.write_positions([write("T1", T0, lat=40.0), write("T2", T0, lat=40.0)]) == 2
        assert (
            writer.write_positions([write("T1", T0 + 1000, lat=89.0), write("T3", T0, lat=41.0)])
            == 2
        )
    finally:
        writer.close()
    assert hash_of(redis_client, "T1")["lat"] == "89.0"
    assert geo_members(redis_client) == {"T2", "T3"}
    assert redis_client.xlen(STREAM_KEY) == 4


def test_trucks_seen_scores_a_truck_with_the_redis_second_of_its_latest_write(
    redis_url: str, redis_client: redis.Redis
) -> None:
    writer = RedisTruckWriter(redis_url)
    try:
        writer.write_positions([write("T1", T0)])
        assert abs(seen_scores(redis_client)["T1"] - redis_now(redis_client)) <= 1
        redis_client.zadd("trucks:seen", {"T1": 5})
        writer.write_positions([write("T1", T0 - 1000)])  # older: ignored, but the truck lives
        assert abs(seen_scores(redis_client)["T1"] - redis_now(redis_client)) <= 1
    finally:
        writer.close()


def test_the_sweep_drops_the_trucks_whose_hash_expired_and_rescores_the_others(
    redis_url: str, redis_client: redis.Redis
) -> None:
    writer = RedisTruckWriter(redis_url)
    try:
        writer.write_positions([write(t, T0) for t in ("GONE", "LIVE", "FRESH", "KEPT")])
        writer.write_positions([write(t, T0, status="STOPPED", rev=1) for t in ("GONE", "LIVE")])
        assert set(redis_client.hkeys("trucks:rev")) == {b"GONE", b"LIVE"}
        now = redis_now(redis_client)
        redis_client.delete("truck:GONE")  # as if its hour had passed
        redis_client.expire("truck:LIVE", 1000)  # last written 2,600 s ago...
        redis_client.persist("truck:KEPT")  # a hash without expiry
        old = now - TRUCK_TTL_S - 400  # ...but each scored before its last write
        redis_client.zadd("trucks:seen", {"GONE": old, "LIVE": old, "KEPT": old})
        assert writer.sweep_geo() == 1
        assert geo_members(redis_client) == {"LIVE", "FRESH", "KEPT"}
        scores = seen_scores(redis_client)
        assert set(scores) == {"LIVE", "FRESH", "KEPT"}
        assert 0 <= scores["LIVE"] - (now - 2600) <= 2  # its last write, from its TTL
        assert abs(scores["KEPT"] - now) <= 2
        assert abs(scores["FRESH"] - now) <= 2
        assert redis_client.hkeys("trucks:rev") == [b"LIVE"]  # a dropped truck's goes too
        assert writer.sweep_geo() == 0  # nothing is due again
    finally:
        writer.close()


def test_a_sweep_goes_on_past_its_per_call_limit(redis_url: str, redis_client: redis.Redis) -> None:
    writer = RedisTruckWriter(redis_url)
    try:
        trucks = [f"T{i}" for i in range(7)]
        writer.write_positions([write(t, T0) for t in trucks])
        redis_client.delete(*[f"truck:{t}" for t in trucks[:5]])
        old = redis_now(redis_client) - TRUCK_TTL_S - 1
        redis_client.zadd("trucks:seen", {t: old for t in trucks})
        assert writer.sweep_geo(limit=2) == 5
        assert geo_members(redis_client) == set(trucks[5:])
        assert set(seen_scores(redis_client)) == set(trucks[5:])
    finally:
        writer.close()
