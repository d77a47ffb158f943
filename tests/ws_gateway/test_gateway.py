"""The gateway against a real Redis with real websocket clients."""

from __future__ import annotations

import asyncio
import socket
import time
import urllib.error
import urllib.request

import pytest
import redis
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus
from wsgw_helpers import SECRET, Client, eventually, put_truck, routed, run, settings

from ws_gateway.server import running
from ws_gateway.tokens import sign_token

pytestmark = pytest.mark.integration

BOX = [-125.0, 40.0, -120.0, 45.0]


def ids(msgs: list[dict]) -> list[str]:  # type: ignore[type-arg]
    return [m["truck"]["truck_id"] for m in msgs if m.get("type") == "position"]


def test_snapshot_live_updates_and_leaving(redis_url: str, redis_client: redis.Redis) -> None:
    put_truck(redis_client, "T1", 42.0, -122.0)
    put_truck(redis_client, "T2", 30.0, -100.0)
    put_truck(redis_client, "T3", 44.9, -120.01)

    async def scenario() -> None:
        async with running(settings(redis_url)) as gw:
            c = await Client.open(gw.port)
            await c.send({"op": "subscribe", "id": "view", "filter": {"bbox": BOX}})
            snap = await c.expect_type("snapshot", sub="view")
            assert sorted(t["truck_id"] for t in snap["trucks"]) == ["T1", "T3"]
            t1 = next(t for t in snap["trucks"] if t["truck_id"] == "T1")
            assert t1["lat"] == 42.0 and t1["status"] == "MOVING" and "ts_ms" in t1
            put_truck(redis_client, "T1", 42.5, -121.5)
            msg = await c.position_of("T1")
            assert msg["sub"] == "view" and msg["truck"]["lat"] == 42.5 and "left" not in msg
            assert msg["seq"] > snap["seq"]
            put_truck(redis_client, "T2", 41.0, -123.0)  # enters the box
            assert (await c.position_of("T2"))["truck"]["lng"] == -123.0
            put_truck(redis_client, "T1", 46.0, -121.5)  # leaves: one last message
            last = await c.position_of("T1")
            assert last["left"] is True and last["truck"]["lat"] == 46.0
            put_truck(redis_client, "T1", 47.0, -121.5)  # still outside: silence
            put_truck(redis_client, "T9", 0.0, 0.0)  # elsewhere: silence
            put_truck(redis_client, "T3", 44.0, -121.0)
            await c.position_of("T3")
            assert ids(await c.barrier()) == []
            assert ids(c.received).count("T1") == 2
            # the gateway's own share of the latency: stream entry id -> frames written
            metric = "fleetpulse_gateway_stream_to_write_seconds"
            passes = gw.registry.get_sample_value(metric + "_count")
            waited = gw.registry.get_sample_value(metric + "_sum")
            assert passes is not None and passes >= 1
            assert waited is not None and 0 <= waited < 2 * passes
            await c.close()

    run(scenario())


def test_region_polygon_geofence_and_truck_filters(
    redis_url: str, redis_client: redis.Redis
) -> None:
    put_truck(redis_client, "SEA", 47.6062, -122.3321)  # Seattle hub, WEST
    put_truck(redis_client, "NYC", 40.71, -74.0)  # NORTHEAST
    tri = {"type": "Polygon", "coordinates": [[[-80, 35], [-70, 35], [-70, 45], [-80, 35]]]}

    async def scenario() -> None:
        async with running(settings(redis_url)) as gw:
            c = await Client.open(gw.port)
            await c.send({"op": "subscribe", "id": "west", "filter": {"region": "WEST"}})
            assert [
                t["truck_id"] for t in (await c.expect_type("snapshot", sub="west"))["trucks"]
            ] == ["SEA"]
            await c.send({"op": "subscribe", "id": "hub", "filter": {"geofence": "HUB-SEA"}})
            assert len((await c.expect_type("snapshot", sub="hub"))["trucks"]) == 1
            await c.send({"op": "subscribe", "id": "tri", "filter": {"polygon": tri}})
            assert [
                t["truck_id"] for t in (await c.expect_type("snapshot", sub="tri"))["trucks"]
            ] == ["NYC"]
            await c.send({"op": "subscribe", "id": "ids", "filter": {"truck_ids": ["NYC", "X"]}})
            assert [
                t["truck_id"] for t in (await c.expect_type("snapshot", sub="ids"))["trucks"]
            ] == ["NYC"]
            # NYC moves north-west of the hypotenuse: out of the triangle, still watched by id
            put_truck(redis_client, "NYC", 44.5, -71.5)
            seq = put_truck(redis_client, "SEA", 47.62, -122.33)  # in west and the hub circle
            await routed(gw, seq)
            got = [
                (m["sub"], m["truck"]["truck_id"], m.get("left", False)) for m in await c.barrier()
            ]
            assert sorted(got) == [
                ("hub", "SEA", False),
                ("ids", "NYC", False),
                ("tri", "NYC", True),
                ("west", "SEA", False),
            ]
            await c.close()

    run(scenario())


