"""Batched, guarded Redis writes of the tracking job (the job's only Redis I/O).

Positions go through one server-side script per batch: for each truck it compares ``ts_ms``
with what Redis holds and writes nothing when Redis already has a newer position, so replays
after a restart, duplicated batches and two writers racing can never move a truck backwards.
The script also touches `trucks:geo`, `stream:positions` and the `trucks:seen` index that lets
the sweeper drop geo members whose `truck:` hash has expired. Redis geo cannot hold latitudes
beyond ±85.05112878° (``GEOADD`` refuses them with an error that would fail the whole batch,
and the job again at every replay): such a position leaves the truck out of `trucks:geo`, its
hash and stream entry written.

Coordinates, speed and heading are written as the ping reported them (Python's shortest
round-trip form). Rounding them to six decimals cost the writer thread about 4.6 µs per
position (``round`` and ``repr`` per value), a tenth of the interpreter time of a ping in the
embedded job; the arguments now go to the client unformatted, and hiredis formats them in C.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from operator import attrgetter

import redis

from udfs.truck_state import PositionWrite

TRUCK_TTL_S = 3600
GEO_KEY = "trucks:geo"
STREAM_KEY = "stream:positions"
SEEN_KEY = "trucks:seen"  # zset truck_id -> wall-clock second of its last write (sweeper index)

# KEYS: geo, stream, seen, truck:<id>...   ARGV: ttl, maxlen, now_s, then 8 fields per truck.
POSITIONS_LUA = """
local ttl, maxlen, now_s = ARGV[1], ARGV[2], ARGV[3]
local written = 0
for i = 4, #KEYS do
  local a = 4 + (i - 4) * 8
  local id, ts = ARGV[a], ARGV[a + 1]
  local cur = redis.call('HMGET', KEYS[i], 'ts_ms', 'status')
  local newer = (not cur[1]) or tonumber(ts) > tonumber(cur[1])
  local restatus = cur[1] and tonumber(ts) == tonumber(cur[1]) and cur[2] ~= ARGV[a + 6]
  if newer or restatus then
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
    written = written + 1
  end
  redis.call('EXPIRE', KEYS[i], ttl)
  redis.call('ZADD', KEYS[3], now_s, id)
end
return written
"""

# KEYS: geo, seen   ARGV: cutoff_s, limit. Drops geo members whose hash has expired.
SWEEP_LUA = """
local stale = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
for _, id in ipairs(stale) do
  if redis.call('EXISTS', 'truck:' .. id) == 0 then
    redis.call('ZREM', KEYS[1], id)
  end
  redis.call('ZREM', KEYS[2], id)
end
return #stale
"""

BATCH = 400

# A write's script arguments, in ARGV order (the fields of PositionWrite, in order).
_script_args = attrgetter("truck_id", "ts", "lat", "lng", "speed_kph", "heading", "status",
                          "region")


class RedisTruckWriter:
    """One connection per operator instance; every call is one round trip per ``BATCH``."""

    def __init__(self, url: str, stream_maxlen: int = 100_000) -> None:
        self._redis = redis.Redis.from_url(url, socket_timeout=30,
                                           retry_on_timeout=True, health_check_interval=30)
        self._positions = self._redis.register_script(POSITIONS_LUA)
        self._sweep = self._redis.register_script(SWEEP_LUA)
        self._maxlen = stream_maxlen

    def write_positions(self, writes: Iterable[PositionWrite]) -> int:
        """Apply writes in order; every accepted change becomes one `stream:positions` entry."""
        items = list(writes)
        written = 0
        now_s = str(int(time.time()))
        pipe = self._redis.pipeline(transaction=False)
        for start in range(0, len(items), BATCH):
            chunk = items[start:start + BATCH]
            keys: list[str] = [GEO_KEY, STREAM_KEY, SEEN_KEY]
            args: list[str | int | float] = [TRUCK_TTL_S, self._maxlen, now_s]
            for w in chunk:
                keys.append(f"truck:{w.truck_id}")
                args += _script_args(w)
            self._positions(keys=keys, args=args, client=pipe)
        for n in pipe.execute():
            written += int(n)
        return written

    def write_region_counts(self, counts: dict[str, dict[str, int]]) -> None:
        """Absolute values (idempotent): {region: {"active_trucks": n, ...}}."""
        pipe = self._redis.pipeline(transaction=False)
        for region, fields in counts.items():
            pipe.hset(f"region:{region}", mapping=fields)  # type: ignore[arg-type]
        pipe.execute()

    def sweep_geo(self, older_than_s: int = TRUCK_TTL_S + 30, limit: int = 5000) -> int:
        cutoff = int(time.time()) - older_than_s
        return int(self._sweep(keys=[GEO_KEY, SEEN_KEY], args=[cutoff, limit]))

    def close(self) -> None:
        self._redis.close()


class SweepingPositionWriter:
    """Positions to Redis through :class:`RedisTruckWriter`, sweeping expired trucks out of
    ``trucks:geo`` at most once a minute; called with no positions when idle, to sweep. The
    writer of both modes of the tracking job (the bundled one calls it on its background
    thread, ``flink_jobs.background_writes``)."""

    SWEEP_EVERY_S = 60.0

    def __init__(self, url: str, stream_maxlen: int = 100_000) -> None:
        self.writer = RedisTruckWriter(url, stream_maxlen)
        self.last_sweep = 0.0

    def __call__(self, writes: list[PositionWrite]) -> None:
        if writes:
            self.writer.write_positions(writes)
        if time.monotonic() - self.last_sweep > self.SWEEP_EVERY_S:
            self.last_sweep = time.monotonic()
            self.writer.sweep_geo()

    def close(self) -> None:
        self.writer.close()


def region_count_fields(counts: dict[str, int]) -> dict[str, int]:
    moving, stopped = counts.get("MOVING", 0), counts.get("STOPPED", 0)
    return {"active_trucks": moving + stopped, "moving_trucks": moving, "stopped_trucks": stopped}
