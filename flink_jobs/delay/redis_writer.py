"""Idempotent Redis writes of the delay job (the job's only Redis I/O).

Every effect the shipment state machine emits is an absolute per-shipment value, and one
server-side script applies a batch of them:

* ``delays``: ``ZADD`` of the current severity or ``ZREM`` (absolute already).
* ``region:{R}`` ``total_shipments``: the script keeps, per shipment, the region it was counted
  in (hash ``delayjob:shipment:{id}`` field ``counted_region``) and increments only when that
  changes, so a replay after a restart never counts a shipment twice, and a corrected pickup
  region moves the count instead of adding one.
* ``region:{R}`` ``total_delay_hours``: the same hash keeps ``delay_region``/``delay_hours``,
  the hours the shipment contributed; a new value subtracts the old one and adds the new one.

The per-shipment hash expires after ``ACCOUNT_TTL_S`` (30 days, renewed on each write): longer
than any checkpoint a restart could go back to.

Anti-entropy of `delays` (issue 29): every shipment the job holds sends its values again every
``--alert-refresh-s`` (:func:`udfs.shipment_state.reassert`), and a score written also stamps
the member in ``{delays}:asserted`` with the writer's clock. :meth:`RedisDelayWriter.sweep`
removes the members not asserted for a few refreshes (:mod:`flink_jobs.runtime.refresh`): those
of shipments the job's state no longer holds (left by a replay down another path, or by an
older state). A member with no stamp (written before this) is stamped by the sweep, so it gets
the same time.

On a Redis Cluster the effects script cannot reach the accounts and regions (other slots):
:func:`open_delay_writer` returns the per-slot writer of :mod:`flink_jobs.delay.cluster_writer`
there (docs/redis-cluster.md, "The jobs").
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import redis

from flink_jobs.runtime.redis_client import connect, is_cluster_client
from udfs.contract import (
    DELAY_ACCOUNT_PREFIX,
    DELAY_MEMBER_PREFIX,
    DELAYS,
    DELAYS_ASSERTED,
    REGION_PREFIX,
)
from udfs.shipment_state import (
    DelayCleared,
    DelayScore,
    RedisEffect,
    RegionDelayHours,
    RegionShipmentCounted,
)

if TYPE_CHECKING:
    from flink_jobs.delay.cluster_writer import ClusterDelayWriter

ACCOUNT_TTL_S = 30 * 24 * 3600
BATCH = 500
CONNECTION: dict[str, Any] = {
    "socket_timeout": 30,
    "retry_on_timeout": True,
    "health_check_interval": 30,
}
SWEEP_LIMIT = 10_000  # members removed per sweep call, so one call never blocks Redis for long

# KEYS: delays, {delays}:asserted   ARGV: ttl, the key prefixes of a shipment's account hash, of
# its `delays` member and of a region hash, the writer's clock (ms), then 4 per effect: op
# (Z score, R remove, C counted, H hours), shipment, region, value
EFFECTS_LUA = """
local ttl = tonumber(ARGV[1])
local acct_prefix, member_prefix, region_prefix, now = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
for i = 6, #ARGV, 4 do
  local op, sid, region, val = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local acct = acct_prefix .. sid
  if op == 'Z' then
    redis.call('ZADD', KEYS[1], val, member_prefix .. sid)
    redis.call('ZADD', KEYS[2], now, member_prefix .. sid)
  elseif op == 'R' then
    redis.call('ZREM', KEYS[1], member_prefix .. sid)
    redis.call('ZREM', KEYS[2], member_prefix .. sid)
  elseif op == 'C' then
    local old = redis.call('HGET', acct, 'counted_region')
    if old ~= region then
      if old then redis.call('HINCRBY', region_prefix .. old, 'total_shipments', -1) end
      redis.call('HINCRBY', region_prefix .. region, 'total_shipments', 1)
      redis.call('HSET', acct, 'counted_region', region)
    end
    redis.call('EXPIRE', acct, ttl)
  elseif op == 'H' then
    local cur = redis.call('HMGET', acct, 'delay_region', 'delay_hours')
    if cur[1] ~= region or cur[2] ~= val then
      if cur[1] then
        redis.call('HINCRBYFLOAT', region_prefix .. cur[1], 'total_delay_hours',
          -tonumber(cur[2]))
      end
      if tonumber(val) ~= 0 then
        redis.call('HINCRBYFLOAT', region_prefix .. region, 'total_delay_hours', val)
        redis.call('HSET', acct, 'delay_region', region, 'delay_hours', val)
      else
        redis.call('HDEL', acct, 'delay_region', 'delay_hours')
      end
    end
    redis.call('EXPIRE', acct, ttl)
  end