def test_replace_and_unsubscribe_without_reconnecting(
    redis_url: str, redis_client: redis.Redis
) -> None:
    put_truck(redis_client, "A", 42.0, -122.0)
    put_truck(redis_client, "B", 35.0, -90.0)

    async def scenario() -> None:
        async with running(settings(redis_url)) as gw:
            c = await Client.open(gw.port)
            await c.send({"op": "subscribe", "id": "v", "filter": {"bbox": BOX}})
            assert [t["truck_id"] for t in (await c.expect_type("snapshot"))["trucks"]] == ["A"]
            await c.send({"op": "subscribe", "id": "v", "filter": {"bbox": [-95, 30, -85, 40]}})
            assert [t["truck_id"] for t in (await c.expect_type("snapshot"))["trucks"]] == ["B"]
            put_truck(redis_client, "A", 42.1, -122.0)  # old area: no longer interesting
            await routed(gw, put_truck(redis_client, "B", 35.1, -90.0))
            assert ids(await c.barrier()) == ["B"]
            await c.send({"op": "unsubscribe", "id": "v"})
            await c.expect_type("unsubscribed", sub="v")
            await routed(gw, put_truck(redis_client, "B", 35.2, -90.0))
            assert ids(await c.barrier()) == []
            assert gw.metrics.subscriptions._value.get() == 0
            await c.close()

    run(scenario())


def test_bad_input_gets_error_frames_and_the_connection_stays(
    redis_url: str, redis_client: redis.Redis
) -> None:
    async def scenario() -> None:
        async with running(
            settings(
                redis_url, max_subscriptions=2, max_frame_bytes=4096, rate_per_s=5, rate_burst=30
            )
        ) as gw:
            c = await Client.open(gw.port)
            cases = [
                ("{not json", "BAD_REQUEST"),
                ("[1, 2]", "BAD_REQUEST"),
                ({"op": "dance"}, "BAD_REQUEST"),
                ({"op": "subscribe", "id": "x", "filter": {"bbox": [1, 2, 3]}}, "BAD_FILTER"),
                ({"op": "subscribe", "id": "x", "filter": {"region": "MARS"}}, "BAD_FILTER"),
                ({"op": "subscribe", "id": "", "filter": {"bbox": BOX}}, "BAD_REQUEST"),
                ({"op": "subscribe", "id": 5, "filter": {"bbox": BOX}}, "BAD_REQUEST"),
                ({"op": "unsubscribe", "id": "nope"}, "UNKNOWN_SUBSCRIPTION"),
                ({"op": "resume"}, "BAD_REQUEST"),
                (b"\xff\xfe", "BAD_REQUEST"),
            ]
            for raw, code in cases:
                await c.send(raw)
                err = await c.expect_type("error")
                assert err["code"] == code, (raw, err)
            err = c.received[3]
            assert err["message"] == "bbox needs 4 numbers" and err["sub"] == "x"
            for i in range(2):
                await c.send({"op": "subscribe", "id": f"s{i}", "filter": {"bbox": BOX}})
                await c.expect_type("snapshot", sub=f"s{i}")
            await c.send({"op": "subscribe", "id": "s2", "filter": {"bbox": BOX}})
            assert (await c.expect_type("error"))["code"] == "TOO_MANY_SUBSCRIPTIONS"
            # a flood: some messages are refused, the connection stays
            for _ in range(60):
                await c.send({"op": "ping"})
            await c.expect_type("error", code="RATE_LIMITED")
            assert gw.metrics.client_errors.labels("RATE_LIMITED")._value.get() > 0
            # still usable after the limits (wait out the bucket by polling, not sleeping)
            deadline = time.monotonic() + 10
            while True:
                await c.send({"op": "ping"})
                m = await c.expect(lambda m: m.get("type") in ("pong", "error"))
                if m["type"] == "pong" or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.2)
            assert m["type"] == "pong"
            # an oversized frame is a protocol limit: the server closes with 1009
            await c.send("x" * 5000)
            assert await c.closed_with() == 1009
            await eventually(lambda: not gw.connections, what="connection cleaned up")
            assert gw.metrics.connections._value.get() == 0

    run(scenario())


