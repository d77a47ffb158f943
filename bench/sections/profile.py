"""What limits the tracking job's throughput, as it runs by default (bundled, p=1, embedded).

Two views:

1. The Python work per ping without Flink, step by step, in one thread of this process: reading
   a ping out of the JVM's bundle (``decode_bundle``); ``parse_ping``; ``on_ping`` and
   ``advance`` (the state machine; the job detects a truck's buffered ping when its next ping
   arrives, so both run on arrival); the truck's state as JSON for the checkpoint write-back
   (``encode_truck``, counted once per ping, an upper bound: a truck is written back once per
   checkpoint it changed in); the guarded Redis script, in batches (client side and server).
2. The whole job on the throughput input, with the CPU of each of its threads (and Redis's)
   read from /proc between 25 % and 75 % of its progress (:class:`bench.threads.ThreadWindow`):
   which thread is the bottleneck, and how much of a core each uses.

Keys: ``steps`` [{step, us_per_ping, rate_per_s}], ``job`` (a row of
:func:`bench.runs.run_consumer`), ``threads`` [{process, threads, cores, us_per_ping}],
``window`` {seconds, share}, ``conclusion``.
"""

from __future__ import annotations

import time
from typing import Any

from bench.context import Context
from bench.data import generate
from bench.runs import run_consumer, run_timeout_s
from bench.sections.throughput import tracking_argv
from bench.support import log
from bench.threads import ThreadWindow

BUNDLE = 200  # pings per bundle in the micro steps (the job's vary with rate and shards)
REDIS_BATCH = 300  # positions per script call (the job's measured 195-339, docs/tracking.md)


def micro(ctx: Context, n: int, trucks: int) -> list[dict[str, Any]]:
    from flink_jobs.tracking.bundling import decode_bundle, encode_bundle
    from flink_jobs.tracking.redis_writer import RedisTruckWriter
    from flink_jobs.tracking.state_codec import encode_truck
    from udfs.geo import GeofenceIndex, default_regions
    from udfs.models import Ping
    from udfs.ping_validation import parse_ping
    from udfs.truck_state import (
        Counters,
        PositionWrite,
        TrackingConfig,
        TruckState,
        advance,
        next_wakeup,
        on_ping,
    )

    raws = [v for _, _, v, _, _ in generate(n, trucks, 4)]
    bundles = [
        encode_bundle([(0, i, r) for i, r in enumerate(raws[k : k + BUNDLE])])
        for k in range(0, len(raws), BUNDLE)
    ]
    now = int(time.time() * 1000)
    cfg, regions, fences = TrackingConfig(), default_regions(), GeofenceIndex.from_file()
    perf = time.perf_counter
    t0 = perf()
    for bundle in bundles:
        for _ in decode_bundle(bundle):
            pass
    t_bundle = perf() - t0
    t0 = perf()
    parsed = [parse_ping(r, now) for r in raws]
    t_parse = perf() - t0
    pings = [p for p in parsed if isinstance(p, Ping)]
    states: dict[str, TruckState] = {}
    counts = Counters()
    t_arrive = t_advance = 0.0
    positions: list[PositionWrite] = []
    for p in pings:
        t0 = perf()
        st = states.get(p.truck_id)
        if st is None:
            st = states[p.truck_id] = TruckState(p.truck_id)
        outs = on_ping(st, p, cfg, regions.region_of, counts)
        next_wakeup(st, cfg)
        t1 = perf()
        advance(st, p.ts, cfg, fences.containing)
        next_wakeup(st, cfg)
        t_advance += perf() - t1
        t_arrive += t1 - t0
        positions.extend(o for o in outs if isinstance(o, PositionWrite))
    t0 = perf()
    for p in pings:
        encode_truck(states[p.truck_id], None)
    t_encode = perf() - t0
    ctx.stack.flush_redis()
    writer = RedisTruckWriter(ctx.stack.redis_url)
    t0 = perf()
    for start in range(0, len(positions), REDIS_BATCH):
        writer.write_positions(positions[start : start + REDIS_BATCH])
    t_redis = perf() - t0
    writer.close()
    ctx.stack.flush_redis()
    k = len(pings)
    rows = [
        (f"decode_bundle (a ping out of the JVM's bundle of {BUNDLE})", t_bundle),
        ("parse_ping (orjson + validation)", t_parse),
        ("on_ping (arrival: dedup, speed check, upsert)", t_arrive),
        ("advance (detection of the ping before, on arrival)", t_advance),
        ("encode_truck (checkpoint write-back, counted once per ping)", t_encode),
        (f"Redis guarded script, batches of {REDIS_BATCH} (client side + server)", t_redis),
    ]
    steps: list[dict[str, Any]] = []
    total = 0.0
    for name, secs in rows:
        us = secs * 1e6 / max(1, k)
        total += us
        steps.append(
            {
                "step": name,
                "us_per_ping": round(us, 1),
                "rate_per_s": round(1e6 / us) if us else None,
            }
        )
    steps.append(
        {
            "step": "sum: the job's own work per ping in one thread",
            "us_per_ping": round(total, 1),
            "rate_per_s": round(1e6 / total) if total else None,
        }
    )
    return steps


