"""The gateway's two hot paths without sockets, Redis or clients: precise before/after numbers.

    python -m bench.gateway_micro [--source DIR] [--entries 200000] [--clients 5000]

``routing``: stream entries (raw XREAD form, the bench's positions: 20,000 trucks moving
across the US) through the router into 5,000 clients' coalescing queues, each with a 1° bbox,
emptied every 500 entries. ``flush``: 2,500 queued position frames per pass over 5,000
connections, then the gateway's flush pass, with sockets whose ``write`` is a C no-op. Both
print process CPU per unit, best of ``--repeat``. The end-to-end benchmark
(``python -m bench.gateway``) adds the system calls and the load generator; its noise (the
scheduler, other tenants of the machine) hides differences of 10 %, which these do not.

``--source`` imports ``ws_gateway`` from another checkout (``git worktree add /tmp/base REV``),
so two revisions compare in the same minute.
"""

from __future__ import annotations

import asyncio
import gc
import random
import sys
import time
from typing import Any

import click

from bench.support import truck_walk

FRAME = (
    b'{"type":"position","sub":"v","truck":{"truck_id":"B01234","lat":41.123456789,'
    b'"lng":-100.98765432,"speed_kph":80.0,"heading":90.0,"status":"MOVING",'
    b'"ts_ms":1700000000123,"region":"WEST"},"seq":"1700000000000-1"}'
)


def stream_entries(n: int, trucks: int, seed: int) -> list[tuple[bytes, list[bytes]]]:
    """``n`` entries as XREAD returns them, trucks random-walking inside the US box."""
    from bench.gateway import US

    walk = truck_walk(random.Random(seed), trucks, US)
    ms = 1_700_000_000_000
    out = []
    for k in range(n):
        tid, lat, lng = next(walk)
        out.append(
            (
                f"{ms + k // 10}-{k % 10}".encode(),
                [
                    b"truck_id",
                    tid.encode(),
                    b"lat",
                    repr(lat).encode(),
                    b"lng",
                    repr(lng).encode(),
                    b"speed_kph",
                    b"80",
                    b"heading",
                    b"90",
                    b"status",
                    b"MOVING",
                    b"ts_ms",
                    str(ms + k).encode(),
                    b"region",
                    b"WEST",
                ],
            )
        )
    return out


def bench_routing(entries: int, clients: int, repeat: int) -> dict[str, float]:
    from bench.gateway import boxes
    from ws_gateway.filters import parse_bbox
    from ws_gateway.queue import CoalescingQueue
    from ws_gateway.router import Router, Subscription

    class Client:
        __slots__ = ("queue",)

        def __init__(self) -> None:
            self.queue = CoalescingQueue(20_000)

        def enqueue(self, key: Any, frame: bytes) -> None:
            self.queue.put(key, frame, 0.0)

    sinks = [Client() for _ in range(clients)]
    subs = [
        Subscription(c, "v", parse_bbox(b))
        for c, b in zip(sinks, boxes(clients, 1.0, 7), strict=True)
    ]
    data: list[tuple[bytes, Any]] = stream_entries(entries, 20_000, 1)
    batched = hasattr(Router, "on_batch")
    if not batched:  # an older router: one call per entry, fields as redis-py's dict
        data = [(seq, dict(zip(f[0::2], f[1::2], strict=True))) for seq, f in data]
    best = float("inf")
    frames = 0
    for _ in range(repeat):
        router = Router()
        for s in subs:
            router.add(s)
        gc.collect()
        gc.freeze()
        t0 = time.process_time()
        frames = 0
        for i in range(0, len(data), 500):
            chunk = data[i : i + 500]
            if batched:
                frames += router.on_batch(chunk)
            else:
                for seq, fields in chunk:
                    frames += router.on_entry(seq, fields)
            for c in sinks:
                if len(c.queue):
                    c.queue.pop_batch(512)
        best = min(best, time.process_time() - t0)
    return {
        "routing_us_per_entry": round(best / len(data) * 1e6, 2),
        "routing_us_per_message": round(best / frames * 1e6, 2),
        "routing_messages_per_entry": round(frames / len(data), 2),
    }


def bench_flush(clients: int, passes: int, repeat: int) -> dict[str, float]:
    from websockets.protocol import OPEN

    from ws_gateway.server import Connection, Gateway
    from ws_gateway.settings import GatewaySettings
    from ws_gateway.tokens import ALL_REGIONS, Grant

    class Protocol:
        extensions: list[Any] = []
        state = OPEN
        expect_continuation_frame = False

    class Transport:
        def __init__(self) -> None:
            self.out: list[bytes] = []
            self.write = self.out.append

        def is_closing(self) -> bool:
            return False

    class Socket:
        def __init__(self) -> None:
            self.protocol = Protocol()
            self.paused = False
            self.transport = Transport()

    gw = Gateway(GatewaySettings(redis_url="redis://127.0.0.1:1/0", auth=False))
    loop = asyncio.new_event_loop()
    gw._loop = loop
    grant = Grant("bench", frozenset({ALL_REGIONS}), 2**62)

    async def connect() -> list[Connection]:
        return [Connection(gw, Socket(), grant) for _ in range(clients)]  # type: ignore[arg-type]

    conns = loop.run_until_complete(connect())
    flush_pass: Any = gw._flush
    rng = random.Random(3)
    plan = [
        [(rng.randrange(clients), ("v", f"B{rng.randrange(20_000)}")) for _ in range(2500)]
        for _ in range(passes)
    ]
    best = float("inf")
    writes = messages = 0
    for _ in range(repeat):
        gc.collect()
        gc.freeze()
        t0 = time.process_time()
        writes = messages = 0
        for batch in plan:
            for i, key in batch:
                conns[i].enqueue(key, FRAME)
            writes += len(gw._dirty)
            messages += len(batch)
            if gw._flush_handle is not None:
                gw._flush_handle.cancel()
            flush_pass()
        best = min(best, time.process_time() - t0)
        for c in conns:
            c.ws.transport.out.clear()  # type: ignore[attr-defined]
    loop.close()
    return {
        "flush_us_per_message": round(best / messages * 1e6, 2),
        "flush_us_per_write": round(best / writes * 1e6, 2),
        "flush_messages_per_write": round(messages / writes, 2),
    }


@click.command(help=__doc__)
@click.option(
    "--source",
    type=click.Path(exists=True, file_okay=False),
    default=None,
    help="checkout to import ws_gateway from (default: this one)",
)
@click.option("--entries", default=200_000, show_default=True)
@click.option("--clients", default=5000, show_default=True)
@click.option("--passes", default=400, show_default=True)
@click.option("--repeat", default=3, show_default=True)
def main(source: str | None, entries: int, clients: int, passes: int, repeat: int) -> None:
    if source is not None:
        sys.path.insert(0, source)
    import ws_gateway

    print(f"ws_gateway from {ws_gateway.__file__}")
    thresholds = gc.get_threshold()
    gc.set_threshold(50_000, 20, 100)  # as the gateway runs (ws_gateway.cli)
    try:
        report = {**bench_routing(entries, clients, repeat), **bench_flush(clients, passes, repeat)}
    finally:  # leave the interpreter as found (the tests call this in-process)
        gc.unfreeze()
        gc.set_threshold(*thresholds)
    for key, value in report.items():
        print(f"{key:30s} {value}")


if __name__ == "__main__":
    main()