def test_auth_tokens_and_regions(redis_url: str, redis_client: redis.Redis) -> None:
    put_truck(redis_client, "SEA", 47.6, -122.3)  # WEST
    put_truck(redis_client, "CHI", 41.9, -87.6)  # MIDWEST
    now = int(time.time())
    west = sign_token(SECRET, "west-ops", ["WEST"], now + 600)

    async def scenario() -> None:
        async with running(settings(redis_url, auth=True, secret=SECRET)) as gw:
            for token in (
                None,
                "garbage",
                sign_token("other", "x", ["*"], now + 600),
                sign_token(SECRET, "old", ["*"], now - 1),
            ):
                c = await Client.open(gw.port, token)
                assert await c.closed_with() == 4401
                assert c.received[0]["type"] == "error"
                assert c.received[0]["code"] == "UNAUTHORIZED"
            # a bbox over both regions: the WEST token sees only the WEST truck, live too
            c = await Client.open(gw.port, west)
            await c.send({"op": "subscribe", "id": "v", "filter": {"bbox": [-130, 25, -80, 50]}})
            assert [t["truck_id"] for t in (await c.expect_type("snapshot"))["trucks"]] == ["SEA"]
            put_truck(redis_client, "CHI", 41.8, -87.6)
            await routed(gw, put_truck(redis_client, "SEA", 47.5, -122.3))
            assert ids(await c.barrier()) == ["SEA"]
            await c.send({"op": "delays"})  # only its regions' shipments: none here
            assert (await c.expect_type("delays"))["shipments"] == []
            await c.send({"op": "subscribe", "id": "mw", "filter": {"region": "MIDWEST"}})
            assert await c.closed_with() == 4403
            assert c.received[-1]["code"] == "FORBIDDEN"
            c = await Client.open(gw.port, west)
            await c.send({"op": "subscribe", "id": "v", "filter": {"bbox": [-90, 40, -85, 45]}})
            assert await c.closed_with() == 4403
            # header auth works for non-browser clients
            ws = await connect(
                f"ws://127.0.0.1:{gw.port}/ws",
                additional_headers={"Authorization": f"Bearer {west}"},
            )
            c = Client(ws)
            await c.send({"op": "subscribe", "id": "w", "filter": {"region": "WEST"}})
            assert [t["truck_id"] for t in (await c.expect_type("snapshot"))["trucks"]] == ["SEA"]
            await c.close()
            assert gw.metrics.refused.labels("unauthorized")._value.get() == 4

    run(scenario())


