"""Benchmark: N websocket clients with different bbox filters while positions flow through
`stream:positions` at a fixed rate. Not a test: prints delivered msgs/s, latency from stream
entry to client (p50/p99), deliveries versus the exact expectation, and gateway memory per
connection.

    python -m ws_gateway.bench --clients 5000 --rate 10000 --duration 30
    python -m ws_gateway.bench --redis-url redis://127.0.0.1:6379/0 ...

The gateway runs as a subprocess (`python -m ws_gateway run`), the position producer in another
process; clients run here on one event loop. Without --redis-url a private redis-server starts.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import orjson

US = (-124.0, 25.0, -67.0, 49.0)


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def boxes(n: int, box_deg: float, seed: int) -> list[list[float]]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        x = rng.uniform(US[0], US[2] - box_deg)
        y = rng.uniform(US[1], US[3] - box_deg)
        out.append([round(x, 4), round(y, 4), round(x + box_deg, 4), round(y + box_deg, 4)])
    return out


def produce(redis_url: str, rate: int, duration_s: float, trucks: int, bxs: list[list[float]],
            result: Any, start_at: float) -> None:
    """XADD ``rate`` positions/s (stamped with the wall clock) and count exact expectations."""
    import redis

    from ws_gateway.filters import parse_bbox
    from ws_gateway.index import SubscriptionIndex

    class Box:
        __slots__ = ("envelope", "truck_ids", "f")

        def __init__(self, b: list[float]) -> None:
            self.f = parse_bbox(b)
            self.envelope = self.f.envelope
            self.truck_ids: frozenset[str] = frozenset()

        def matches(self, t: str, lat: float, lng: float) -> bool:
            return self.f.contains(lat, lng)

    index: SubscriptionIndex[Box] = SubscriptionIndex()
    for b in bxs:
        index.add(Box(b))
    r = redis.Redis.from_url(redis_url)
    rng = random.Random(1)
    pos = {f"B{i:05d}": [rng.uniform(US[1], US[3]), rng.uniform(US[0], US[2])]
           for i in range(trucks)}
    ids = list(pos)
    expected = sent = 0
    tick = 0.01
    per_tick = max(1, int(rate * tick))
    while time.time() < start_at:
        time.sleep(0.001)
    t0 = time.monotonic()
    next_t = t0
    while time.monotonic() - t0 < duration_s:
        pipe = r.pipeline(transaction=False)
        now_ms = int(time.time() * 1000)
        for _ in range(per_tick):
            tid = ids[rng.randrange(trucks)]
            p = pos[tid]
            p[0] = min(US[3], max(US[1], p[0] + rng.uniform(-0.05, 0.05)))
            p[1] = min(US[2], max(US[0], p[1] + rng.uniform(-0.05, 0.05)))
            expected += len(index.match(tid, p[0], p[1]))
            pipe.xadd("stream:positions", {"truck_id": tid, "lat": p[0], "lng": p[1],
                                           "speed_kph": 80, "heading": 90, "status": "MOVING",
                                           "ts_ms": now_ms, "region": "WEST"},
                      maxlen=200_000, approximate=True)
        pipe.execute()
        sent += per_tick
        next_t += tick
        delay = next_t - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    result.put({"sent": sent, "expected": expected, "seconds": time.monotonic() - t0})


async def run_clients(port: int, bxs: list[list[float]], duration_s: float, gw_pid: int,
                      rate: int, redis_url: str, trucks: int) -> dict[str, Any]:
    from websockets.asyncio.client import connect

    rss0 = rss_kib(gw_pid)
    conns = []
    t_conn = time.monotonic()
    for i in range(0, len(bxs), 200):  # open in waves so the accept queue keeps up
        group = await asyncio.gather(*(connect(f"ws://127.0.0.1:{port}/ws", max_queue=64,
                                               compression=None, open_timeout=60,
                                               ping_interval=None)
                                       for _ in bxs[i:i + 200]))
        conns.extend(group)
    for ws, b in zip(conns, bxs, strict=True):
        await ws.send(orjson.dumps({"op": "subscribe", "id": "v", "filter": {"bbox": b}}).decode())
    for ws in conns:
        msg = orjson.loads(await ws.recv())
        assert msg["type"] == "snapshot", msg
    connect_s = time.monotonic() - t_conn
    await asyncio.sleep(0.5)
    rss1 = rss_kib(gw_pid)
    latencies: list[int] = []
    counts = {"position": 0, "left": 0, "other": 0, "closed": 0}
    stop = asyncio.Event()

    async def reader(ws: Any) -> None:
        try:
            while not stop.is_set():
                raw = await ws.recv()
                now_ms = time.time() * 1000
                m = orjson.loads(raw)
                if m.get("type") == "position":
                    if m.get("left"):
                        counts["left"] += 1
                    else:
                        counts["position"] += 1
                        latencies.append(int(now_ms - m["truck"]["ts_ms"]))
                else:
                    counts["other"] += 1
        except Exception:  # noqa: BLE001 - closed by the gateway (lagging) or at the end
            counts["closed"] += 1

    tasks = [asyncio.create_task(reader(ws)) for ws in conns]
    result: Any = mp.get_context("spawn").Queue()
    start_at = time.time() + 1.0
    prod = mp.get_context("spawn").Process(
        target=produce, args=(redis_url, rate, duration_s, trucks, bxs, result, start_at))
    prod.start()
    t0 = time.monotonic()
    rss_peak = rss1
    while prod.is_alive():
        await asyncio.sleep(0.5)
        rss_peak = max(rss_peak, rss_kib(gw_pid))
    produced = result.get(timeout=10)
    # drain: wait until deliveries stop growing
    last = -1
    while counts["position"] != last:
        last = counts["position"]
        await asyncio.sleep(1.0)
    elapsed = time.monotonic() - t0 - 1.0
    stop.set()
    for t in tasks:
        t.cancel()
    await asyncio.gather(*(ws.close() for ws in conns), return_exceptions=True)
    latencies.sort()

    def pct(p: float) -> int:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] if latencies else -1

    return {"clients": len(bxs), "connect_and_subscribe_s": round(connect_s, 1),
            "positions_produced": produced["sent"],
            "produce_rate_per_s": round(produced["sent"] / produced["seconds"]),
            "deliveries_expected": produced["expected"], "deliveries_received": counts["position"],
            "left_messages": counts["left"], "clients_closed": counts["closed"],
            "delivered_per_s": round(counts["position"] / max(elapsed, 1e-9)),
            "latency_ms_p50": pct(0.50), "latency_ms_p99": pct(0.99), "latency_ms_max": pct(1.0),
            "gateway_rss_mib_idle": round(rss0 / 1024, 1),
            "gateway_rss_mib_connected": round(rss1 / 1024, 1),
            "gateway_rss_mib_peak": round(rss_peak / 1024, 1),
            "memory_kib_per_connection": round((rss1 - rss0) / max(1, len(bxs)), 1)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ws_gateway.bench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--redis-url", default=None)
    ap.add_argument("--clients", type=int, default=5000)
    ap.add_argument("--rate", type=int, default=10_000, help="positions per second")
    ap.add_argument("--duration", type=float, default=20.0, help="seconds of producing")
    ap.add_argument("--box-deg", type=float, default=1.0, help="side of each client's bbox")
    ap.add_argument("--trucks", type=int, default=20_000)
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args(argv)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 4 * args.clients + 1024)),
                                                hard))
    from fleetpulse.waiting import free_port, wait_until

    redis_proc = None
    tmp = tempfile.TemporaryDirectory(prefix="fleetpulse-bench-")
    redis_url = args.redis_url
    if redis_url is None:
        from fleetpulse.services.redis_server import RedisServer

        server = RedisServer(Path(tmp.name) / "redis", port=free_port(), persist=False)
        redis_proc = server.start(Path(tmp.name) / "redis.log")
        redis_url = server.url
    port = args.port or free_port()
    log = open(Path(tmp.name) / "gateway.log", "w")  # noqa: SIM115 - closed below
    gw = subprocess.Popen([sys.executable, "-m", "ws_gateway", "run", "--redis-url", redis_url,
                           "--port", str(port), "--no-auth", "--log-level", "WARNING",
                           "--max-lag-s", "10"], stdout=log, stderr=subprocess.STDOUT,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        wait_until(lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz",
                                                  timeout=1).status == 200, 60, "the gateway")
        bxs = boxes(args.clients, args.box_deg, seed=7)
        report = asyncio.run(run_clients(port, bxs, args.duration, gw.pid, args.rate,
                                         redis_url, args.trucks))
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode()
        for line in metrics.splitlines():
            if line.startswith(("fleetpulse_gateway_coalesced_total",
                                "fleetpulse_gateway_lagging_closed_total",
                                "fleetpulse_gateway_dropped_total")):
                name, value = line.split()
                report[name.removeprefix("fleetpulse_gateway_")] = float(value)
        report["command"] = "python -m ws_gateway.bench " + " ".join(sys.argv[1:])
        print(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())
    finally:
        gw.terminate()
        gw.wait(10)
        log.close()
        if redis_proc is not None:
            redis_proc.stop()
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
