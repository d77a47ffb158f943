"""What limits the tracking job's throughput.

Two views on the same input:

1. The Python work per ping without Flink, step by step, in one thread of this process:
   ``parse_ping``; ``on_ping`` and ``advance`` (the state machine: the job detects a truck's
   buffered ping when its next ping arrives, so both run on arrival); a pickle round trip of
   the truck's state box (the job's ``ValueState`` of ``PICKLED_BYTE_ARRAY``, loaded and
   stored once per ping while the truck keeps reporting); a pickle round trip of the
   ``PositionWrite`` (it crosses a ``key_by`` and sits in the writer's list state); the guarded
   Redis script, in batches.
2. The job cut after each stage (:mod:`bench.jobs.stages`) at parallelism 1: Kafka source
   keyed in the JVM + validation alone; + the rest of ``TruckFunction``; the whole job. The
   difference between two cuts is what the added stage costs inside Flink.

Keys: ``steps`` [{step, us_per_ping, rate_per_s}], ``stages`` (rows of
:func:`bench.runs.run_consumer`), ``conclusion``.
"""

from __future__ import annotations

import pickle
import time
from typing import Any

from bench.context import Context
from bench.data import generate
from bench.runs import run_consumer, unique_group
from bench.sections.throughput import run_timeout_s, tracking_argv
from bench.support import log, python_argv


def micro(ctx: Context, n: int, trucks: int) -> list[dict[str, Any]]:
    from flink_jobs.redis_writer import RedisTruckWriter
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
    now = int(time.time() * 1000)
    cfg, regions, fences = TrackingConfig(), default_regions(), GeofenceIndex.from_file()
    perf = time.perf_counter
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
        box = [states[p.truck_id], None, None, None, None]
        pickle.loads(pickle.dumps(box))
    t_state = perf() - t0
    t0 = perf()
    for w in positions:
        pickle.loads(pickle.dumps(w))
    t_pos = perf() - t0
    ctx.stack.flush_redis()
    writer = RedisTruckWriter(ctx.stack.redis_url)
    t0 = perf()
    for start in range(0, len(positions), 2000):
        writer.write_positions(positions[start:start + 2000])
    t_redis = perf() - t0
    writer.close()
    ctx.stack.flush_redis()
    k = len(pings)
    rows = [("parse_ping (orjson + validation)", t_parse, 1),
            ("on_ping (arrival: dedup, speed check, upsert)", t_arrive, 1),
            ("advance (detection of the ping before, on arrival)", t_advance, 1),
            ("state box pickle round trip (on arrival)", t_state, 1),
            ("PositionWrite pickle round trip x2 (to the writer + list state)", t_pos, 2),
            ("Redis guarded script, batches of 2,000 (client side + server)", t_redis, 1)]
    steps: list[dict[str, Any]] = []
    total = 0.0
    for name, secs, times in rows:
        us = secs * times * 1e6 / max(1, k)
        total += us
        steps.append({"step": name, "us_per_ping": round(us, 1),
                      "rate_per_s": round(1e6 / us) if us else None})
    steps.append({"step": "sum: the job's own Python work per ping", "us_per_ping": round(total, 1),
                  "rate_per_s": round(1e6 / total) if total else None})
    return steps


def stage_argv(ctx: Context, topic: str, stage: str) -> list[str]:
    t = ctx.stack.topics
    group = unique_group(f"bench-{stage}")
    return python_argv("bench.jobs.stages", "--stage", stage, "--bootstrap",
                       ctx.stack.bootstrap, "--redis-url", ctx.stack.redis_url,
                       "--gps-topic", topic, "--alerts-topic", t.alerts, "--dlq-topic", t.dlq,
                       "--geofence-topic", t.geofence_events,
                       "--group-id", group, "--bounded",
                       "--checkpoint-dir", str(ctx.workdir / "checkpoints" / group),
                       "--parallelism", "1")


