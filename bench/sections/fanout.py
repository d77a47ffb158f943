"""Measure 5: websocket fan-out, with the gateway's component benchmark
(``python -m bench.gateway``) pointed at the benchmark's Redis.

It opens the clients (each a bbox of 1° x 1° somewhere in the US), XADDs positions to
`stream:positions` at a fixed rate from a separate process (stamped with the wall clock), and
reports deliveries per second, latency from the stream entry to the client, and the gateway's
memory. Keys: those of ``bench.gateway`` plus ``method``.

Two runs when the machine has two CPUs or more. The judged one gives the gateway a CPU of its
own (``--gateway-cpu``) and the load generator the others: in service the 5,000 map clients
are other machines, while here they take most of a core, and sharing the gateway's cores with
them would measure the scheduler's split between five processes rather than the gateway. The
second run, everything sharing every CPU, is reported beside it (``shared``) for reference.
"""

from __future__ import annotations

import json
import subprocess
import time
from typing import Any

from bench.context import Context
from bench.report import NOT_MEASURED
from bench.support import Bar, flink_env, python_argv
from flink_jobs.runtime.affinity import usable_cpus

METHOD = (
    "`{command}` against the benchmark's Redis: positions XADDed to `stream:positions` "
    "(not through the tracking job) so the gateway alone is measured; each client "
    "subscribes to a 1°x1° bbox; latency = arrival at the client - the wall clock stamped "
    "at XADD; delivered/s counts position frames at all clients; missing at least = expected "
    "deliveries - received - coalesced, or 0 (totals over all clients: a lower bound)."
)


def gateway_cpu_for(cpus: set[int]) -> int | None:
    """The CPU the judged run gives the gateway: the lowest usable one, when another is left
    for the load generator; None (share them all) on a single CPU."""
    return min(cpus) if len(cpus) >= 2 else None


def run(ctx: Context) -> dict[str, Any]:
    s = ctx.sizes
    own_cpu = gateway_cpu_for(set(usable_cpus()))
    data = _bench(ctx, s.fanout_duration_s, own_cpu, "fanout")
    if own_cpu is not None and data.get("status") == "ok" and s.fanout_shared_duration_s > 0:
        data["shared"] = _bench(ctx, s.fanout_shared_duration_s, None, "fanout-shared")
    return data


def _bench(ctx: Context, duration_s: float, gateway_cpu: int | None, name: str) -> dict[str, Any]:
    s = ctx.sizes
    ctx.stack.flush_redis()
    args = [
        "--clients",
        str(s.fanout_clients),
        "--rate",
        str(s.fanout_rate),
        "--duration",
        f"{duration_s:g}",
    ]
    if gateway_cpu is not None:
        args += ["--gateway-cpu", str(gateway_cpu)]
    argv = python_argv("bench.gateway", "--redis-url", ctx.stack.redis_url, *args)
    log_path = ctx.workdir / f"{name}.log"
    ctx.workdir.mkdir(parents=True, exist_ok=True)
    est = 30 + s.fanout_clients / 100 + duration_s
    where = "gateway on its own CPU" if gateway_cpu is not None else "all sharing the CPUs"
    bar = Bar(est, f"fan-out: {s.fanout_clients:,} websocket clients, {where}", "s")
    with open(log_path, "wb") as err:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=err, env=flink_env())
        t0 = time.monotonic()
        while proc.poll() is None and time.monotonic() - t0 < 900 + duration_s:
            bar.update_to(min(est, time.monotonic() - t0))
            time.sleep(0.5)
        if proc.poll() is None:
            proc.kill()
        out = proc.stdout.read() if proc.stdout else b""
        proc.wait()
    bar.close()
    try:
        data: dict[str, Any] = json.loads(out)
    except json.JSONDecodeError:
        tail = log_path.read_text(errors="replace")[-1500:]
        return {
            "status": NOT_MEASURED,
            "reason": f"bench.gateway exited {proc.returncode} without results: {tail}",
        }
    data.update(
        {
            "status": "ok",
            "method": METHOD.format(command="python -m bench.gateway " + " ".join(args)),
        }
    )
    return data
