"""The gateway's Redis side (thin): snapshot queries and the `stream:positions` reader.

``r`` is a standalone or a cluster client (:mod:`ws_gateway.redis_client`); only the stream reader
needs to tell them apart (docs/redis-cluster.md)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import redis.asyncio as aioredis

from udfs.contract import POSITION_FIELDS, truck_key
from ws_gateway.filters import Filter
from ws_gateway.redis_client import AsyncClient
from ws_gateway.router import Subscription, decode_truck

TRUCK_FIELDS = POSITION_FIELDS  # truck_id, then what a snapshot reads of each `truck:` hash
KM_PER_DEG = 111.2  # Redis's own Earth radius gives 111.23 km per degree of latitude


def geosearch_box(flt: Filter) -> tuple[float, float, float, float] | None:
    """(centre lng, centre lat, width km, height km) of a Redis GEOSEARCH box that covers the
    filter's envelope, or None when the envelope is too big for one box (scan everything).

    Redis measures a member's east-west offset along the member's own latitude, so the width
    is taken at the envelope's latitude closest to the equator, where degrees are widest.
    """
    env = flt.envelope
    if env is None:
        return None
    min_lng, min_lat, max_lng, max_lat = env
    if max_lng - min_lng > 150 or max_lat - min_lat > 80:
        return None
    widest = 0.0 if min_lat <= 0 <= max_lat else min(abs(min_lat), abs(max_lat))
    width = (max_lng - min_lng) * KM_PER_DEG * math.cos(math.radians(widest))
    height = (max_lat - min_lat) * KM_PER_DEG
    return (
        (min_lng + max_lng) / 2,
        (min_lat + max_lat) / 2,
        width * 1.01 + 1.0,
        height * 1.01 + 1.0,
    )


async def candidate_ids(r: AsyncClient, sub: Subscription, geo_key: str) -> list[str]:
    flt = sub.filter
    if flt.truck_ids:
        return sorted(flt.truck_ids)
    box = geosearch_box(flt)
    if box is None:
        members = await r.zrange(geo_key, 0, -1)
    else:
        lng, lat, w, h = box
        members = await r.geosearch(
            geo_key, longitude=lng, latitude=lat, width=w, height=h, unit="km"
        )
    return [m.decode() if isinstance(m, bytes) else m for m in members]


class Snapshot(NamedTuple):
    trucks: list[dict[str, Any]]
    truncated: bool
    read: int  # `truck:` hashes read: what the snapshot cost Redis (the client's rate limit)


async def snapshot(r: AsyncClient, sub: Subscription, geo_key: str, limit: int) -> Snapshot:
    """Trucks inside the subscription now: GEOSEARCH candidates, positions from the `truck:`
    hashes, exact test with the filter."""
    ids = await candidate_ids(r, sub, geo_key)
    trucks: list[dict[str, Any]] = []
    for start in range(0, len(ids), 1000):
        chunk = ids[start : start + 1000]
        async with r.pipeline(transaction=False) as pipe:
            for tid in chunk:
                pipe.hmget(truck_key(tid), list(TRUCK_FIELDS[1:]))
            rows = await pipe.execute()
        for tid, row in zip(chunk, rows, strict=True):
            fields: dict[str, Any] = dict(zip(TRUCK_FIELDS[1:], row, strict=True))
            fields["truck_id"] = tid
            truck = decode_truck(fields)
            if truck is not None and sub.matches(tid, truck["lat"], truck["lng"]):
                trucks.append(truck)
                if len(trucks) >= limit:
                    return Snapshot(trucks, True, start + len(chunk))
    return Snapshot(trucks, False, len(ids))


async def stream_end(r: AsyncClient, stream_key: str) -> str:
    """Id of the newest entry of the stream ("0-0" if there is none)."""
    last = await r.xrevrange(stream_key, count=1)
    if not last:
        return "0-0"
    entry_id = last[0][0]
    return entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)


def _raw_reply(response: Any, **_options: Any) -> Any:
    return response


async def read_stream(
    r: AsyncClient,
    stream_key: str,
    start_id: str,
    on_batch: Callable[[list[tuple[bytes, list[bytes]]]], None],
    block_ms: int = 1000,
    count: int = 2000,
) -> None:
    """Forever: XREAD after ``start_id`` and hand each batch of entries to ``on_batch``.

    Entries come as Redis sends them, ``(id, [name, value, ...])``: redis-py's reply parsing
    (a dict per entry) was 5-8 % of the gateway's time, and the router reads the flat list
    directly. ``r`` must be a client of its own (its XREAD replies stay raw).
    """
    r.set_response_callback("XREAD", _raw_reply)
    if isinstance(r, aioredis.RedisCluster):
        await _read_stream_cluster(r, stream_key, start_id, on_batch, block_ms, count)
        return
    last: bytes | str = start_id
    while True:
        resp = await r.execute_command(
            "XREAD", "COUNT", count, "BLOCK", block_ms, "STREAMS", stream_key, last
        )
        streams = resp.items() if isinstance(resp, dict) else resp or ()  # RESP3: a map
        for _key, entries in streams:
            if entries:
                on_batch(entries)
                last = entries[-1][0]


async def _read_stream_cluster(
    r: aioredis.RedisCluster,
    stream_key: str,
    start_id: str,
    on_batch: Callable[[list[tuple[bytes, list[bytes]]]], None],
    block_ms: int,
    count: int,
) -> None:
    """:func:`read_stream` on a cluster: each XREAD goes straight to the node that holds the
    stream's slot. Without ``target_nodes`` redis-py asks a node for XREAD's keys (COMMAND
    GETKEYS) before every read; the lookup here is a dict access, redone each time so a moved
    slot is followed after one redirect."""
    await r.initialize()  # the slot table (again after a connection error closed it)
    last: bytes | str = start_id
    while True:
        resp = await r.execute_command(
            "XREAD",
            "COUNT",
            count,
            "BLOCK",
            block_ms,
            "STREAMS",
            stream_key,
            last,
            target_nodes=r.get_node_from_key(stream_key),
        )
        streams = resp.items() if isinstance(resp, dict) else resp or ()
        for _key, entries in streams:
            if entries:
                on_batch(entries)
                last = entries[-1][0]
