"""Batched, guarded Redis writes of the tracking job (the job's only Redis I/O).

Positions go through one server-side script per batch: for each truck it compares ``ts_ms``
with what Redis holds and writes nothing when Redis already has a newer position, nor at an
equal ``ts_ms`` unless the write is a status change numbered later (``PositionWrite.rev``) than
the last one applied there (kept in `trucks:rev`). So replays after a restart, duplicated
batches and two writers racing can never move a truck backwards or write an entry twice.
The script also touches `trucks:geo`, `stream:positions` and the `trucks:seen` index that lets
the sweeper drop geo members whose `truck:` hash has expired. Redis geo cannot hold latitudes
beyond ±85.05112878° (``GEOADD`` refuses them with an error that would fail the whole batch,
and the job again at every replay): such a position leaves the truck out of `trucks:geo`, its
hash and stream entry written.

`trucks:seen` scores each truck with the Redis clock's second of its last write, the clock its
hash expires by. The sweep, every ``SweepingPositionWriter.SWEEP_EVERY_S``, looks at the trucks
scored a TTL ago or more: a truck whose hash has expired leaves `trucks:geo` and the index; one
whose hash still exists (a score that lags its last write, or a hash someone made persistent)
is scored again with its last write, read off the hash's remaining TTL. So no member is dropped
early or kept for good, and a member outlives its hash by at most one sweep interval (the
contract allows a minute).

Coordinates, speed and heading are written as the ping reported them (Python's shortest
round-trip form), handed to the client unformatted for hiredis to format in C: rounding them
in Python (``repr(round(x, 6))``) costs about 4.6 µs per position, and the writer thread shares
the interpreter lock with the truck function, which needs about 50 µs per ping.

On a Redis Cluster these scripts cannot run (their keys span slots): :func:`open_truck_writer`,
which every writer of the job goes through, returns the per-slot writer of
:mod:`flink_jobs.tracking.cluster_writer` there (docs/redis-cluster.md, "The jobs").
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from operator import attrgetter
from typing import TYPE_CHECKING, Any

import redis

from flink_jobs.runtime.redis_client import connect, is_cluster_client
from udfs.contract import (
    POSITIONS_STREAM,
    TRUCK_PREFIX,
    TRUCK_TTL_S,
    TRUCKS_GEO,
    TRUCKS_REV,
    TRUCKS_SEEN,
    region_key,
    truck_key,
)
from udfs.truck_state import PositionWrite

if TYPE_CHECKING:
    from flink_jobs.tracking.cluster_writer import ClusterTruckWriter

STREAM_KEY = POSITIONS_STREAM  # the name the tests and tools know

# KEYS: geo, stream, seen, revs, truck:<id>...   ARGV: ttl, maxlen, then the 9 fields of a
# PositionWrite per truck. A write is applied when its ts is newer than the hash's; at an equal
# ts only a status change (rev > 0, another status) later than the last one applied at that ts,
# which `trucks:rev` records as "ts:rev".
POSITIONS_LUA = """
local ttl, maxlen = ARGV[1], ARGV[2]
local now_s = redis.call('TIME')[1]
local written = 0
for i = 5, #KEYS do
  local a = 3 + (i - 5) * 9
  local id, ts, rev = ARGV[a], ARGV[a + 1], tonumber(ARGV[a + 8])
  local cur = redis.call('HMGET', KEYS[i], 'ts_ms', 'status')
  local apply = (not cur[1]) or tonumber(ts) > tonumber(cur[1])
  if not apply and rev > 0 and tonumber(ts) == tonumber(cur[1]) and cur[2] ~= ARGV[a + 6] then
    local last = redis.call('HGET', KEYS[4], id)
    local last_rev = 0
    if last then
      local last_ts, r = string.match(last, '^(.*):(%d+)$')
      if last_ts == ts then last_rev = tonumber(r) end
    end
    apply = rev > last_rev
  end
  if apply then
    local lat, lng = ARGV[a + 2], ARGV[a + 3]
    redis.call('HSET', KEYS[i], 'lat', lat, 'lng', lng, 'speed_kph', ARGV[a + 4],
      'heading', ARGV[a + 5], 'status', ARGV[a + 6], 'updated', math.floor(tonumber(ts) / 1000),
      'ts_ms', ts, 'region', ARGV[a + 7])
    if math.abs(tonumber(lat)) <= 85.05112878 then
      redis.call('GEOADD', KEYS[1], lng, lat, id)
    else
      redis.call('ZREM', KEYS[1], id)
    end
    redis.call('XADD', KEYS[2], 'MAXLEN', '~', maxlen, '*', 'truck_id', id, 'lat', lat,
      'lng', lng, 'speed_kph', ARGV[a + 4], 'heading', ARGV[a + 5], 'status', ARGV[a + 6],
      'ts_ms', ts, 'region', ARGV[a + 7])
    if rev > 0 then
      redis.call('HSET', KEYS[4], id, ts .. ':' .. rev)
    end
    written = written + 1
  end
  redis.call('EXPIRE', KEYS[i], ttl)
  redis.call('ZADD', KEYS[3], now_s, id)
