"""What one reading of the exporter costs in Redis, with a small and a 100,000-truck fleet.

The exporter (fleetpulse/exporter) must not cost more as the fleet grows: it reads the region
hashes, ``ZCOUNT``s of ``delays``, the newest stream entry and ``TIME``, never a truck key.
This fills a private redis-server with 1,000 and then 100,000 trucks (hashes, geo members,
``delays`` members, stream entries), times 200 readings at each size, and counts the commands
each reading sends.

    python -m bench.exporter_cost
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import redis

from fleetpulse.exporter.sources import read_redis, redis_client
from fleetpulse.services.redis_server import RedisServer
from fleetpulse.waiting import free_port
from udfs.contract import POSITIONS_STREAM

REGIONS = ("NORTHEAST", "MIDWEST", "SOUTH", "WEST", "OTHER")
READINGS = 200


def fill(r: redis.Redis, start: int, stop: int) -> None:
    """Trucks ``start`` to ``stop``: what the jobs would have written for them."""
    pipe = r.pipeline(transaction=False)
    for i in range(start, stop):
        truck = f"T{i}"
        pipe.hset(f"truck:{truck}", mapping={"lat": 40.0, "lng": -100.0, "status": "MOVING"})
        pipe.geoadd("trucks:geo", (-100.0 + (i % 1000) / 1000, 40.0, truck))
        pipe.zadd("delays", {f"shipment:S{i}": 1 + i % 5})
        pipe.xadd(POSITIONS_STREAM, {"truck_id": truck}, maxlen=100_000, approximate=True)
        if i % 5000 == 0:
            pipe.execute()
    pipe.execute()


def commands_processed(r: redis.Redis) -> int:
    stats: dict[str, int] = r.info("stats")  # type: ignore[assignment]
    return int(stats["total_commands_processed"])


def measure(r: redis.Redis, url: str) -> str:
    client = redis_client(url, 3.0)
    times = []
    before = commands_processed(r)
    for _ in range(READINGS):
        t = time.perf_counter()
        read_redis(client, REGIONS)
        times.append((time.perf_counter() - t) * 1000)
    # less the INFO that read the count
    commands = (commands_processed(r) - before - 1) / READINGS
    times.sort()
    return (
        f"| {r.zcard('trucks:geo'):,} | {r.dbsize():,} | {statistics.median(times):.2f} | "
        f"{times[int(READINGS * 0.99) - 1]:.2f} | {commands:.0f} |"
    )


def main() -> None:
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        server = RedisServer(Path(tmp), port, persist=False)
        proc = server.start(Path(tmp) / "redis.log")
        try:
            r = redis.Redis(port=port)
            for region in REGIONS:
                r.hset(f"region:{region}", mapping={"total_shipments": 10, "active_trucks": 5})
            url = f"redis://127.0.0.1:{port}/0"
            print("| trucks | keys | reading p50 ms | p99 ms | Redis commands per reading |")
            print("|---|---|---|---|---|")
            fill(r, 0, 1_000)
            print(measure(r, url))
            fill(r, 1_000, 100_000)
            print(measure(r, url))
        finally:
            proc.stop()


if __name__ == "__main__":
    main()
