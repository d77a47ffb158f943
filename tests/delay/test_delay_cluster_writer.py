"""The delay job's Redis writer on one redis-server and on a three-master Redis Cluster, by the
same cases (tests/delay/test_delay_writer.py's): replays count once, corrections replace, the
`delays` sweep. On the cluster (scripts refused any key beyond their declared slot): a moved
shipment leaves its old region, and a crash between the steps of a batch followed by its
replay leaves what one clean run leaves."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from flink_jobs.delay.cluster_writer import ClusterDelayWriter, counted_key, hours_key
from flink_jobs.delay.redis_writer import RedisDelayWriter, open_delay_writer
from flink_jobs.runtime.cluster_scripts import ClusterScripts
from udfs.shipment_state import (
    DelayCleared,
    DelayScore,
    RedisEffect,
    RegionDelayHours,
    RegionShipmentCounted,
)

pytestmark = pytest.mark.integration

Client = redis.Redis | redis.RedisCluster


def _region(client: Client, name: str) -> dict[str, float]:
    return {k.decode(): float(v) for k, v in client.hgetall(f"region:{name}").items()}


def totals(client: Client, name: str) -> tuple[int, float]:
    """A region's (total_shipments, total_delay_hours), a field not written being 0."""
    fields = _region(client, name)
    return int(fields.get("total_shipments", 0)), fields.get("total_delay_hours", 0.0)


def _cluster_client(url: str) -> redis.RedisCluster:
    client = redis.RedisCluster.from_url(url)
    client.flushall(target_nodes=redis.RedisCluster.PRIMARIES)
    return client


@pytest.fixture(params=["standalone", "cluster"])
def target(request: pytest.FixtureRequest) -> Iterator[tuple[str, Client]]:
    if request.param == "cluster":
        url = request.getfixturevalue("redis_cluster_url")
        client = _cluster_client(url)
        yield url, client
        client.close()
    else:
        yield request.getfixturevalue("redis_url"), request.getfixturevalue("redis_client")


@pytest.fixture
def cluster(redis_cluster_url: str) -> Iterator[redis.RedisCluster]:
    client = _cluster_client(redis_cluster_url)
    yield client
    client.close()


def test_the_cluster_gets_the_cluster_writer(target: tuple[str, Client]) -> None:
    url, client = target
    writer = open_delay_writer(url)
    try:
        assert isinstance(writer, RedisDelayWriter) is not isinstance(client, redis.RedisCluster)
    finally:
        writer.close()


def test_replayed_effects_count_once_and_corrections_replace(target: tuple[str, Client]) -> None:
    url, client = target
    writer = open_delay_writer(url)
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
        assert client.zrange("delays", 0, -1, withscores=True) == []
        assert _region(client, "WEST") == {"total_shipments": 2.0, "total_delay_hours": 2.5}
        writer.apply([DelayScore("S2", 4)])
        assert client.zscore("delays", "shipment:S2") == 4.0
        # A late scan corrects: S1 was only 1 h late; S2's pickup was really in the SOUTH.
        writer.apply([RegionDelayHours("WEST", "S1", 1.0), RegionShipmentCounted("SOUTH", "S2")])
        writer.apply([RegionDelayHours("WEST", "S1", 1.0)])
        assert _region(client, "WEST") == {"total_shipments": 1.0, "total_delay_hours": 1.0}
        assert _region(client, "SOUTH") == {"total_shipments": 1.0}
        writer.apply([RegionDelayHours("WEST", "S1", 0.0)])
        assert _region(client, "WEST")["total_delay_hours"] == 0.0
        assert client.ttl("delayjob:shipment:S1") > 0
    finally:
        writer.close()


def test_sweep_removes_the_members_no_shipment_reasserts(target: tuple[str, Client]) -> None:
    url, client = target
    writer = open_delay_writer(url)
    try:
        client.zadd("delays", {"shipment:OLD": 2})  # written before stamps existed
        writer.apply([DelayScore("S1", 3), DelayScore("S2", 1)], now_ms=1_000)
        writer.apply([DelayScore("S2", 2)], now_ms=5_000)  # S2 re-asserted, S1 not
        assert writer.sweep(now_ms=6_000, cutoff_ms=2_000) == (1, 1)  # OLD stamped, S1 swept
        assert client.zrange("delays", 0, -1, withscores=True) == [
            (b"shipment:OLD", 2.0),
            (b"shipment:S2", 2.0),
        ]
        assert writer.sweep(now_ms=9_000, cutoff_ms=5_500) == (0, 1)
        assert client.zrange("delays", 0, -1) == [b"shipment:OLD"]
        writer.apply([DelayCleared("OLD")], now_ms=9_000)
        assert client.zcard("delays") == 0 and client.zcard("{delays}:asserted") == 0
    finally:
        writer.close()


def test_moves_between_regions_in_one_batch_and_across_batches(target: tuple[str, Client]) -> None:
    """A batch's last value per shipment wins (as in order); hours follow their region."""
    url, client = target
    writer = open_delay_writer(url)
    try:
        writer.apply(
            [
                RegionShipmentCounted("WEST", "S1"),
                RegionShipmentCounted("SOUTH", "S1"),  # corrected in the same batch
                RegionDelayHours("WEST", "S1", 2.0),
                RegionDelayHours("SOUTH", "S1", 3.0),
                RegionShipmentCounted("WEST", "S2"),
            ]
        )
        assert totals(client, "WEST") == (1, 0.0)  # one run in order may leave a 0.0 field
        assert totals(client, "SOUTH") == (1, 3.0)
        moved = [RegionShipmentCounted("MIDWEST", "S1"), RegionDelayHours("MIDWEST", "S1", 1.5)]
        writer.apply(moved)
        writer.apply(moved)
        assert totals(client, "SOUTH") == (0, 0.0)
        assert totals(client, "MIDWEST") == (1, 1.5)
        assert totals(client, "WEST") == (1, 0.0)
    finally:
        writer.close()
    if isinstance(client, redis.RedisCluster):  # what each region holds, next to it
        assert client.zrange(counted_key("MIDWEST"), 0, -1) == [b"S1"]
        assert client.zcard(counted_key("SOUTH")) == 0
        assert client.hgetall(hours_key("MIDWEST")) == {b"S1": b"1.5"}
        assert client.hgetall("delayjob:shipment:S1") == {
            b"counted_region": b"MIDWEST",
            b"delay_region": b"MIDWEST",
        }


