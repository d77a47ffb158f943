"""The tracking job's guarded Redis writes on a Redis Cluster (docs/redis-cluster.md, "The jobs").

A cluster runs a script on one slot only, and every key it touches must be declared: the
standalone script, which writes a whole batch of trucks, `trucks:geo` and `stream:positions`
at once, cannot run there. Here a batch takes three steps, each with the same rules as
:data:`flink_jobs.tracking.redis_writer.POSITIONS_LUA`:

1. per truck, :data:`CAS_LUA` on ``truck:<id>`` and ``{truck:<id>}:rev`` (same slot: the hash
   tag is the truck key) writes the hash if the position is newer (or a later status change at
   the same ts) and answers 1 (applied), 0 (older) or 2 (equal to what the hash holds: a
   replay). One ``EVALSHA`` per truck, pipelined and grouped by node.
2. :data:`GEO_LUA` on `trucks:geo` and ``{trucks:geo}:seen`` puts the applied and identical
   trucks at their position (absolute, so a replay converges the geo set) and scores them, and
   the older ones, in the sweeper's index.
3. :data:`STREAM_LUA` on `stream:positions` and ``{stream:positions}:last`` appends the
   applied and identical trucks, in order, each only if it is newer (ts, then status-change
   rev) than the last entry streamed for that truck, which the hash records (one script call
   rather than an ``XADD`` per truck: half the commands of a batch).

So a crash between 1 and 3 loses nothing: the replay finds the hashes written, answers 2,
repairs `trucks:geo` and streams the entries the crash cut off, once; and two writers racing
on a truck (a zombie task beside its replacement) cannot stream it backwards, as one script
could not on one server. The sweep reads the due trucks on the geo slot, their hashes' TTL
through the cluster, and settles them on the geo slot, with the semantics of
:data:`flink_jobs.tracking.redis_writer.SWEEP_LUA`; the trucks it drops leave the stream's
``last`` hash too.
"""

from __future__ import annotations

from collections.abc import Iterable

import redis

from flink_jobs.runtime.cluster_scripts import ClusterScripts
from udfs.contract import POSITIONS_STREAM, TRUCK_TTL_S, TRUCKS_GEO, region_key, truck_key
from udfs.truck_state import PositionWrite

SEEN = "{" + TRUCKS_GEO + "}:seen"  # zset truck_id -> Redis second of its last write
LAST = "{" + POSITIONS_STREAM + "}:last"  # hash truck_id -> "ts:rev" of its last stream entry


def rev_key(truck_id: str) -> str:
    """``{truck:<id>}:rev``: "ts:rev" of the truck's last status change at an equal ts."""
    return "{" + truck_key(truck_id) + "}:rev"


# KEYS: truck:<id>, {truck:<id>}:rev   ARGV: ttl, then the 9 fields of a PositionWrite.
# Returns 1 applied, 0 older, 2 equal to the hash (every field: a replay of what is there).
CAS_LUA = """
local ttl, id, ts, lat, lng = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local speed, heading, status, region, rev = ARGV[6], ARGV[7], ARGV[8], ARGV[9], tonumber(ARGV[10])
local cur = redis.call('HMGET', KEYS[1], 'ts_ms', 'status', 'lat', 'lng', 'speed_kph',
  'heading', 'region')
local apply = (not cur[1]) or tonumber(ts) > tonumber(cur[1])
if not apply and rev > 0 and tonumber(ts) == tonumber(cur[1]) and cur[2] ~= status then
  local last = redis.call('GET', KEYS[2])
  local last_rev = 0
  if last then
    local last_ts, r = string.match(last, '^(.*):(%d+)$')
    if last_ts == ts then last_rev = tonumber(r) end
  end
  apply = rev > last_rev
end
local result = 0
if apply then
  redis.call('HSET', KEYS[1], 'lat', lat, 'lng', lng, 'speed_kph', speed, 'heading', heading,
    'status', status, 'updated', math.floor(tonumber(ts) / 1000), 'ts_ms', ts, 'region', region)
  if rev > 0 then redis.call('SET', KEYS[2], ts .. ':' .. rev) end
  result = 1
elseif cur[1] == ts and cur[2] == status and cur[3] == lat and cur[4] == lng
    and cur[5] == speed and cur[6] == heading and cur[7] == region then
  result = 2
end
redis.call('EXPIRE', KEYS[1], ttl)
redis.call('EXPIRE', KEYS[2], ttl)
return result
"""

