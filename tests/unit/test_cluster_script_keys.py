"""Every Lua script the jobs run on a Redis Cluster names its keys through ``KEYS[n]`` only, and
the keys each is called with hash to one slot: the static half of the proof (the cluster tests
run the same scripts with the node refusing any other slot)."""

from __future__ import annotations

import re

import pytest
from redis.crc import key_slot

from flink_jobs.delay import cluster_writer as delay_cluster
from flink_jobs.delay.redis_writer import EFFECTS_LUA
from flink_jobs.delay.redis_writer import SWEEP_LUA as DELAYS_SWEEP_LUA
from flink_jobs.tracking import cluster_writer as tracking_cluster
from flink_jobs.tracking.redis_writer import SWEEP_LUA as STANDALONE_GEO_SWEEP
from udfs.contract import DELAYS, DELAYS_ASSERTED, TRUCKS_GEO, region_key, truck_key

pytestmark = pytest.mark.unit

CALL = re.compile(r"redis\.call\(\s*'([A-Z]+)'\s*(?:,\s*([^,)]+))?(?:,\s*([^,)]+))?")
KEYS_REF = re.compile(r"KEYS\[\d+\]")
NO_KEYS = {"TIME"}
NUMKEYS_FIRST = {"ZDIFF", "ZUNION", "ZINTER"}  # numkeys, then the keys


def undeclared(src: str) -> list[str]:
    """The ``redis.call`` of ``src`` whose key argument is not a ``KEYS[n]``."""
    bad = []
    for m in CALL.finditer(src):
        command, first, second = m.group(1), m.group(2), m.group(3)
        if command in NO_KEYS:
            continue
        key = second if command in NUMKEYS_FIRST else first
        if key is None or not KEYS_REF.fullmatch(key.strip()):
            bad.append(m.group(0))
    return bad


# The `delays` branches of the standalone effects script (the only ones the cluster path sends).
EFFECTS_ON_CLUSTER = EFFECTS_LUA.split("elseif op == 'C'")[0]

CLUSTER_SCRIPTS = {
    "tracking CAS": tracking_cluster.CAS_LUA,
    "tracking GEO": tracking_cluster.GEO_LUA,
    "tracking STREAM": tracking_cluster.STREAM_LUA,
    "tracking DUE": tracking_cluster.DUE_LUA,
    "tracking SETTLE": tracking_cluster.SETTLE_LUA,
    "delay COUNT": delay_cluster.COUNT_LUA,
    "delay UNCOUNT": delay_cluster.UNCOUNT_LUA,
    "delay HOURS": delay_cluster.HOURS_LUA,
    "delay UNHOURS": delay_cluster.UNHOURS_LUA,
    "delay EFFECTS (Z/R)": EFFECTS_ON_CLUSTER,
    "delay SWEEP": DELAYS_SWEEP_LUA,
}


@pytest.mark.parametrize("name", sorted(CLUSTER_SCRIPTS))
def test_every_key_a_cluster_script_touches_is_declared(name: str) -> None:
    src = CLUSTER_SCRIPTS[name]
    assert CALL.search(src), "the check found no call: it would prove nothing"
    assert undeclared(src) == []


def test_the_check_catches_an_undeclared_key() -> None:
    """The standalone sweep reads `truck:` keys it builds from ARGV: the check must say so."""
    assert undeclared(STANDALONE_GEO_SWEEP) == ["redis.call('TTL', ARGV[3] .. id"]
    assert undeclared(EFFECTS_LUA)  # its account and region branches


@pytest.mark.parametrize("name", ["T1", "T00042", "a.b-c_d", "Z"])
def test_a_truck_s_keys_share_its_slot(name: str) -> None:
    assert key_slot(tracking_cluster.rev_key(name).encode()) == key_slot(truck_key(name).encode())


def test_each_script_s_keys_share_a_slot() -> None:
    assert key_slot(tracking_cluster.SEEN.encode()) == key_slot(TRUCKS_GEO.encode())
    assert key_slot(tracking_cluster.LAST.encode()) == key_slot(b"stream:positions")
    assert key_slot(DELAYS_ASSERTED.encode()) == key_slot(DELAYS.encode())
    for region in ("WEST", "SOUTH", "NORTHEAST", "MIDWEST", "OTHER"):
        slot = key_slot(region_key(region).encode())
        assert key_slot(delay_cluster.counted_key(region).encode()) == slot
        assert key_slot(delay_cluster.hours_key(region).encode()) == slot
