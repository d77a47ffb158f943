"""The delay job's idempotent Redis writes on a Redis Cluster (docs/redis-cluster.md, "The jobs").

The standalone script counts a shipment once through its account hash and moves counts between
`region:` hashes in one call: three slots or more, which a cluster refuses. Here what a region
has counted lives next to it, in keys hash-tagged with the region key:
``{region:<R>}:counted`` (zset shipment -> writer ms of its last count) and
``{region:<R>}:hours`` (hash shipment -> the hours it contributes). A region's script adds a
shipment's count only if the member is new, removes it only if it was there, and replaces its
hours by the difference: each is idempotent on its own. The account ``delayjob:shipment:<id>``
(its own slot, ``ACCOUNT_TTL_S``) only says which region counted it and which holds its hours,
so that a moved shipment leaves the old region.

A batch (each shipment's last value of each kind wins, as applying them in order would leave):
1. the `delays` effects through the standalone script (`delays` and ``{delays}:asserted`` share
   a slot), and the accounts read, in one pipeline;
2. remove the moved shipments from their old regions, add them to the new ones;
3. write the accounts.
A crash anywhere and the replay converge: step 2 changes nothing the second time, and the
accounts still name the old regions until step 3, so the replay removes from them what is
left there.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable
from typing import get_args

import redis

from flink_jobs.delay.redis_writer import (
    _PREFIXES,
    ACCOUNT_TTL_S,
    BATCH,
    EFFECTS_LUA,
    SWEEP_LIMIT,
    SWEEP_LUA,
    encode,
)
from flink_jobs.runtime.cluster_scripts import ClusterScripts, Command
from udfs.contract import DELAYS, DELAYS_ASSERTED, delay_account_key, region_key
from udfs.contract.websocket import Region
from udfs.shipment_state import (
    DelayCleared,
    DelayScore,
    RedisEffect,
    RegionDelayHours,
    RegionShipmentCounted,
)


def counted_key(region: str) -> str:
    """``{region:<R>}:counted``: the shipments counted in ``total_shipments``, by write ms."""
    return "{" + region_key(region) + "}:counted"


def hours_key(region: str) -> str:
    """``{region:<R>}:hours``: each shipment's hours in ``total_delay_hours``."""
    return "{" + region_key(region) + "}:hours"


# KEYS: region:<R>, {region:<R>}:counted   ARGV: the writer's ms, shipment ids. Returns added.
COUNT_LUA = """
local added = 0
for i = 2, #ARGV do
  added = added + redis.call('ZADD', KEYS[2], ARGV[1], ARGV[i])
end
if added > 0 then redis.call('HINCRBY', KEYS[1], 'total_shipments', added) end
return added
"""

# KEYS: region:<R>, {region:<R>}:counted   ARGV: shipment ids. Returns removed.
UNCOUNT_LUA = """
local removed = 0
for i = 1, #ARGV do
  removed = removed + redis.call('ZREM', KEYS[2], ARGV[i])
end
if removed > 0 then redis.call('HINCRBY', KEYS[1], 'total_shipments', -removed) end
return removed
"""

# KEYS: region:<R>, {region:<R>}:hours   ARGV: (shipment, hours) pairs. Replaces each shipment's
# hours in the total (subtract the old, add the new, as the standalone script does).
HOURS_LUA = """
for i = 1, #ARGV, 2 do
  local sid, val = ARGV[i], ARGV[i + 1]
  local old = redis.call('HGET', KEYS[2], sid)
  if old ~= val then
    if old then redis.call('HINCRBYFLOAT', KEYS[1], 'total_delay_hours', -tonumber(old)) end
    if tonumber(val) ~= 0 then
      redis.call('HINCRBYFLOAT', KEYS[1], 'total_delay_hours', val)
      redis.call('HSET', KEYS[2], sid, val)
    else
      redis.call('HDEL', KEYS[2], sid)
    end
  end
end
return 1
"""

# KEYS: region:<R>, {region:<R>}:hours   ARGV: shipment ids. Takes their hours out of the total.
UNHOURS_LUA = """
for i = 1, #ARGV do
  local old = redis.call('HGET', KEYS[2], ARGV[i])
  if old then
    redis.call('HINCRBYFLOAT', KEYS[1], 'total_delay_hours', -tonumber(old))
    redis.call('HDEL', KEYS[2], ARGV[i])
  end
end
return 1
"""

KNOWN_REGIONS = (*get_args(Region), "OTHER")  # trimmed by every sweep, with those written