# KEYS: trucks:geo, {trucks:geo}:seen   ARGV: (id, lat, lng) per truck; an empty lat scores the
# truck in the index only (an older write: its hash's TTL was renewed, its position is not this).
GEO_LUA = """
local now_s = redis.call('TIME')[1]
for i = 1, #ARGV, 3 do
  local id, lat = ARGV[i], ARGV[i + 1]
  if lat ~= '' then
    if math.abs(tonumber(lat)) <= 85.05112878 then
      redis.call('GEOADD', KEYS[1], ARGV[i + 2], lat, id)
    else
      redis.call('ZREM', KEYS[1], id)
    end
  end
  redis.call('ZADD', KEYS[2], now_s, id)
end
return 1
"""

# KEYS: stream:positions, {stream:positions}:last   ARGV: maxlen, then per write the 8 fields of
# an entry (POSITION_FIELDS order) and its rev. Appends a write only if it is newer than the
# truck's last entry ("ts:rev" in the hash). Returns the entries appended.
STREAM_LUA = """
local appended = 0
for i = 2, #ARGV, 9 do
  local id, ts, rev = ARGV[i], tonumber(ARGV[i + 6]), tonumber(ARGV[i + 8])
  local newer = true
  local last = redis.call('HGET', KEYS[2], id)
  if last then
    local last_ts, last_rev = string.match(last, '^(.*):(%d+)$')
    last_ts, last_rev = tonumber(last_ts), tonumber(last_rev)
    newer = ts > last_ts or (ts == last_ts and rev > last_rev)
  end
  if newer then
    redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'truck_id', id, 'lat', ARGV[i + 1],
      'lng', ARGV[i + 2], 'speed_kph', ARGV[i + 3], 'heading', ARGV[i + 4],
      'status', ARGV[i + 5], 'ts_ms', ARGV[i + 6], 'region', ARGV[i + 7])
    redis.call('HSET', KEYS[2], id, ARGV[i + 6] .. ':' .. ARGV[i + 8])
    appended = appended + 1
  end
end
return appended
"""

# KEYS: trucks:geo, {trucks:geo}:seen   ARGV: ttl, limit. Returns {Redis second, due ids...}:
# the trucks scored a TTL ago or more.
DUE_LUA = """
local now = tonumber(redis.call('TIME')[1])
local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now - tonumber(ARGV[1]),
  'LIMIT', 0, ARGV[2])
table.insert(due, 1, now)
return due
"""

# KEYS: trucks:geo, {trucks:geo}:seen   ARGV: ttl, the second DUE_LUA read, then (id, TTL of its
# hash) per due truck. A truck still due (not written since) leaves the geo set and the index if
# its hash has expired, else is scored with its last write as SWEEP_LUA does. Returns the ids
# dropped.
SETTLE_LUA = """
local ttl, now = tonumber(ARGV[1]), tonumber(ARGV[2])
local dropped = {}
for i = 3, #ARGV, 2 do
  local id, left = ARGV[i], tonumber(ARGV[i + 1])
  local score = redis.call('ZSCORE', KEYS[2], id)
  if score and tonumber(score) <= now - ttl then
    if left == -2 then
      redis.call('ZREM', KEYS[1], id)
      redis.call('ZREM', KEYS[2], id)
      table.insert(dropped, id)
    else
      redis.call('ZADD', KEYS[2], left >= 0 and now - ttl + left + 1 or now, id)
    end
  end
end
return dropped
"""