def test_resume_replays_missed_positions_or_sends_a_snapshot(
    redis_url: str, redis_client: redis.Redis
) -> None:
    put_truck(redis_client, "A", 42.0, -122.0)
    put_truck(redis_client, "B", 43.0, -122.0)

    async def scenario() -> None:
        async with running(settings(redis_url)) as gw:
            start_seq = gw.router.last_seq
            c = await Client.open(gw.port)
            await c.send({"op": "subscribe", "id": "v", "filter": {"bbox": BOX}})
            await c.expect_type("snapshot")
            put_truck(redis_client, "A", 42.1, -122.0)
            last_seen = (await c.position_of("A"))["seq"]
            await c.close()
            # while disconnected: A moves twice, B leaves, C arrives, D moves elsewhere
            put_truck(redis_client, "A", 42.2, -122.0)
            put_truck(redis_client, "A", 42.3, -122.0)
            put_truck(redis_client, "B", 50.0, -122.0)
            put_truck(redis_client, "C", 41.0, -121.0)
            await routed(gw, put_truck(redis_client, "D", 30.0, -90.0))
            c = await Client.open(gw.port)
            await c.send({"op": "resume", "since": last_seen})
            await c.send({"op": "subscribe", "id": "v", "filter": {"bbox": BOX}})
            got = await c.barrier()
            assert not any(m["type"] == "snapshot" for m in got)
            # coalesced to the latest per truck; B's last message says it left
            assert [
                (m["truck"]["truck_id"], m["truck"]["lat"], m.get("left", False)) for m in got
            ] == [("A", 42.3, False), ("B", 50.0, True), ("C", 41.0, False)]
            # resume on a live subscription works the same way
            await c.send({"op": "resume", "since": last_seen})
            assert len(await c.barrier()) == 3
            # too old to replay (before the gateway started reading): fresh snapshot instead
            await c.send({"op": "resume", "since": "1-0"})
            snap = await c.expect_type("snapshot", sub="v")
            assert sorted(t["truck_id"] for t in snap["trucks"]) == ["A", "C"]
            assert not gw.router.can_replay("1-0") and gw.router.can_replay(start_seq)
            await c.close()

    run(scenario())


def test_slow_client_is_told_and_closed_while_others_keep_up(
    redis_url: str, redis_client: redis.Redis
) -> None:
    async def scenario() -> None:
        async with running(
            settings(redis_url, max_queue_items=5000, max_lag_s=1.0, write_limit_bytes=4096)
        ) as gw:
            fast = await Client.open(gw.port)
            # the slow one reads nothing and has a tiny socket buffer
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect(("127.0.0.1", gw.port))
            slow = await Client.open(gw.port, sock=sock, max_queue=1)
            for c in (fast, slow):
                await c.send({"op": "subscribe", "id": "v", "filter": {"bbox": BOX}})
                await c.expect_type("snapshot")

            # rounds of 1,500 trucks until the slow socket's kernel buffers are full and its
            # queue stalls (how much that takes depends on the kernel's buffer autotuning)
            pipe = redis_client.pipeline(transaction=False)
            rounds = 0
            while gw.metrics.lagging._value.get() == 0:
                rounds += 1
                assert rounds <= 60, "the slow client was never found lagging"
                for i in range(1500):
                    pipe.xadd(
                        "stream:positions",
                        {
                            "truck_id": f"T{i}",
                            "lat": 40.5 + i / 1000,
                            "lng": -124 + rounds / 100,
                            "status": "MOVING",
                            "ts_ms": 1,
                            "speed_kph": 1,
                            "heading": 1,
                            "region": "WEST",
                        },
                    )
                seq = pipe.execute()[-1].decode()
                await routed(gw, seq)
                await fast.barrier()
            put_truck(redis_client, "END", 42.0, -122.0)
            await fast.position_of("END")
            assert gw.metrics.lagging._value.get() == 1
            assert await slow.closed_with(timeout_s=10) == 4408
            assert any(m.get("type") == "lagging" for m in slow.received)
            # the fast client saw every truck's latest position (some coalesced, none lost)
            latest = {
                m["truck"]["truck_id"]: m["truck"]["lng"]
                for m in fast.received
                if m.get("type") == "position"
            }
            last_lng = -124 + rounds / 100
            assert len(latest) == 1501 and latest["T0"] == latest["T1499"] == last_lng
            await fast.send({"op": "ping"})
            await fast.expect_type("pong")
            assert gw.metrics.dropped._value.get() > 0

    run(scenario(), timeout_s=60)


