"""The tracking job's position writer on one redis-server and on a local three-master Redis
Cluster (docs/redis-cluster.md, "The jobs"): positions per second through the writer class.

    python -m bench.cluster_writes [--positions 100000] [--trucks 10000] [--batch 2000]

Starts both (loopback, no persistence) under a temporary directory and stops them. The
positions arrive in batches of ``--batch``, as the job's background writer hands them over;
each truck's ts grows, so every write is applied and streamed (the costliest case).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from fleetpulse.services.redis_cluster import local_cluster
from fleetpulse.services.redis_server import RedisServer
from fleetpulse.waiting import free_port
from flink_jobs.tracking.redis_writer import open_truck_writer
from udfs.truck_state import PositionWrite

T0 = 1_764_000_000_000


def positions(n: int, trucks: int) -> list[PositionWrite]:
    return [
        PositionWrite(
            f"T{i % trucks:05d}", T0 + i, 35.0 + (i % 997) * 0.01, -100.0 + (i % 991) * 0.01,
            60.0, 90.0, "MOVING", "SOUTH",
        )
        for i in range(n)
    ]  # fmt: skip


def writes_per_s(url: str, writes: list[PositionWrite], batch: int) -> float:
    writer = open_truck_writer(url)
    try:
        start = time.perf_counter()
        written = sum(
            writer.write_positions(writes[i : i + batch]) for i in range(0, len(writes), batch)
        )
        elapsed = time.perf_counter() - start
    finally:
        writer.close()
    if written != len(writes):
        raise SystemExit(f"{written} of {len(writes)} writes applied: the benchmark is wrong")
    return len(writes) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--positions", type=int, default=100_000)
    parser.add_argument("--trucks", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=2_000)
    args = parser.parse_args()
    writes = positions(args.positions, args.trucks)
    with tempfile.TemporaryDirectory() as tmp:
        server = RedisServer(Path(tmp) / "redis", port=free_port(), persist=False)
        proc = server.start(Path(tmp) / "redis.log")
        try:
            standalone = writes_per_s(server.url, writes, args.batch)
        finally:
            proc.stop()
        with local_cluster(Path(tmp) / "cluster") as cluster:
            clustered = writes_per_s(cluster.url, writes, args.batch)
    print(f"standalone: {standalone:,.0f} writes/s")
    print(f"cluster (3 masters): {clustered:,.0f} writes/s")
    print(f"cluster / standalone: {clustered / standalone:.2f}")


if __name__ == "__main__":
    main()
