"""Measure 5: websocket fan-out, with the gateway's own component benchmark
(``python -m ws_gateway.bench``, written with the gateway) pointed at the benchmark's Redis.

It opens the clients (each a bbox of 1° x 1° somewhere in the US), XADDs positions to
`stream:positions` at a fixed rate from a separate process (stamped with the wall clock), and
reports deliveries per second, latency from the stream entry to the client, and the gateway's
memory. Keys: those of ``ws_gateway.bench`` plus ``method``.
"""

from __future__ import annotations

import json
import subprocess
import time
from typing import Any

from bench.context import Context
from bench.report import NOT_MEASURED
from bench.support import Bar, flink_env, python_argv


def run(ctx: Context) -> dict[str, Any]:
    s = ctx.sizes
    ctx.stack.flush_redis()
    argv = python_argv("ws_gateway.bench", "--redis-url", ctx.stack.redis_url,
                       "--clients", str(s.fanout_clients), "--rate", str(s.fanout_rate),
                       "--duration", str(s.fanout_duration_s))
    log_path = ctx.workdir / "fanout.log"
    ctx.workdir.mkdir(parents=True, exist_ok=True)
    est = 30 + s.fanout_clients / 100 + s.fanout_duration_s
    bar = Bar(est, f"fan-out: {s.fanout_clients:,} websocket clients", "s")
    with open(log_path, "wb") as err:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=err, env=flink_env())
        t0 = time.monotonic()
        while proc.poll() is None and time.monotonic() - t0 < 900:
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
        return {"status": NOT_MEASURED,
                "reason": f"ws_gateway.bench exited {proc.returncode} without results: {tail}"}
    data.update({
        "status": "ok",
        "method": f"`python -m ws_gateway.bench --clients {s.fanout_clients} --rate "
                  f"{s.fanout_rate} --duration {s.fanout_duration_s:g}` against the "
                  "benchmark's Redis: positions XADDed to `stream:positions` (not through the "
                  "tracking job) so the gateway alone is measured; each client subscribes to a "
                  "1°x1° bbox; latency = arrival at the client - the wall clock stamped at "
                  "XADD; delivered/s counts position frames at all clients.",
    })
    return data
