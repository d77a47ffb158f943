"""Helpers for the gateway's integration tests: contract-exact Redis writes and a websocket
client that waits with deadlines (never fixed sleeps)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import redis
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from ws_gateway.settings import GatewaySettings

SECRET = "test-secret"


def settings(redis_url: str, **overrides: Any) -> GatewaySettings:
    base: dict[str, Any] = {"redis_url": redis_url, "port": 0, "auth": False, "delays_poll_s": 0.2}
    base.update(overrides)
    return GatewaySettings(**base)


def put_truck(
    r: redis.Redis,
    truck_id: str,
    lat: float,
    lng: float,
    status: str = "MOVING",
    ts_ms: int | None = None,
    stream: bool = True,
) -> str | None:
    """Write one accepted position the way the tracking job does (CONTRACT.md Redis model)."""
    ts_ms = ts_ms if ts_ms is not None else int(time.time() * 1000)
    fields = {
        "lat": lat,
        "lng": lng,
        "speed_kph": 60.0,
        "heading": 90.0,
        "status": status,
        "updated": ts_ms // 1000,
        "ts_ms": ts_ms,
        "region": "WEST",
    }
    pipe = r.pipeline(transaction=True)
    pipe.hset(f"truck:{truck_id}", mapping=fields)
    pipe.expire(f"truck:{truck_id}", 3600)
    pipe.geoadd("trucks:geo", (lng, lat, truck_id))
    if stream:
        entry = {"truck_id": truck_id, **{k: v for k, v in fields.items() if k != "updated"}}
        pipe.xadd("stream:positions", entry, maxlen=100_000, approximate=True)
    out = pipe.execute()
    return out[-1].decode() if stream else None


def run(coro: Awaitable[Any], timeout_s: float = 60.0) -> Any:
    async def bounded() -> Any:
        return await asyncio.wait_for(coro, timeout_s)

    return asyncio.run(bounded())


async def routed(gw: Any, seq: str | None, timeout_s: float = 5.0) -> None:
    """Wait until the gateway has routed stream entry ``seq`` (poll with a deadline)."""
    from ws_gateway.router import seq_key

    assert seq is not None
    deadline = time.monotonic() + timeout_s
    while gw.router.last_key < seq_key(seq):
        if time.monotonic() > deadline:
            raise AssertionError(f"gateway did not route {seq} within {timeout_s}s")
        await asyncio.sleep(0.01)


async def eventually(
    pred: Callable[[], bool], timeout_s: float = 5.0, what: str = "condition"
) -> None:
    deadline = time.monotonic() + timeout_s
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not hold within {timeout_s}s")
        await asyncio.sleep(0.01)


class Client:
    """A real websocket client that remembers everything it received."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.received: list[dict[str, Any]] = []

    @classmethod
    async def open(cls, port: int, token: str | None = None, **kwargs: Any) -> Client:
        url = f"ws://127.0.0.1:{port}/ws" + (f"?token={token}" if token else "")
        return cls(await connect(url, **kwargs))

    async def send(self, obj: Any) -> None:
        await self.ws.send(obj if isinstance(obj, str | bytes) else orjson.dumps(obj).decode())

    async def expect(
        self,
        pred: Callable[[dict[str, Any]], bool],
        timeout_s: float = 5.0,
        what: str = "a matching frame",
    ) -> dict[str, Any]:
        """The next frame satisfying ``pred``, reading (and keeping) the ones before it."""
        deadline = time.monotonic() + timeout_s
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {what} within {timeout_s}s; got {self.received[-5:]}")
            try:
                raw = await asyncio.wait_for(self.ws.recv(), left)
            except TimeoutError:
                continue
            msg = orjson.loads(raw)
            self.received.append(msg)
            if pred(msg):
                return msg

    async def expect_type(
        self, type_: str, timeout_s: float = 5.0, **fields: Any
    ) -> dict[str, Any]:
        return await self.expect(
            lambda m: m.get("type") == type_ and all(m.get(k) == v for k, v in fields.items()),
            timeout_s,
            f"{type_} frame with {fields}",
        )

    async def position_of(self, truck_id: str, timeout_s: float = 5.0) -> dict[str, Any]:
        return await self.expect(
            lambda m: m.get("type") == "position" and m["truck"]["truck_id"] == truck_id,
            timeout_s,
            f"position of {truck_id}",
        )

    async def barrier(self) -> list[dict[str, Any]]:
        """Everything the server queued before this point: send a ping, read up to the pong."""
        start = len(self.received)
        await self.send({"op": "ping"})
        await self.expect_type("pong")
        return self.received[start:-1]

    async def closed_with(self, timeout_s: float = 5.0) -> int | None:
        deadline = time.monotonic() + timeout_s
        try:
            while time.monotonic() < deadline:
                raw = await asyncio.wait_for(self.ws.recv(), deadline - time.monotonic())
                self.received.append(orjson.loads(raw))
        except ConnectionClosed:
            return self.ws.close_code
        raise AssertionError("connection still open")

    async def close(self) -> None:
        await self.ws.close()
