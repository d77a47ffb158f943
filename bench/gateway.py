"""Benchmark: N websocket clients with different bbox filters while positions flow through
`stream:positions` at a fixed rate. Not a test: prints delivered msgs/s, latency from stream
entry to client (p50/p99), deliveries versus the exact expectation, the CPU each process used
and gateway memory per connection.

    python -m bench.gateway --clients 5000 --rate 10000 --duration 10
    python -m bench.gateway --redis-url redis://127.0.0.1:6379/0 ...

Four kinds of process share the machine, so that the numbers measure the gateway rather than
the load generator: the gateway (`python -m ws_gateway run`, alone on its event loop), the
position producer, ``--client-procs`` client processes and (without --redis-url) a private
redis-server. The clients are raw asyncio protocols (HTTP upgrade, then a few lines of frame
parsing per message), several times cheaper per message than a full websocket client; the
report gives each process's CPU so a saturated load generator shows.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import base64
import contextlib
import functools
import math
import multiprocessing as mp
import os
import random
import re
import resource
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from bench.support import cpu_seconds, exit_on_sigterm, rss_kib, truck_walk
from flink_jobs.runtime.affinity import pin_current_process, usable_cpus

US = (-124.0, 25.0, -67.0, 49.0)
CLK_TCK = os.sysconf("SC_CLK_TCK")


def runqueue_wait_s(pid: int) -> float:
    """Seconds the process's threads were runnable but waiting for a CPU (/proc schedstat)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError, IndexError, ValueError):
            total += int((task / "schedstat").read_text().split()[1])
    return total / 1e9


def machine_busy_s() -> float:
    """CPU seconds all cores spent busy so far (from /proc/stat), to show competing load."""
    cpu = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    ticks = [int(v) for v in cpu]
    return (sum(ticks[:8]) - ticks[3] - ticks[4]) / CLK_TCK  # minus idle and iowait


def boxes(n: int, box_deg: float, seed: int) -> list[list[float]]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        x = rng.uniform(US[0], US[2] - box_deg)
        y = rng.uniform(US[1], US[3] - box_deg)
        out.append([round(x, 4), round(y, 4), round(x + box_deg, 4), round(y + box_deg, 4)])
    return out


def produce(
    redis_url: str,
    rate: int,
    duration_s: float,
    trucks: int,
    bxs: list[list[float]],
    result: Any,
    start: Any,
) -> None:
    """XADD ``rate`` positions/s (stamped with the wall clock) and count exact expectations.

    The load generator shares the cores with the gateway, so it does as little as it can while
    the clock runs: the positions and the deliveries they should cause are worked out before
    the start (the plan is reported ready on ``result``, then the start time arrives on
    ``start``: planning a long run takes longer than any fixed lead), and each 10 ms tick only
    packs its XADDs (hiredis, in C), writes them on a plain socket and reads the replies.
    """
    import socket

    import hiredis
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
    walk = truck_walk(random.Random(1), trucks, US)
    tick = 0.01
    per_tick = max(1, int(rate * tick))
    plan: list[list[tuple[str, str, str]]] = []
    expected = 0
    for _ in range(int(round(duration_s / tick))):
        moves = []
        for _ in range(per_tick):
            tid, lat, lng = next(walk)
            expected += len(index.match(tid, lat, lng))
            moves.append((tid, repr(lat), repr(lng)))
        plan.append(moves)
    kw = redis.Redis.from_url(redis_url).connection_pool.connection_kwargs
    sock = socket.create_connection((kw.get("host", "127.0.0.1"), kw.get("port", 6379)))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    reader = hiredis.Reader()
    pack = hiredis.pack_command
    if kw.get("db"):  # the database of the URL, as the gateway's client selects it
        sock.sendall(pack(("SELECT", str(kw["db"]))))  # type: ignore[arg-type]
        while (reply := reader.gets()) is False:
            reader.feed(sock.recv(65536))
        if isinstance(reply, hiredis.ReplyError):
            raise reply
    sent = 0
    result.put("planned")
    start_at = start.get()
    while time.time() < start_at:
        time.sleep(0.001)
    cpu0 = time.process_time()
    t0 = time.monotonic()
    next_t = t0
    for moves in plan:
        now_ms = str(int(time.time() * 1000))
        sock.sendall(
            b"".join(
                pack(
                    (
                        "XADD",
                        "stream:positions",
                        "MAXLEN",
                        "~",
                        "200000",
                        "*",  # type: ignore[arg-type]
                        "truck_id",
                        tid,
                        "lat",
                        lat,
                        "lng",
                        lng,
                        "speed_kph",
                        "80",
                        "heading",
                        "90",
                        "status",
                        "MOVING",
                        "ts_ms",
                        now_ms,
                        "region",
                        "WEST",
                    )
                )
                for tid, lat, lng in moves
            )
        )
        replies = 0
        while replies < len(moves):
            reader.feed(sock.recv(65536))
            while (reply := reader.gets()) is not False:
                if isinstance(reply, hiredis.ReplyError):
                    raise reply
                replies += 1
        sent += len(moves)
        next_t += tick
        delay = next_t - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    sock.close()
    result.put(
        {
            "sent": sent,
            "expected": expected,
            "seconds": time.monotonic() - t0,
            "cpu_s": time.process_time() - cpu0,
        }
    )