CHUNK = 2_000  # positions per round of the three steps
GEO_BATCH = 500  # trucks per GEO_LUA or STREAM_LUA call (each blocks its node briefly)


class ClusterTruckWriter:
    """:class:`flink_jobs.tracking.redis_writer.RedisTruckWriter`'s methods, on a cluster;
    two pipelined round trips per ``CHUNK`` positions."""

    def __init__(self, client: redis.RedisCluster, stream_maxlen: int = 100_000) -> None:
        self._redis = client
        self._scripts = ClusterScripts(
            client, cas=CAS_LUA, geo=GEO_LUA, stream=STREAM_LUA, due=DUE_LUA, settle=SETTLE_LUA
        )
        self._maxlen = stream_maxlen

    def write_positions(self, writes: Iterable[PositionWrite]) -> int:
        """Apply writes in order; every accepted change becomes one `stream:positions` entry."""
        items = list(writes)
        written = 0
        for start in range(0, len(items), CHUNK):
            written += self._write_chunk(items[start : start + CHUNK])
        return written

    def _write_chunk(self, chunk: list[PositionWrite]) -> int:
        cas = self._scripts.call
        outcomes = self._scripts.run(
            [
                cas(
                    "cas",
                    [truck_key(w.truck_id), rev_key(w.truck_id)],
                    [
                        TRUCK_TTL_S,
                        w.truck_id,
                        w.ts,
                        w.lat,
                        w.lng,
                        w.speed_kph,
                        w.heading,
                        w.status,
                        w.region,
                        w.rev,
                    ],
                )
                for w in chunk
            ]
        )
        geo_args: list[object] = []
        entries: list[object] = []
        for w, outcome in zip(chunk, outcomes, strict=True):
            if outcome == 0:
                geo_args += (w.truck_id, "", "")
                continue
            geo_args += (w.truck_id, w.lat, w.lng)
            entries += (w.truck_id, w.lat, w.lng, w.speed_kph, w.heading, w.status, w.ts)
            entries += (w.region, w.rev)
        geo, step = [TRUCKS_GEO, SEEN], 3 * GEO_BATCH
        commands = [cas("geo", geo, geo_args[i : i + step]) for i in range(0, len(geo_args), step)]
        step = 9 * GEO_BATCH
        commands += [
            cas("stream", [POSITIONS_STREAM, LAST], [self._maxlen, *entries[i : i + step]])
            for i in range(0, len(entries), step)
        ]
        self._scripts.run(commands)
        return sum(1 for o in outcomes if o == 1)

    def write_region_counts(self, counts: dict[str, dict[str, int]]) -> None:
        """Absolute values (idempotent): {region: {"active_trucks": n, ...}}."""
        pipe = self._redis.pipeline()
        for region, fields in counts.items():
            pipe.hset(region_key(region), mapping=fields)  # type: ignore[arg-type]
        pipe.execute()

    def sweep_geo(self, limit: int = 5000) -> int:
        """Drop the trucks whose hash has expired from `trucks:geo` and its index, ``limit``
        per round; returns how many were dropped."""
        keys = [TRUCKS_GEO, SEEN]
        dropped = 0
        while True:  # the due trucks not dropped are scored later, so each round finds others
            due_call = self._scripts.call("due", keys, [TRUCK_TTL_S, limit])
            now, *due = self._scripts.run([due_call])[0]
            if not due:
                return dropped
            ids = [d.decode() if isinstance(d, bytes) else str(d) for d in due]
            pipe = self._redis.pipeline()
            for truck in ids:
                pipe.ttl(truck_key(truck))
            args: list[object] = [TRUCK_TTL_S, now]
            for truck, left in zip(ids, pipe.execute(), strict=True):
                args += (truck, left)
            gone = self._scripts.run([self._scripts.call("settle", keys, args)])[0]
            if gone:
                self._redis.hdel(LAST, *gone)
            dropped += len(gone)
            if len(due) < limit:
                return dropped

    def close(self) -> None:
        self._redis.close()