class ClusterDelayWriter:
    """:class:`flink_jobs.delay.redis_writer.RedisDelayWriter`'s methods, on a cluster; three
    pipelined round trips per call."""

    def __init__(self, client: redis.RedisCluster, account_ttl_s: int = ACCOUNT_TTL_S) -> None:
        self._redis = client
        self._scripts = ClusterScripts(
            client,
            effects=EFFECTS_LUA,
            sweep=SWEEP_LUA,
            count=COUNT_LUA,
            uncount=UNCOUNT_LUA,
            hours=HOURS_LUA,
            unhours=UNHOURS_LUA,
        )
        self._ttl = account_ttl_s
        self._regions: set[str] = set(KNOWN_REGIONS)

    def sweep(self, now_ms: int, cutoff_ms: int) -> tuple[int, int]:
        """Remove the `delays` members last asserted before ``cutoff_ms``; returns (members
        stamped for the first time, members removed). Also forgets the counts older than an
        account lives (their accounts have expired: the standalone writer forgets them too)."""
        keys = [DELAYS, DELAYS_ASSERTED]
        call = self._scripts.call("sweep", keys, [now_ms, cutoff_ms, SWEEP_LIMIT])
        stamped, removed = self._scripts.run([call])[0]
        forget_before = now_ms - self._ttl * 1000
        pipe = self._redis.pipeline()
        for region in sorted(self._regions):
            pipe.zremrangebyscore(counted_key(region), "-inf", f"({forget_before}")
        pipe.execute()
        return int(stamped), int(removed)

    def apply(self, effects: Iterable[RedisEffect], now_ms: int | None = None) -> int:
        """Apply in order; a score stamps its member as asserted at ``now_ms`` (default: now)."""
        items = list(effects)
        if not items:
            return 0
        now = int(time.time() * 1000) if now_ms is None else now_ms
        delays: list[str] = []
        counted: dict[str, str] = {}  # shipment -> region, the last one wins
        hours: dict[str, tuple[str, str]] = {}  # shipment -> (region, hours)
        for e in items:
            if isinstance(e, DelayScore | DelayCleared):
                delays += encode(e)
            elif isinstance(e, RegionShipmentCounted):
                counted[e.shipment_id] = e.region
            elif isinstance(e, RegionDelayHours):
                hours[e.shipment_id] = (e.region, encode(e)[3])
            else:
                raise TypeError(f"not a Redis effect: {e!r}")
        self._regions.update(counted.values())
        step1: list[Command] = [
            self._scripts.call(
                "effects",
                [DELAYS, DELAYS_ASSERTED],
                [self._ttl, *_PREFIXES, now, *delays[i : i + 4 * BATCH]],
            )
            for i in range(0, len(delays), 4 * BATCH)
        ]
        shipments = sorted(counted.keys() | hours.keys())
        step1 += [
            ("HMGET", delay_account_key(s), "counted_region", "delay_region") for s in shipments
        ]
        results = self._scripts.run(step1)
        accounts = {
            s: (_text(c), _text(h))
            for s, (c, h) in zip(shipments, results[len(results) - len(shipments) :], strict=True)
        }
        self._scripts.run(self._region_commands(counted, hours, accounts, now))
        self._scripts.run(self._account_commands(counted, hours))
        return len(items)

    def _region_commands(
        self,
        counted: dict[str, str],
        hours: dict[str, tuple[str, str]],
        accounts: dict[str, tuple[str | None, str | None]],
        now: int,
    ) -> list[Command]:
        """Step 2: the removals from old regions first, then the additions."""
        uncount: defaultdict[str, list[str]] = defaultdict(list)
        count: defaultdict[str, list[str]] = defaultdict(list)
        unhours: defaultdict[str, list[str]] = defaultdict(list)
        sethours: defaultdict[str, list[str]] = defaultdict(list)
        for sid, region in counted.items():
            old = accounts[sid][0]
            if old is not None and old != region:
                uncount[old].append(sid)
            count[region].append(sid)
        for sid, (region, value) in hours.items():
            old = accounts[sid][1]
            if old is not None and old != region:
                unhours[old].append(sid)
            sethours[region] += (sid, value)
        call = self._scripts.call
        return [
            *(call("uncount", [region_key(r), counted_key(r)], s) for r, s in uncount.items()),
            *(call("unhours", [region_key(r), hours_key(r)], s) for r, s in unhours.items()),
            *(call("count", [region_key(r), counted_key(r)], [now, *s]) for r, s in count.items()),
            *(call("hours", [region_key(r), hours_key(r)], a) for r, a in sethours.items()),
        ]

    def _account_commands(
        self, counted: dict[str, str], hours: dict[str, tuple[str, str]]
    ) -> list[Command]:
        """Step 3: each account names the regions that now hold the shipment."""
        commands: list[Command] = []
        for sid, region in counted.items():
            commands.append(("HSET", delay_account_key(sid), "counted_region", region))
        for sid, (region, value) in hours.items():
            if float(value) != 0:
                commands.append(("HSET", delay_account_key(sid), "delay_region", region))
            else:
                commands.append(("HDEL", delay_account_key(sid), "delay_region"))
        for sid in counted.keys() | hours.keys():
            commands.append(("EXPIRE", delay_account_key(sid), self._ttl))
        return commands

    def late_counts(self) -> dict[int, int]:
        """Shipments in `delays` by severity (for the metrics gauges)."""
        pipe = self._redis.pipeline()
        for sev in range(1, 6):
            pipe.zcount(DELAYS, sev, sev)
        return {sev: int(n) for sev, n in zip(range(1, 6), pipe.execute(), strict=True)}

    def close(self) -> None:
        self._redis.close()


def _text(value: bytes | str | None) -> str | None:
    return value.decode() if isinstance(value, bytes) else value