# -- raw websocket clients (one asyncio protocol each) ------------------------------------
_TS_MS = re.compile(rb'"ts_ms":(\d+)')  # the truck's ts_ms, the producer's wall clock


def _masked_text_frame(payload: bytes) -> bytes:
    """A client-to-server text frame (clients must mask, RFC 6455 5.3)."""
    n = len(payload)
    head = bytes([0x81])
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + n.to_bytes(2, "big")
    else:
        head += bytes([0x80 | 127]) + n.to_bytes(8, "big")
    mask = os.urandom(4)
    key = (mask * (n // 4 + 1))[:n]
    body = (
        (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(n, "big")
        if n
        else b""
    )
    return head + mask + body


class Stats:
    def __init__(self) -> None:
        self.latencies = array.array("i")
        self.sent_ms = array.array("q")  # when each measured position was stamped
        self.position = 0
        self.left = 0
        self.other = 0
        self.closed = 0
        self.last_ms = 0.0


class RawClient(asyncio.Protocol):
    """The least a websocket client can do: upgrade, subscribe, parse frames, answer pings."""

    def __init__(
        self, stats: Stats, port: int, subscribe: bytes, ready: asyncio.Future[None]
    ) -> None:
        self.stats = stats
        self.port = port
        self.subscribe = subscribe
        self.ready = ready
        self.buf = bytearray()
        self.upgraded = False
        self.snapshot = False
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        key = base64.b64encode(os.urandom(16)).decode()
        transport.write(
            f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n"
            f"Upgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )

    def connection_lost(self, exc: Exception | None) -> None:
        self.stats.closed += 1
        if not self.ready.done():
            self.ready.set_exception(ConnectionError("closed before the snapshot"))

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        if not self.upgraded:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            if not buf.startswith(b"HTTP/1.1 101"):
                raise ConnectionError(bytes(buf[:200]).decode(errors="replace"))
            del buf[: end + 4]
            self.upgraded = True
            assert self.transport is not None
            self.transport.write(_masked_text_frame(self.subscribe))
        off, size = 0, len(buf)
        now_ms = time.time() * 1000
        st = self.stats
        while size - off >= 2:
            b0, n = buf[off], buf[off + 1] & 0x7F
            h = off + 2
            if n == 126:
                if size - off < 4:
                    break
                n = int.from_bytes(buf[h : h + 2], "big")
                h += 2
            elif n == 127:
                if size - off < 10:
                    break
                n = int.from_bytes(buf[h : h + 8], "big")
                h += 8
            if size - h < n:
                break
            off = h + n
            op = b0 & 0x0F
            if op == 1:
                # read in place (no copy, no JSON parse): the load generator shares the
                # machine with the gateway, so each message should cost it as little as can be
                if buf.startswith(b'{"type":"position"', h, off):
                    if buf.endswith(b'"left":true}', h, off):
                        st.left += 1
                    else:
                        st.position += 1
                        ts = _TS_MS.search(buf, h, off)
                        if ts is None:
                            raise ConnectionError(f"a position without ts_ms: {buf[h:off]!r}")
                        ts_ms = int(ts.group(1))
                        st.latencies.append(int(now_ms - ts_ms))
                        st.sent_ms.append(ts_ms)
                        st.last_ms = now_ms
                elif not self.snapshot and buf.startswith(b'{"type":"snapshot"', h, off):
                    self.snapshot = True
                    self.ready.set_result(None)
                else:
                    st.other += 1
            elif op == 9 and self.transport is not None:  # ping -> pong (masked)
                frame = bytearray(_masked_text_frame(bytes(buf[h:off])))
                frame[0] = 0x8A
                self.transport.write(bytes(frame))
        if off:
            del buf[:off]


def client_proc(port: int, bxs: list[list[float]], results: Any, produced: Any) -> None:
    """One client process: connect and subscribe its share, then count until deliveries stop
    growing after the producer finished."""
    asyncio.run(_client_main(port, bxs, results, produced))


async def _client_main(port: int, bxs: list[list[float]], results: Any, produced: Any) -> None:
    loop = asyncio.get_running_loop()
    stats = Stats()
    t0 = time.monotonic()
    transports = []
    for i in range(0, len(bxs), 200):  # open in waves so the accept queue keeps up
        readies = []
        for b in bxs[i : i + 200]:
            ready: asyncio.Future[None] = loop.create_future()
            sub = orjson.dumps({"op": "subscribe", "id": "v", "filter": {"bbox": b}})
            tr, _ = await loop.create_connection(
                lambda sub=sub, ready=ready: RawClient(stats, port, sub, ready),  # type: ignore[misc]
                "127.0.0.1",
                port,
            )
            transports.append(tr)
            readies.append(ready)
        await asyncio.wait_for(asyncio.gather(*readies), 120)
    results.put(("ready", len(transports), time.monotonic() - t0))
    cpu0: float | None = None
    while not produced.is_set():  # the producer starts once every client process is ready
        await asyncio.sleep(0.05)
        if cpu0 is None and stats.position:
            cpu0 = time.process_time()
    if cpu0 is None:
        cpu0 = time.process_time()
    last, stable = -1, 0
    while stable < 2:  # deliveries stopped growing for 2 s
        stable = stable + 1 if stats.position == last else 0
        last = stats.position
        await asyncio.sleep(1.0)
    cpu = time.process_time() - cpu0
    for tr in transports:
        tr.abort()
    results.put(
        (
            "done",
            {
                "position": stats.position,
                "left": stats.left,
                "other": stats.other,
                "closed": stats.closed,
                "last_ms": stats.last_ms,
                "cpu_s": cpu,
                "latencies": stats.latencies.tobytes(),
                "sent_ms": stats.sent_ms.tobytes(),
            },
        )
    )


def run_bench(
    port: int,
    bxs: list[list[float]],
    duration_s: float,
    gw_pid: int,
    rate: int,
    redis_url: str,
    trucks: int,
    client_procs: int,
    redis_pid: int | None,
    warmup_s: float = 0.0,
) -> dict[str, Any]:
    """Produce for ``warmup_s + duration_s``; latency percentiles and CPU cover the positions
    stamped after the warm-up (a gateway just started, with no truck seen yet, takes a few
    seconds at full rate to settle), and are reported for the warm-up apart. Deliveries are
    checked over the whole run."""
    ctx = mp.get_context("spawn")
    results: Any = ctx.Queue()
    produced = ctx.Event()
    rss0 = rss_kib(gw_pid)
    procs = []
    for k in range(client_procs):
        # daemonic: an interrupted benchmark takes its load generator with it
        p = ctx.Process(
            target=client_proc, args=(port, bxs[k::client_procs], results, produced), daemon=True
        )
        p.start()
        procs.append(p)
    connected = 0
    connect_s = 0.0
    for _ in procs:
        kind, n, secs = results.get(timeout=300)
        assert kind == "ready", kind
        connected += n
        connect_s = max(connect_s, secs)
    time.sleep(0.5)
    rss1 = rss_kib(gw_pid)
    prod_q: Any = ctx.Queue()
    start_q: Any = ctx.Queue()
    prod = ctx.Process(
        target=produce,
        daemon=True,
        args=(redis_url, rate, warmup_s + duration_s, trucks, bxs, prod_q, start_q),
    )
    prod.start()
    assert prod_q.get(timeout=900) == "planned"
    start_at = time.time() + 0.5
    start_q.put(start_at)
    measure_at = start_at + warmup_s
    while time.time() < measure_at:
        time.sleep(0.001)
    gw_cpu0 = cpu_seconds(gw_pid)
    busy0 = machine_busy_s()
    wait0 = runqueue_wait_s(gw_pid)
    t_cpu0 = time.time()
    redis_cpu0 = cpu_seconds(redis_pid) if redis_pid else 0.0
    rss_peak = rss1
    while prod.is_alive():
        time.sleep(0.5)
        rss_peak = max(rss_peak, rss_kib(gw_pid))
    produced_r = prod_q.get(timeout=10)
    produced.set()
    done = []
    for _ in procs:
        kind, d = results.get(timeout=600)
        assert kind == "done", kind
        done.append(d)
    gw_cpu = cpu_seconds(gw_pid) - gw_cpu0
    busy = machine_busy_s() - busy0
    gw_wait = runqueue_wait_s(gw_pid) - wait0
    cpu_window = time.time() - t_cpu0
    redis_cpu = (cpu_seconds(redis_pid) - redis_cpu0) if redis_pid else None
    for p in procs:
        p.join(10)
    last_ms = max(d["last_ms"] for d in done)
    window_s = max(1e-9, last_ms / 1000 - start_at)
    latencies = array.array("i")
    sent_ms = array.array("q")
    for d in done:
        latencies.frombytes(d["latencies"])
        sent_ms.frombytes(d["sent_ms"])
    measured_from_ms = measure_at * 1000
    lat: list[int] = []
    warm: list[int] = []
    for x, sent in zip(latencies, sent_ms, strict=True):
        (lat if sent >= measured_from_ms else warm).append(x)
    lat.sort()
    warm.sort()

    received = sum(d["position"] for d in done)
    client_cpu = sum(d["cpu_s"] for d in done)
    return {
        "clients": len(bxs),
        "clients_connected": connected,
        "client_processes": client_procs,
        "connect_and_subscribe_s": round(connect_s, 1),
        "positions_produced": produced_r["sent"],
        "produce_rate_per_s": round(produced_r["sent"] / produced_r["seconds"]),
        "deliveries_expected": produced_r["expected"],
        "deliveries_received": received,
        "left_messages": sum(d["left"] for d in done),
        "other_messages": sum(d["other"] for d in done),
        "clients_closed": sum(d["closed"] for d in done),
        "delivered_per_s": round(received / window_s),
        "latency_ms_p50": percentile(lat, 0.50),
        "latency_ms_p99": percentile(lat, 0.99),
        "latency_ms_max": percentile(lat, 1.0),
        "warmup_s": warmup_s,
        "warmup_latency_ms_p50": percentile(warm, 0.50),
        "warmup_latency_ms_p99": percentile(warm, 0.99),
        "latency_ms_p99_by_second": p99_by_second(latencies, sent_ms, start_at),
        "window_s": round(window_s, 1),
        "gateway_cpu_s": round(gw_cpu, 1),
        "gateway_cpu_pct": round(100 * gw_cpu / cpu_window),
        "gateway_runqueue_wait_pct": round(100 * gw_wait / cpu_window),
        # CPU cost of the work itself, whatever else competes for the cores
        "gateway_cpu_s_per_stream_s": round(
            gw_cpu / max(1e-9, produced_r["seconds"] - warmup_s), 2
        ),
        # per position message stamped after the warm-up (the CPU's window)
        "gateway_cpu_us_per_message": round(1e6 * gw_cpu / max(1, len(lat)), 1),
        "clients_cpu_pct": round(100 * client_cpu / (cpu_window + warmup_s)),
        "producer_cpu_pct": round(100 * produced_r["cpu_s"] / produced_r["seconds"]),
        "redis_cpu_pct": None if redis_cpu is None else round(100 * redis_cpu / cpu_window),
        "machine_busy_pct": round(100 * busy / cpu_window),
        "machine_cores": os.cpu_count(),
        "gateway_rss_mib_idle": round(rss0 / 1024, 1),
        "gateway_rss_mib_connected": round(rss1 / 1024, 1),
        "gateway_rss_mib_peak": round(rss_peak / 1024, 1),
        "memory_kib_per_connection": round((rss1 - rss0) / max(1, len(bxs)), 1),
    }


def p99_by_second(
    latencies: array.array[int], sent_ms: array.array[int], start_at: float
) -> list[int]:
    """p99 latency of the positions stamped in each second of the run: shows whether slow
    deliveries cluster (a start-up transient, one stall) or spread over the run."""
    by_second: dict[int, list[int]] = {}
    for lat, sent in zip(latencies, sent_ms, strict=True):
        by_second.setdefault(math.floor(sent / 1000 - start_at), []).append(lat)
    return [percentile(sorted(by_second[sec]), 0.99) for sec in sorted(by_second)]


def percentile(ordered: list[int], q: float) -> int:
    """The ``q`` quantile of sorted values (nearest rank); -1 when there are none."""
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else -1


def bucket_quantile(buckets: list[tuple[float, float]], q: float) -> float | None:
    """The upper bound of the Prometheus histogram bucket holding quantile ``q``
    (``buckets``: cumulative (le, count) pairs in order)."""
    if not buckets or buckets[-1][1] == 0:
        return None
    want = q * buckets[-1][1]
    return next(le for le, count in buckets if count >= want)


COUNTERS = ("coalesced_total", "lagging_closed_total", "dropped_total")


def gateway_metrics(metrics_text: str) -> dict[str, Any]:
    """From the gateway's /metrics: its coalesced, lagging-closed and dropped counts, and its own
    part of the latency per flush pass (stream entry to socket write) as bucket bounds, which
    set against the clients' p50/p99 show where the time goes."""
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[str, Any] = {}
    buckets: list[tuple[float, float]] = []
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            name = sample.name.removeprefix("fleetpulse_gateway_")
            if name in COUNTERS:
                out[name] = sample.value
            elif name == "stream_to_write_seconds_bucket":
                buckets.append((float(sample.labels["le"]), sample.value))
    for q in (0.5, 0.99):
        b = bucket_quantile(buckets, q)
        out[f"gateway_stream_to_write_ms_p{round(q * 100)}_at_most"] = (
            None if b is None else (round(b * 1000) if b != float("inf") else "inf")
        )
    return out


def missing_at_least(report: dict[str, Any]) -> int | None:
    """Deliveries that neither arrived nor were coalesced into a newer frame: expected -
    received - coalesced, or 0. A lower bound (the gateway's coalesced count also covers
    ``left`` frames, which are not expected deliveries): above 0, updates were lost for sure."""
    coalesced = report.get("coalesced_total")
    if coalesced is None:
        return None
    return max(0, int(report["deliveries_expected"] - report["deliveries_received"] - coalesced))


def split_cpus(
    gateway_cpu: int | None, available: set[int], error: Callable[[str], Any]
) -> set[int] | None:
    """The gateway's CPU set for ``--gateway-cpu`` (None: share), or ``error`` naming why
    not: the CPU must be one this process may use, and one other must be left for the load."""
    if gateway_cpu is None:
        return None
    if gateway_cpu not in available:
        return error(
            f"--gateway-cpu {gateway_cpu}: not one of this process's CPUs {sorted(available)}"
        )
    if len(available) < 2:
        return error("--gateway-cpu needs a second CPU for the load generator")
    return {gateway_cpu}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m bench.gateway",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--redis-url", default=None)
    ap.add_argument("--clients", type=int, default=5000)
    ap.add_argument("--rate", type=int, default=10_000, help="positions per second")
    ap.add_argument(
        "--duration", type=float, default=10.0, help="seconds of producing that are measured"
    )
    ap.add_argument(
        "--warmup",
        type=float,
        default=5.0,
        help="seconds of producing at the full rate before the measured part "
        "(its latency is reported apart)",
    )
    ap.add_argument("--box-deg", type=float, default=1.0, help="side of each client's bbox")
    ap.add_argument("--trucks", type=int, default=20_000)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument(
        "--client-procs", type=int, default=2, help="processes the clients are spread over"
    )
    ap.add_argument(
        "--gateway-args",
        default="",
        help="extra arguments for `python -m ws_gateway run` (A/B runs)",
    )
    ap.add_argument(
        "--gateway-cpu",
        type=int,
        default=None,
        help="run the gateway alone on this CPU and the load generator (clients, "
        "producer, Redis) on the others, as if the clients were remote; by "
        "default all share every CPU",
    )
    args = ap.parse_args(argv)
    cpus = frozenset(usable_cpus())
    gateway_cpus = split_cpus(args.gateway_cpu, set(cpus), ap.error)
    if gateway_cpus is not None:  # what this process starts from now on inherits the rest
        pin_current_process(cpus - gateway_cpus)
    exit_on_sigterm()  # a killed run stops the gateway, Redis, the clients and the producer
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(
        resource.RLIMIT_NOFILE, (min(hard, max(soft, 4 * args.clients + 1024)), hard)
    )
    from fleetpulse.waiting import free_port, wait_until

    redis_proc = None
    redis_pid = None
    tmp = tempfile.TemporaryDirectory(prefix="fleetpulse-bench-")
    redis_url = args.redis_url
    if redis_url is None:
        from fleetpulse.services.redis_server import RedisServer

        server = RedisServer(Path(tmp.name) / "redis", port=free_port(), persist=False)
        redis_proc = server.start(Path(tmp.name) / "redis.log")
        redis_url = server.url
        redis_pid = redis_proc.popen.pid if redis_proc.popen is not None else None
    port = args.port or free_port()
    log = open(Path(tmp.name) / "gateway.log", "w")  # noqa: SIM115 - closed below
    gw = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ws_gateway",
            "run",
            "--redis-url",
            redis_url,
            "--port",
            str(port),
            "--no-auth",
            "--log-level",
            "WARNING",
            "--max-lag-s",
            "10",
            *args.gateway_args.split(),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        preexec_fn=None
        if gateway_cpus is None
        else functools.partial(os.sched_setaffinity, 0, gateway_cpus),
    )
    try:
        wait_until(
            lambda: (
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1).status == 200
            ),
            60,
            "the gateway",
        )
        bxs = boxes(args.clients, args.box_deg, seed=7)
        report = run_bench(
            port,
            bxs,
            args.duration,
            gw.pid,
            args.rate,
            redis_url,
            args.trucks,
            args.client_procs,
            redis_pid,
            args.warmup,
        )
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode()
        report.update(gateway_metrics(metrics))
        report["deliveries_missing_at_least"] = missing_at_least(report)
        report["gateway_cpus"] = sorted(gateway_cpus) if gateway_cpus is not None else "shared"
        report["command"] = "python -m bench.gateway " + " ".join(sys.argv[1:])
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