def run(ctx: Context) -> dict[str, Any]:
    s = ctx.sizes
    log("profile: Python steps without Flink")
    steps = micro(ctx, min(s.profile_pings, 100_000), s.profile_trucks)
    ds = ctx.dataset(s.trucks, s.pings)
    log("profile: the whole tracking job, CPU by thread")
    window = ThreadWindow(others=(ctx.stack.procs["redis"].pid,))
    job = run_consumer(
        ctx.stack,
        ds,
        "fleetpulse p=1",
        tracking_argv(ctx, ds, 1),
        ctx.workdir / "profile",
        run_timeout_s(ds),
        on_progress=window,
    )
    pings_in_window = window.fraction * ds.pings
    threads = (
        [
            {**r, "us_per_ping": round(r["cores"] * window.seconds * 1e6 / pings_in_window, 1)}
            for r in window.rows
        ]
        if pings_in_window
        else []
    )
    return {
        "status": "ok" if job.get("status") == "ok" and threads else "failed",
        "reason": job.get("reason", "" if threads else "no steady-state window measured"),
        "steps": steps,
        "job": job,
        "threads": threads,
        "window": {"seconds": round(window.seconds, 1), "share": round(window.fraction, 2)},
        "conclusion": conclude(steps, job, threads),
        "pings": ds.pings,
        "trucks": ds.trucks,
        "method": f"Python steps: {min(s.profile_pings, 100_000):,} pings "
        f"({s.profile_trucks:,} trucks) of the benchmark's generator in one thread "
        "of the bench process. Threads: the default job (bundled, embedded, p=1) "
        f"on {ds.pings:,} pings from {ds.trucks:,} trucks, the CPU of each thread "
        "of its processes and of redis-server read from /proc between 25 % and "
        "75 % of its progress (`bench/threads.py`).",
    }


def conclude(
    steps: list[dict[str, Any]], job: dict[str, Any], threads: list[dict[str, Any]]
) -> str:
    """The section's reading of its numbers, in words."""
    total = steps[-1]["us_per_ping"]
    own = (
        f"Our own work, measured alone in one thread, is {total:.0f} µs per ping (at most "
        f"{1e6 / total:,.0f} pings/s)"
    )
    if job.get("status") != "ok" or not threads:
        return own + f"; the job run was not measured: {str(job.get('reason', ''))[:300]}"

    def cores(prefix: str, process: str = "java") -> float:
        return sum(
            r["cores"]
            for r in threads
            if r["process"] == process and str(r["threads"]).startswith(prefix)
        )

    truck, writer = cores("truck-state"), cores("redis-positions")
    redis = sum(r["cores"] for r in threads if r["process"] == "redis-server")
    total_cores = sum(r["cores"] for r in threads)
    return (
        own + f". The job ran at {job['rate']:,} pings/s. In its steady state its "
        f"processes and Redis used {total_cores:.2f} of the machine's cores: the truck "
        f"function's task thread {truck:.2f} and the Redis writer thread {writer:.2f}, "
        f"both Python under one interpreter lock ({truck + writer:.2f} of the one core an "
        f"interpreter can use), and redis-server {redis:.2f}. The truck thread's time "
        "includes its JVM side (records in and out of pemja, timers, state) besides the "
        "Python steps above."
    )
