"""The load generator and probes of the live run, each a separate process (spawned), so none
of them competes for the benchmark's own interpreter:

- :func:`paced_producer`: pings (and scans) at fixed rates, each ping's ``ts`` = the wall
  clock when it is produced, so ``receive time - ts_ms`` is the end-to-end latency;
- :func:`probe`: reads ``stream:positions`` as it grows (XREAD) and holds websocket clients
  on the gateway, recording (receive wall ms, latency ms) for every position seen;
- :func:`receiver`: the webhook receiver of the alert dispatcher, recording each alert's
  arrival.
"""

from __future__ import annotations

import asyncio
import math
import random
import threading
import time
from http.server import ThreadingHTTPServer
from typing import Any

import orjson

from bench.local_http import QuietJsonHandler

US_BOX = (-122.0, 27.0, -70.0, 47.0)


def now_ms() -> int:
    return int(time.time() * 1000)


# -- producer --------------------------------------------------------------------------------


class Fleet:
    """Trucks moving at constant speed and heading; a truck's position at any wall time."""

    def __init__(self, prefix: str, n: int, seed: int) -> None:
        rng = random.Random(seed)
        lng0, lat0, lng1, lat1 = US_BOX
        self.ids = [f"{prefix}{i:07d}" for i in range(n)]
        self.keys = [t.encode() for t in self.ids]
        self.lat = [rng.uniform(lat0 + 1, lat1 - 1) for _ in range(n)]
        self.lng = [rng.uniform(lng0 + 1, lng1 - 1) for _ in range(n)]
        self.head = [rng.uniform(0, 360) for _ in range(n)]
        self.speed = [rng.uniform(60, 100) for _ in range(n)]
        self.t0 = time.time()

    def ping(self, i: int, ts: int) -> bytes:
        hours = max(0.0, ts / 1000 - self.t0) / 3600
        km = self.speed[i] * hours
        h = math.radians(self.head[i])
        lat = self.lat[i] + km / 111.2 * math.cos(h)
        lng = self.lng[i] + km / (111.2 * math.cos(math.radians(lat))) * math.sin(h)
        return orjson.dumps(
            {
                "truck_id": self.ids[i],
                "ts": ts,
                "lat": round(lat, 6),
                "lng": round(lng, 6),
                "speed_kph": round(self.speed[i], 1),
                "heading": round(self.head[i]),
                "accuracy_m": 5,
                "status": "IN_TRANSIT",
            }
        )


def _scan(shipment: str, ts: int, promised_by: int, seq: int) -> bytes:
    return orjson.dumps(
        {
            "scan_id": f"SC-B{seq:09d}",
            "shipment_id": shipment,
            "type": "PICKED_UP",
            "ts": ts,
            "truck_id": "BENCHTRUCK",
            "hub_id": "HUB-BENCH",
            "lat": 41.88,
            "lng": -87.63,
            "promised_by": promised_by,
            "dest_lat": 42.0,
            "dest_lng": -87.9,
        }
    )


def paced_producer(
    bootstrap: str, gps_topic: str, scans_topic: str, phases: list[dict[str, Any]], result: Any
) -> None:
    """Run ``phases`` in order; each: label, rate (pings/s), trucks, prefix, duration_s,
    optional ``scan_rate`` of filler pick-ups, and optional ``doomed`` trucks and
    ``deadlines`` (shipments) as [(id, offset_ms)]: at the phase's start each gets a deadline
    D = start + offset_ms (a backdated ping whose offline timeout is D, a pick-up promised by
    D). Puts a summary per phase on ``result``, with the deadlines given."""
    from confluent_kafka import Producer

    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "linger.ms": 2,
            "acks": 1,
            "queue.buffering.max.messages": 1_000_000,
        }
    )
    seq = 0
    summaries: list[dict[str, Any]] = []
    for ph in phases:
        fleet = Fleet(ph["prefix"], ph["trucks"], seed=len(summaries) + 3)
        start = now_ms()
        given: dict[str, int] = {}
        for tid, offset in ph.get("doomed", []):
            given[tid] = start + offset
            producer.produce(
                gps_topic,
                orjson.dumps(
                    {
                        "truck_id": tid,
                        "ts": start + offset - ph["offline_after_ms"],
                        "lat": 39.1,
                        "lng": -94.6,
                        "speed_kph": 70.0,
                    }
                ),
                tid.encode(),
            )
        for sid, offset in ph.get("deadlines", []):
            seq += 1
            given[sid] = start + offset
            producer.produce(scans_topic, _scan(sid, start, start + offset, seq), sid.encode())
        producer.poll(0)
        rate, scan_rate = float(ph["rate"]), float(ph.get("scan_rate", 0))
        tick = 0.01
        t0 = time.monotonic()
        start_wall = time.time()
        sent = scans = 0
        sent_at_2s = None
        i = 0
        n = ph["trucks"]
        while True:
            elapsed = time.monotonic() - t0
            if elapsed >= ph["duration_s"]:
                break
            if sent_at_2s is None and elapsed >= 2.0:
                sent_at_2s = sent
            due = int(rate * elapsed)
            while sent < due:
                ts = now_ms()
                try:
                    producer.produce(gps_topic, fleet.ping(i, ts), fleet.keys[i])
                except BufferError:
                    producer.poll(0.01)
                    continue
                sent += 1
                i = (i + 1) % n
            due_scans = int(scan_rate * elapsed)
            while scans < due_scans:
                seq += 1
                scans += 1
                sid = f"F{seq:09d}"
                producer.produce(
                    scans_topic, _scan(sid, now_ms(), now_ms() + 86_400_000, seq), sid.encode()
                )
            producer.poll(0)
            time.sleep(max(0.0, tick - (time.monotonic() - t0 - elapsed)))
        producer.flush(30)
        summaries.append(
            {
                "label": ph["label"],
                "sent": sent,
                "scans": scans,
                "sent_after_2s": sent - (sent_at_2s or 0),
                "start_wall": start_wall,
                "end_wall": time.time(),
                "rate": round(sent / max(1e-9, time.time() - start_wall)),
                "deadlines": given,
            }
        )
    result.put(summaries)


