"""The peers the tracking job is compared with, on the same input in the same run: a plain
Python consumer (:mod:`bench.peers.plain`) and a Quix Streams application
(:mod:`bench.peers.quix`). Both run the same ``udfs`` logic and the same guarded Redis script
as the job (``flink_jobs.tracking.redis_writer.RedisTruckWriter``)."""

from __future__ import annotations

import argparse


def peer_parser(name: str) -> argparse.ArgumentParser:
    """The flags both peers take: services, topics, group and the job's tracking settings
    (what ``bench.sections.throughput.peer_args`` passes to either)."""
    p = argparse.ArgumentParser(prog=f"python -m bench.peers.{name}")
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--redis-url", required=True)
    p.add_argument("--topic", default="fleet.gps")
    p.add_argument("--alerts-topic", default="fleet.alerts")
    p.add_argument("--geofence-topic", default="fleet.geofence-events")
    p.add_argument("--group-id", default=f"bench-{name}")
    p.add_argument("--out-of-orderness-ms", type=int, default=10_000)
    p.add_argument("--stream-maxlen", type=int, default=100_000)
    return p
