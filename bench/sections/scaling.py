"""Measure 7: how throughput and memory grow with the fleet: the tracking job (at the best
parallelism of the throughput section) on the same number of pings from 10,000, 100,000 and
1,000,000 trucks. The run at the throughput section's size is reused, not repeated.

Keys: ``runs`` (rows of :func:`bench.runs.run_consumer`), ``method``.
"""

from __future__ import annotations

from typing import Any

from bench.context import Context
from bench.sections.throughput import fleetpulse_run


def run(ctx: Context) -> dict[str, Any]:
    s = ctx.sizes
    p = int(ctx.shared.get("best_parallelism", 1))
    reuse = ctx.shared.get("best_throughput_row")
    runs: list[dict[str, Any]] = []
    for trucks in s.scaling_trucks:
        if reuse and trucks == reuse["trucks"] and reuse["pings"] == s.pings:
            runs.append({**reuse, "note": "same run as the throughput section"})
            continue
        pings = max(s.pings, trucks)
        runs.append(fleetpulse_run(ctx, ctx.dataset(trucks, pings), p, cap_s=s.scaling_time_box_s))
    return {
        "status": "ok",
        "runs": runs,
        "method": f"The tracking job at parallelism {p} (bounded) on {s.pings:,} pings "
        "(at least one per truck) from each fleet size, same generator. Job "
        "max RSS is the Python process (/usr/bin/time -v); tree peak adds its "
        "JVM (sampled from /proc); Redis used memory after the run. Truck state "
        "grows with the fleet: the job holds it as Python objects (in the JVM's "
        "process: thread mode) and as compact JSON in Flink's heap state."
        + (
            f" Runs are stopped {s.scaling_time_box_s:.0f} s after their first "
            "write (time box): such a row is `partial`, its rate taken over what "
            "it processed and its memory holding only the trucks seen by then."
            if s.scaling_time_box_s
            else ""
        ),
    }