# -- probe -----------------------------------------------------------------------------------


def probe(
    redis_url: str,
    ws_url: str,
    clients: int,
    stop: Any,
    ready: Any,
    result: Any,
    exclude_prefixes: tuple[str, ...] = ("D", "W"),
) -> None:
    """Until ``stop`` is set: XREAD ``stream:positions`` and hold ``clients`` websocket
    clients, each subscribed to one vertical stripe of the US (together: everything)."""
    samples: dict[str, list[tuple[int, int]]] = {"redis": [], "websocket": []}
    errors: list[str] = []

    async def redis_reader() -> None:
        import redis.asyncio as aioredis

        r = aioredis.Redis.from_url(redis_url)
        last = "$"
        out = samples["redis"]
        while not stop.is_set():
            resp = await r.xread({"stream:positions": last}, count=5000, block=200)
            now = now_ms()
            for _key, entries in resp or ():
                for entry_id, fields in entries:
                    tid = fields.get(b"truck_id", b"")
                    if not tid.decode().startswith(exclude_prefixes):
                        out.append((now, now - int(fields[b"ts_ms"])))
                    last = entry_id
        await r.aclose()

    async def ws_client(k: int) -> None:
        from websockets.asyncio.client import connect

        lng0, lat0, lng1, lat1 = -180.0, -90.0, 180.0, 90.0
        width = (US_BOX[2] - US_BOX[0]) / clients
        lo = US_BOX[0] + k * width if k else lng0
        hi = US_BOX[0] + (k + 1) * width if k < clients - 1 else lng1
        out = samples["websocket"]
        try:
            async with connect(
                ws_url,
                max_queue=1024,
                compression=None,
                open_timeout=60,
                ping_interval=None,
                max_size=2**24,
            ) as ws:
                await ws.send(
                    orjson.dumps(
                        {
                            "op": "subscribe",
                            "id": "s",
                            "filter": {"bbox": [round(lo, 4), lat0, round(hi, 4), lat1]},
                        }
                    ).decode()
                )
                while not stop.is_set():
                    try:
                        raw = await asyncio.wait_for(ws.recv(), 0.5)
                    except TimeoutError:
                        continue
                    now = now_ms()
                    m = orjson.loads(raw)
                    if m.get("type") == "position" and not m.get("left"):
                        t = m["truck"]
                        if not t["truck_id"].startswith(exclude_prefixes):
                            out.append((now, now - int(t["ts_ms"])))
        except Exception as exc:  # noqa: BLE001 - reported
            errors.append(f"client {k}: {exc!r}")

    async def main() -> None:
        tasks = [asyncio.create_task(redis_reader())]
        tasks += [asyncio.create_task(ws_client(k)) for k in range(clients)]
        await asyncio.sleep(1.0)
        ready.set()
        await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run(main())
    result.put({"samples": samples, "errors": errors[:20]})


# -- webhook receiver ------------------------------------------------------------------------


def receiver(port: int) -> None:
    """GET /alerts returns [[receive wall ms, dedup_key, event_action, class], ...]."""
    got: list[tuple[int, str, str, str]] = []
    lock = threading.Lock()

    class Handler(QuietJsonHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def do_POST(self) -> None:  # noqa: N802
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            at = now_ms()
            try:
                body = orjson.loads(raw)
                events = body if isinstance(body, list) else [body]
                with lock:
                    for ev in events:
                        got.append(
                            (
                                at,
                                str(ev.get("dedup_key")),
                                str(ev.get("event_action")),
                                str(ev.get("payload", {}).get("class")),
                            )
                        )
            except (orjson.JSONDecodeError, AttributeError):
                pass
            self._reply(202, b'{"status":"success"}')

        def do_GET(self) -> None:  # noqa: N802
            with lock:
                body = orjson.dumps(got)
            self._reply(200, body)

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    server.serve_forever()