def test_http_page_health_metrics_and_origin(redis_url: str, redis_client: redis.Redis) -> None:
    redis_client.zadd("delays", {"shipment:S1": 2, "shipment:S2": 5, "shipment:S3": 1})

    async def scenario() -> None:
        async with running(settings(redis_url)) as gw:
            base = f"http://127.0.0.1:{gw.port}"

            def get(path: str) -> tuple[int, str, bytes]:
                try:
                    with urllib.request.urlopen(base + path, timeout=5) as resp:
                        return resp.status, resp.headers["Content-Type"], resp.read()
                except urllib.error.HTTPError as exc:
                    return exc.code, "", b""

            status, ctype, body = await asyncio.to_thread(get, "/?token=abc")
            assert status == 200 and ctype.startswith("text/html") and b"leaflet.js" in body
            status, _, body = await asyncio.to_thread(get, "/static/vendor/leaflet.js")
            assert status == 200 and len(body) > 100_000
            status, ctype, body = await asyncio.to_thread(get, "/data/us-states.geojson")
            assert status == 200 and ctype == "application/geo+json"
            for bad in ("/static/../server.py", "/static/%2e%2e/server.py", "/nope"):
                assert (await asyncio.to_thread(get, bad))[0] == 404
            status, _, body = await asyncio.to_thread(get, "/healthz")
            assert status == 200 and b'"status":"ok"' in body
            c = await Client.open(gw.port)
            await c.send({"op": "delays"})
            d = await c.expect_type("delays")
            assert d["shipments"] == [
                {"shipment_id": "S2", "severity": 5},
                {"shipment_id": "S1", "severity": 2},
                {"shipment_id": "S3", "severity": 1},
            ]
            redis_client.zadd("delays", {"shipment:S4": 4})
            d = await c.expect_type("delays")
            assert [s["shipment_id"] for s in d["shipments"]] == ["S2", "S4", "S1", "S3"]
            status, _, body = await asyncio.to_thread(get, "/metrics")
            text = body.decode()
            for name in (
                "fleetpulse_gateway_connections 1.0",
                "fleetpulse_gateway_subscriptions",
                "fleetpulse_gateway_messages_sent_total",
                "fleetpulse_gateway_coalesced",
                "fleetpulse_gateway_dropped_total",
                "fleetpulse_gateway_stream_lag",
            ):
                assert name in text
            with pytest.raises(InvalidStatus) as info:
                await connect(f"ws://127.0.0.1:{gw.port}/ws", origin="http://evil.example")
            assert info.value.response.status_code == 403
            ok = await connect(
                f"ws://127.0.0.1:{gw.port}/ws", origin=f"http://127.0.0.1:{gw.settings.port}"
            )  # type: ignore[arg-type]
            await ok.close()
            await c.close()

    run(scenario())


async def _first_ping_after(port: int) -> float:
    """Open a bare websocket (no subscription, so the server's first frame is its keepalive
    ping) and return how long after the upgrade that ping came."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        b"Sec-WebSocket-Version: 13\r\n\r\n"
    )
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101"), head
    opened = time.monotonic()
    b0, length = await reader.readexactly(2)
    await reader.readexactly(length & 0x7F)
    assert b0 & 0x0F == 0x9, f"expected a ping, got opcode {b0 & 0x0F}"
    after = time.monotonic() - opened
    writer.close()
    return after


@pytest.mark.parametrize("spread", [True, False])
def test_keepalive_pings_of_clients_that_connected_together_are_spread(
    redis_url: str, spread: bool
) -> None:
    """Clients connecting together (everyone reconnecting after a restart) must not all be
    pinged together, every interval, forever: each connection's cycle starts at a random
    point. Without spreading (the comparison case), the first pings land within moments."""
    interval = 2.0

    async def scenario() -> list[float]:
        async with running(
            settings(redis_url, ping_interval_s=interval, spread_keepalive=spread)
        ) as gw:
            return list(await asyncio.gather(*(_first_ping_after(gw.port) for _ in range(20))))

    firsts = run(scenario(), timeout_s=30)
    assert all(interval - 0.2 <= t <= 2 * interval + 0.5 for t in firsts), firsts
    if spread:
        assert max(firsts) - min(firsts) > 0.5, firsts
    else:
        assert max(firsts) - min(firsts) < 0.5, firsts