end
return written
"""

# KEYS: geo, seen, revs   ARGV: ttl, limit, the `truck:` key prefix. Of the trucks scored a TTL
# ago or more, drops those whose hash has expired (and their `trucks:rev` entry) and scores the
# others with their last write (now - ttl + remaining TTL, plus the second TTL rounds down, so
# that none is due again at once; a hash without expiry, now).
# Returns {trucks looked at, trucks dropped}.
SWEEP_LUA = """
local ttl = tonumber(ARGV[1])
local now = tonumber(redis.call('TIME')[1])
local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now - ttl, 'LIMIT', 0, ARGV[2])
local dropped = 0
for _, id in ipairs(due) do
  local left = redis.call('TTL', ARGV[3] .. id)
  if left == -2 then
    redis.call('ZREM', KEYS[1], id)
    redis.call('ZREM', KEYS[2], id)
    redis.call('HDEL', KEYS[3], id)
    dropped = dropped + 1
  else
    redis.call('ZADD', KEYS[2], left >= 0 and now - ttl + left + 1 or now, id)
  end
end
return {#due, dropped}
"""

BATCH = 400
CONNECTION: dict[str, Any] = {
    "socket_timeout": 30,
    "retry_on_timeout": True,
    "health_check_interval": 30,
}

# A write's script arguments, in ARGV order (the fields of PositionWrite, in order).
_script_args = attrgetter(
    "truck_id", "ts", "lat", "lng", "speed_kph", "heading", "status", "region", "rev"
)


class RedisTruckWriter:
    """One connection per operator instance; every call is one round trip per ``BATCH``."""

    def __init__(
        self, url: str, stream_maxlen: int = 100_000, client: redis.Redis | None = None
    ) -> None:
        self._redis = client or redis.Redis.from_url(url, **CONNECTION)
        self._positions = self._redis.register_script(POSITIONS_LUA)
        self._sweep = self._redis.register_script(SWEEP_LUA)
        self._maxlen = stream_maxlen

    def write_positions(self, writes: Iterable[PositionWrite]) -> int:
        """Apply writes in order; every accepted change becomes one `stream:positions` entry."""
        items = list(writes)
        written = 0
        pipe = self._redis.pipeline(transaction=False)
        for start in range(0, len(items), BATCH):
            chunk = items[start : start + BATCH]
            keys: list[str] = [TRUCKS_GEO, POSITIONS_STREAM, TRUCKS_SEEN, TRUCKS_REV]
            args: list[str | int | float] = [TRUCK_TTL_S, self._maxlen]
            for w in chunk:
                keys.append(truck_key(w.truck_id))
                args += _script_args(w)
            self._positions(keys=keys, args=args, client=pipe)
        for n in pipe.execute():
            written += int(n)
        return written

    def write_region_counts(self, counts: dict[str, dict[str, int]]) -> None:
        """Absolute values (idempotent): {region: {"active_trucks": n, ...}}."""
        pipe = self._redis.pipeline(transaction=False)
        for region, fields in counts.items():
            pipe.hset(region_key(region), mapping=fields)  # type: ignore[arg-type]
        pipe.execute()

    def sweep_geo(self, limit: int = 5000) -> int:
        """Drop the trucks whose hash has expired from `trucks:geo` and `trucks:seen`, ``limit``
        per script call (each blocks Redis briefly); returns how many were dropped."""
        dropped = 0
        while True:  # the due trucks not dropped are scored later, so each call finds others
            looked_at, gone = self._sweep(
                keys=[TRUCKS_GEO, TRUCKS_SEEN, TRUCKS_REV], args=[TRUCK_TTL_S, limit, TRUCK_PREFIX]
            )
            dropped += int(gone)
            if int(looked_at) < limit:
                return dropped

    def close(self) -> None:
        self._redis.close()


class SweepingPositionWriter:
    """Positions to Redis through :class:`RedisTruckWriter`, sweeping expired trucks out of
    ``trucks:geo`` at most every ``SWEEP_EVERY_S``; called with no positions when idle, to
    sweep. The writer of both modes of the tracking job (the bundled one calls it on its
    background thread, ``flink_jobs.runtime.background_writes``, which calls it idle every 10 s)."""

    SWEEP_EVERY_S = 15.0

    def __init__(self, url: str, stream_maxlen: int = 100_000) -> None:
        self.writer = open_truck_writer(url, stream_maxlen)
        self.last_sweep = 0.0

    def __call__(self, writes: list[PositionWrite]) -> None:
        if writes:
            self.writer.write_positions(writes)
        if time.monotonic() - self.last_sweep > self.SWEEP_EVERY_S:
            self.last_sweep = time.monotonic()
            self.writer.sweep_geo()

    def close(self) -> None:
        self.writer.close()


def open_truck_writer(
    url: str, stream_maxlen: int = 100_000
) -> RedisTruckWriter | ClusterTruckWriter:
    """The writer for the Redis at ``url``: :class:`RedisTruckWriter` on one server, the
    per-slot steps of :mod:`flink_jobs.tracking.cluster_writer` on a Redis Cluster (whose
    scripts cannot touch a batch of trucks at once)."""
    client = connect(url, **CONNECTION)
    if is_cluster_client(client):
        from flink_jobs.tracking.cluster_writer import ClusterTruckWriter

        return ClusterTruckWriter(client, stream_maxlen)  # type: ignore[arg-type]
    return RedisTruckWriter(url, stream_maxlen, client)  # type: ignore[arg-type]


def region_count_fields(counts: dict[str, int]) -> dict[str, int]:
    moving, stopped = counts.get("MOVING", 0), counts.get("STOPPED", 0)
    return {"active_trucks": moving + stopped, "moving_trucks": moving, "stopped_trucks": stopped}