# -- the cluster path only ---------------------------------------------------------------------

BEFORE: list[RedisEffect] = [
    RegionShipmentCounted("WEST", "S1"),
    RegionDelayHours("WEST", "S1", 2.5),
    RegionShipmentCounted("WEST", "S2"),
    DelayScore("S2", 2),
]
BATCH: list[RedisEffect] = [
    RegionShipmentCounted("SOUTH", "S1"),  # S1's pickup was in the SOUTH after all
    RegionDelayHours("SOUTH", "S1", 1.5),
    RegionShipmentCounted("WEST", "S2"),  # a replay
    DelayCleared("S2"),
    RegionShipmentCounted("NORTHEAST", "S3"),
    DelayScore("S3", 2),
]


def picture(client: redis.RedisCluster) -> dict[str, Any]:
    return {
        "regions": {r: _region(client, r) for r in ("WEST", "SOUTH", "NORTHEAST")},
        "delays": client.zrange("delays", 0, -1, withscores=True),
    }


EXPECTED = {
    "regions": {
        "WEST": {"total_shipments": 1.0, "total_delay_hours": 0.0},
        "SOUTH": {"total_shipments": 1.0, "total_delay_hours": 1.5},
        "NORTHEAST": {"total_shipments": 1.0},
    },
    "delays": [(b"shipment:S3", 2.0)],
}


class Crash(Exception):
    pass


def crashing_after(commands_sent: Callable[[int, list[Any]], list[Any] | None]) -> Any:
    """A ``ClusterScripts.run`` that asks ``commands_sent(call number, commands)`` what to send
    of each call; None sends all, a list sends those and then dies (raises Crash)."""
    real = ClusterScripts.run
    calls = [0]

    def run(self: ClusterScripts, commands: list[Any]) -> list[Any]:
        calls[0] += 1
        part = commands_sent(calls[0], commands)
        if part is None:
            return real(self, commands)
        real(self, part)
        raise Crash

    return run


@pytest.mark.parametrize(
    "crash",
    [
        "after-step-1",  # `delays` written, accounts read
        "mid-step-2",  # the removals from the old regions sent, not the additions
        "after-step-2",  # the regions written, not the accounts
        "mid-step-3",  # half the accounts written
    ],
)
def test_a_crash_between_the_steps_and_a_replay_converge(
    redis_cluster_url: str, cluster: redis.RedisCluster, crash: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer = open_delay_writer(redis_cluster_url)
    assert isinstance(writer, ClusterDelayWriter)
    try:
        writer.apply(BEFORE)
        scripts = writer._scripts
        removals = {scripts.sha["uncount"], scripts.sha["unhours"]}

        def commands_sent(call: int, commands: list[Any]) -> list[Any] | None:
            if crash == "after-step-1" and call == 1:
                return commands
            if crash == "mid-step-2" and call == 2:
                return [c for c in commands if c[0] == "EVALSHA" and c[1] in removals]
            if crash == "after-step-2" and call == 2:
                return commands
            if crash == "mid-step-3" and call == 3:
                return commands[: len(commands) // 2]
            return None

        with monkeypatch.context() as m:
            m.setattr(ClusterScripts, "run", crashing_after(commands_sent))
            with pytest.raises(Crash):
                writer.apply(BATCH)
        writer.apply(BATCH)  # the replay
        assert picture(cluster) == EXPECTED
        writer.apply(BATCH)  # and another one
        assert picture(cluster) == EXPECTED
    finally:
        writer.close()


def test_the_sweep_forgets_counts_older_than_an_account_lives(
    redis_cluster_url: str, cluster: redis.RedisCluster
) -> None:
    writer = open_delay_writer(redis_cluster_url, account_ttl_s=10)
    try:
        writer.apply([RegionShipmentCounted("WEST", "OLD")], now_ms=1_000)
        writer.apply([RegionShipmentCounted("WEST", "NEW"), RegionShipmentCounted("XX", "N2")],
                     now_ms=8_000)  # fmt: skip
        writer.sweep(now_ms=12_000, cutoff_ms=0)  # forgets what was counted before 2 s
        assert cluster.zrange(counted_key("WEST"), 0, -1) == [b"NEW"]
        assert cluster.zrange(counted_key("XX"), 0, -1) == [b"N2"]  # a region this writer wrote
        assert _region(cluster, "WEST") == {"total_shipments": 2.0}  # the totals stay
    finally:
        writer.close()


def test_a_node_that_forgot_the_scripts_is_served_again(
    redis_cluster_url: str, cluster: redis.RedisCluster
) -> None:
    writer = open_delay_writer(redis_cluster_url)
    try:
        writer.apply(BEFORE)
        for node in cluster.get_primaries():
            cluster.get_redis_connection(node).script_flush()
        writer.apply(BATCH)
        assert picture(cluster) == EXPECTED
    finally:
        writer.close()