def run(ctx: Context) -> dict[str, Any]:
    s = ctx.sizes
    log("profile: Python steps without Flink")
    steps = micro(ctx, min(s.profile_pings, 100_000), s.profile_trucks)
    ds = ctx.dataset(s.profile_trucks, s.profile_pings)
    stages = []
    for stage, label in (("parse", "Flink: Kafka source, key in the JVM + validation"),
                         ("truck", "Flink: + TruckFunction's state machine")):
        log(f"profile: {label}")
        stages.append(run_consumer(ctx.stack, ds, label, stage_argv(ctx, ds.topic, stage),
                                   ctx.workdir / "profile", run_timeout_s(ds),
                                   done_key="bench:done"))
    log("profile: Flink: whole tracking job")
    stages.append(run_consumer(ctx.stack, ds, "Flink: whole job (+ Redis writer, census)",
                               tracking_argv(ctx, ds, 1), ctx.workdir / "profile",
                               run_timeout_s(ds)))
    for row in stages:
        if row.get("rate"):
            row["us_per_ping"] = round(1e6 / row["rate"], 1)
    conclusion = _conclude(steps, stages, ctx.shared.get("fleetpulse_rates", {}))
    return {"status": "ok", "steps": steps, "stages": stages, "conclusion": conclusion,
            "pings": ds.pings, "trucks": ds.trucks,
            "method": f"Python steps: {min(s.profile_pings, 100_000):,} pings of the benchmark's "
                      "input in one thread of the bench process. Flink stages: "
                      f"{ds.pings:,} pings / {ds.trucks:,} trucks preloaded, each cut of the "
                      "job run bounded at parallelism 1 (see `bench/jobs/stages.py`)."}


def _conclude(steps: list[dict[str, Any]], stages: list[dict[str, Any]],
              rates: dict[str, int]) -> str:
    total = steps[-1]["us_per_ping"]
    ok = [r for r in stages if r.get("status") == "ok" and r.get("us_per_ping")]
    if len(ok) < len(stages):
        return (f"The job's own Python work is {total:.0f} µs per ping (at most "
                f"{1e6 / total:,.0f} pings/s on one interpreter); some Flink cuts did not "
                "complete: " + "; ".join(str(r.get("reason", ""))[:200] for r in stages
                                         if r.get("status") != "ok"))
    parse, truck, full = (r["us_per_ping"] for r in ok)
    parse_py = steps[0]["us_per_ping"]
    return (f"Python work of our own: {total:.0f} µs per ping, so one interpreter could do at "
            f"most {1e6 / total:,.0f} pings/s. Inside Flink (p=1) the cuts cost {parse:.0f} µs "
            f"(source, key and validation; validation itself {parse_py:.0f} µs), "
            f"{truck:.0f} µs (+ keyed state machine: +{truck - parse:.0f} µs) and {full:.0f} µs "
            f"for the whole job (+ Redis writer and census: +{full - truck:.0f} µs). "
            "Everything beyond our own Python is the framework's per-record cost: records "
            "cross JVM<->Python (pemja) at every Python operator and are pickled between "
            "operators, keyed state is pickled on every access, and all Python operators of "
            "one TaskManager share one interpreter lock, handed between their task threads "
            "several times per record"
            + (f" (measured: parallelism 2 in the MiniCluster ran {p2 / p1:.2f}x the rate of "
               "parallelism 1)" if (p1 := rates.get("fleetpulse p=1")) and
               (p2 := rates.get("fleetpulse p=2")) else "")
            + "".join(f"; {name} ran {rate / p1:.2f}x the rate of the MiniCluster at p=1"
                      + ("" if "TaskManagers" in name else
                         " (every handoff of the lock on one core)")
                      for name, rate in rates.items()
                      if p1 and ("TaskManagers" in name or "pinned" in name))
            + ". Levers to measure next: the writer's Python call per position (a second "
            "operator call per ping) and parsing and validation in SQL (JVM).")