end
return 1
"""

_PREFIXES = (DELAY_ACCOUNT_PREFIX, DELAY_MEMBER_PREFIX, REGION_PREFIX)  # ARGV 2-4 of the script

# KEYS: delays, {delays}:asserted   ARGV: the writer's clock (ms), the cutoff (ms), the limit.
# Returns {members stamped for the first time, members removed}.
SWEEP_LUA = """
local unstamped = redis.call('ZDIFF', 2, KEYS[1], KEYS[2])
for _, m in ipairs(unstamped) do redis.call('ZADD', KEYS[2], ARGV[1], m) end
local stale = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[2], 'LIMIT', 0, ARGV[3])
for _, m in ipairs(stale) do
  redis.call('ZREM', KEYS[1], m)
  redis.call('ZREM', KEYS[2], m)
end
return {#unstamped, #stale}
"""


def encode(effect: RedisEffect) -> list[str]:
    """Four script arguments for one effect."""
    if isinstance(effect, DelayScore):
        return ["Z", effect.shipment_id, "", str(effect.severity)]
    if isinstance(effect, DelayCleared):
        return ["R", effect.shipment_id, "", ""]
    if isinstance(effect, RegionShipmentCounted):
        return ["C", effect.shipment_id, effect.region, ""]
    if isinstance(effect, RegionDelayHours):
        return ["H", effect.shipment_id, effect.region, repr(round(effect.hours, 6))]
    raise TypeError(f"not a Redis effect: {effect!r}")


class RedisDelayWriter:
    """One connection per operator instance; one round trip per call (``BATCH`` per script)."""

    def __init__(
        self, url: str, account_ttl_s: int = ACCOUNT_TTL_S, client: redis.Redis | None = None
    ) -> None:
        self._redis = client or redis.Redis.from_url(url, **CONNECTION)
        self._script = self._redis.register_script(EFFECTS_LUA)
        self._sweep = self._redis.register_script(SWEEP_LUA)
        self._ttl = account_ttl_s

    def sweep(self, now_ms: int, cutoff_ms: int) -> tuple[int, int]:
        """Remove the `delays` members last asserted before ``cutoff_ms``; returns (members
        stamped for the first time, members removed)."""
        keys = [DELAYS, DELAYS_ASSERTED]
        stamped, removed = self._sweep(keys=keys, args=[now_ms, cutoff_ms, SWEEP_LIMIT])
        return int(stamped), int(removed)

    def apply(self, effects: Iterable[RedisEffect], now_ms: int | None = None) -> int:
        """Apply in order (order matters per shipment: a score, then its removal); a score
        stamps its member as asserted at ``now_ms`` (default: now)."""
        items = list(effects)
        if not items:
            return 0
        now = int(time.time() * 1000) if now_ms is None else now_ms
        pipe = self._redis.pipeline(transaction=False)
        for start in range(0, len(items), BATCH):
            args: list[str | int] = [self._ttl, *_PREFIXES, now]
            for e in items[start : start + BATCH]:
                args += encode(e)
            self._script(keys=[DELAYS, DELAYS_ASSERTED], args=args, client=pipe)
        pipe.execute()
        return len(items)

    def late_counts(self) -> dict[int, int]:
        """Shipments in `delays` by severity (for the metrics gauges)."""
        pipe = self._redis.pipeline(transaction=False)
        for sev in range(1, 6):
            pipe.zcount(DELAYS, sev, sev)
        return {sev: int(n) for sev, n in zip(range(1, 6), pipe.execute(), strict=True)}

    def close(self) -> None:
        self._redis.close()


def open_delay_writer(
    url: str, account_ttl_s: int = ACCOUNT_TTL_S
) -> RedisDelayWriter | ClusterDelayWriter:
    """The writer for the Redis at ``url``: :class:`RedisDelayWriter` on one server, the
    per-slot steps of :mod:`flink_jobs.delay.cluster_writer` on a Redis Cluster (whose scripts
    cannot reach an account and two regions at once)."""
    client = connect(url, **CONNECTION)
    if is_cluster_client(client):
        from flink_jobs.delay.cluster_writer import ClusterDelayWriter

        return ClusterDelayWriter(client, account_ttl_s)  # type: ignore[arg-type]
    return RedisDelayWriter(url, account_ttl_s, client)  # type: ignore[arg-type]
