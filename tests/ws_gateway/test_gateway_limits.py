"""The gateway's limits against a real Redis with real websocket clients (issue 34): what a
snapshot costs, connection caps, token expiry on open connections, and what a region-limited
token sees of alerts without a position and of the delays list."""

from __future__ import annotations

import time

import orjson
import pytest
import redis
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus
from wsgw_helpers import SECRET, Client, eventually, put_truck, run, settings

from ws_gateway.alerts import MapAlert, decode_alert
from ws_gateway.server import running
from ws_gateway.tokens import sign_token

pytestmark = pytest.mark.integration

NATIONAL = [-125.0, 24.0, -66.0, 50.0]


def _put_many(r: redis.Redis, n: int) -> None:
    """``n`` trucks in the West (truck hashes and the geo set only, as the tracking job)."""
    pipe = r.pipeline(transaction=False)
    now_ms = int(time.time() * 1000)
    for i in range(n):
        lat, lng = 35.0 + (i % 100) * 0.1, -120.0 + (i // 100) * 0.1
        pipe.hset(
            f"truck:R{i:05d}",
            mapping={
                "lat": lat,
                "lng": lng,
                "speed_kph": 50.0,
                "heading": 0.0,
                "status": "MOVING",
                "updated": now_ms // 1000,
                "ts_ms": now_ms,
                "region": "WEST",
            },
        )
        pipe.geoadd("trucks:geo", (lng, lat, f"R{i:05d}"))
    pipe.execute()


def test_a_resume_flooder_is_charged_for_what_its_snapshots_read(
    redis_url: str, redis_client: redis.Redis
) -> None:
    """Each resume from before the gateway's start reads every truck of the view again. Within
    the message rate (21 messages, burst 60) all would be served; charged one message per 100
    trucks read, the 3,000-truck snapshots exhaust the bucket after two and the rest are
    refused with RATE_LIMITED frames, without touching Redis."""
    _put_many(redis_client, 3000)
    put_truck(redis_client, "T0", 40.0, -110.0)  # the stream is not empty: "0-0" is too old

    async def scenario() -> None:
        cfg = settings(redis_url, rate_per_s=1.0, rate_burst=60.0, read_cost_trucks=100)
        async with running(cfg) as gw:
            c = await Client.open(gw.port)
            await c.send({"op": "subscribe", "id": "view", "filter": {"bbox": NATIONAL}})
            snap = await c.expect_type("snapshot", sub="view")
            assert len(snap["trucks"]) == 3001
            for _ in range(20):
                await c.send({"op": "resume", "since": "0-0"})
            reg = gw.registry

            def handled() -> float:
                snaps = reg.get_sample_value("fleetpulse_gateway_snapshots_total") or 0.0
                limited = (
                    reg.get_sample_value(
                        "fleetpulse_gateway_client_errors_total", {"code": "RATE_LIMITED"}
                    )
                    or 0.0
                )
                return snaps + limited

            await eventually(lambda: handled() >= 21, 10.0, "all 21 messages handled")
            snapshots = reg.get_sample_value("fleetpulse_gateway_snapshots_total")
            read = reg.get_sample_value("fleetpulse_gateway_snapshot_trucks_read_total")
            assert snapshots is not None and read is not None
            # 60 tokens: the subscribe (1 + 30) and one resume (1 + 30) then debt; one more
            # token may have refilled on a slow machine
            assert 2 <= snapshots <= 4, snapshots
            assert read == snapshots * 3001
            err = await c.expect(
                lambda m: m.get("type") == "error" and m.get("code") == "RATE_LIMITED"
            )
            assert err["retry_after_ms"] > 0 and "trucks it reads" in err["message"]
            await c.close()

    run(scenario())


def test_connections_are_capped_per_token_and_per_process(
    redis_url: str, redis_client: redis.Redis
) -> None:
    now = int(time.time())
    a, b, c_ = (sign_token(SECRET, name, ["*"], now + 600) for name in "abc")

    async def scenario() -> None:
        cfg = settings(
            redis_url, auth=True, secret=SECRET, max_connections_per_token=2, max_connections=3
        )
        async with running(cfg) as gw:
            url = f"ws://127.0.0.1:{gw.port}/ws?token="
            a1, a2 = Client(await connect(url + a)), Client(await connect(url + a))
            with pytest.raises(InvalidStatus) as info:
                await connect(url + a)
            assert info.value.response.status_code == 429
            b1 = Client(await connect(url + b))  # another token: room in the process
            with pytest.raises(InvalidStatus) as info:
                await connect(url + c_)
            assert info.value.response.status_code == 503
            for cl in (a1, a2, b1):  # the admitted ones work
                await cl.barrier()
            await a1.close()
            await eventually(lambda: len(gw.connections) == 2, what="a1's slot released")
            a3 = Client(await connect(url + a))
            await a3.barrier()
            refused = gw.metrics.refused
            assert refused.labels("token_full")._value.get() == 1
            assert refused.labels("process_full")._value.get() == 1
            for cl in (a2, a3, b1):
                await cl.close()

    run(scenario())


def test_an_open_connection_is_closed_when_its_token_expires(
    redis_url: str, redis_client: redis.Redis
) -> None:
    put_truck(redis_client, "SEA", 47.6, -122.3)

    async def scenario() -> None:
        async with running(settings(redis_url, auth=True, secret=SECRET)) as gw:
            short = sign_token(SECRET, "short", ["*"], int(time.time()) + 2)
            long = sign_token(SECRET, "long", ["*"], int(time.time()) + 600)
            c = await Client.open(gw.port, short)
            other = await Client.open(gw.port, long)
            await c.send({"op": "subscribe", "id": "v", "filter": {"region": "WEST"}})
            await c.expect_type("snapshot")
            assert await c.closed_with(timeout_s=15.0) == 4401
            assert c.received[-1]["type"] == "error"
            assert c.received[-1]["code"] == "TOKEN_EXPIRED"
            await other.barrier()  # a valid token's connection stays
            assert gw.metrics.expired._value.get() == 1
            await other.close()

    run(scenario())


def _alert(group: str, truck_id: str, dedup: str) -> MapAlert:
    raw = orjson.dumps(
        {
            "event_action": "trigger",
            "dedup_key": dedup,
            "payload": {
                "summary": f"{truck_id} offline",
                "source": "fleetpulse/tracking-job",
                "severity": "critical",
                "timestamp": "2026-11-25T20:10:00Z",
                "component": f"truck:{truck_id}",
                "group": group,
                "class": "truck_offline",
                "custom_details": {"truck_id": truck_id},
            },
        }
    )
    alert = decode_alert(raw)
    assert isinstance(alert, MapAlert) and alert.lat is None and alert.region == group
    return alert


def test_alerts_without_a_position_respect_the_token_regions(
    redis_url: str, redis_client: redis.Redis
) -> None:
    """Trucks the gateway has never seen (no position to test against the token's area): an
    alert reaches a region-limited client watching the truck only when the alert's region
    (`payload.group`) is one of the token's."""
    now = int(time.time())
    west = sign_token(SECRET, "west", ["WEST"], now + 600)
    everything = sign_token(SECRET, "all", ["*"], now + 600)

    async def scenario() -> None:
        async with running(settings(redis_url, auth=True, secret=SECRET)) as gw:
            w = await Client.open(gw.port, west)
            e = await Client.open(gw.port, everything)
            for cl in (w, e):
                flt = {"truck_ids": ["GHOST-MW", "GHOST-W"]}
                await cl.send({"op": "subscribe", "id": "t", "filter": flt})
                await cl.expect_type("snapshot")
            gw.on_alert(_alert("MIDWEST", "GHOST-MW", "truck_offline:GHOST-MW"))
            gw.on_alert(_alert("WEST", "GHOST-W", "truck_offline:GHOST-W"))

            def keys(frames: list[dict]) -> list[str]:  # type: ignore[type-arg]
                return [f["alert"]["dedup_key"] for f in frames if f.get("type") == "alert"]

            assert keys(await w.barrier()) == ["truck_offline:GHOST-W"]
            assert keys(await e.barrier()) == ["truck_offline:GHOST-MW", "truck_offline:GHOST-W"]
            await w.close()
            await e.close()

    run(scenario())


def test_a_regional_token_gets_the_delays_of_its_regions(
    redis_url: str, redis_client: redis.Redis
) -> None:
    """A shipment's region is its pickup region, as the delay job counts it
    (`delayjob:shipment:{id}` `counted_region`); one without is for all-region tokens only."""
    redis_client.zadd(
        "delays", {"shipment:S1": 5, "shipment:S2": 4, "shipment:S3": 3, "shipment:S4": 1}
    )
    for sid, region in (("S1", "WEST"), ("S2", "MIDWEST"), ("S4", "WEST")):
        redis_client.hset(f"delayjob:shipment:{sid}", "counted_region", region)
    now = int(time.time())
    west = sign_token(SECRET, "west", ["WEST"], now + 600)
    everything = sign_token(SECRET, "all", ["*"], now + 600)

    def listed(frame: dict) -> list[str]:  # type: ignore[type-arg]
        return [s["shipment_id"] for s in frame["shipments"]]

    async def scenario() -> None:
        async with running(settings(redis_url, auth=True, secret=SECRET)) as gw:
            w = await Client.open(gw.port, west)
            e = await Client.open(gw.port, everything)
            await w.send({"op": "delays"})
            await e.send({"op": "delays"})
            assert listed(await w.expect_type("delays")) == ["S1", "S4"]
            assert listed(await e.expect_type("delays")) == ["S1", "S2", "S3", "S4"]
            redis_client.hset("delayjob:shipment:S5", "counted_region", "WEST")
            redis_client.zadd("delays", {"shipment:S5": 2})
            assert listed(await w.expect_type("delays")) == ["S1", "S5", "S4"]
            assert not [m for m in w.received if m.get("type") == "error"]
            await w.close()
            await e.close()

    run(scenario())


def test_regional_delays_from_a_redis_cluster(redis_cluster_url: str) -> None:
    """The shipments' account hashes live on every node of a cluster: one pipeline reads them."""
    from tests.integration.redis_cluster_data import cluster_client, node_port
    from udfs.contract import delay_account_key

    r = cluster_client(redis_cluster_url)
    sids = [f"S{i}" for i in range(1, 10)]
    assert len({node_port(r, delay_account_key(s)) for s in sids}) == 3
    r.zadd("delays", {f"shipment:{s}": 1 + i % 5 for i, s in enumerate(sids)})
    for i, sid in enumerate(sids):
        r.hset(delay_account_key(sid), "counted_region", "WEST" if i % 2 == 0 else "SOUTH")
    west = sign_token(SECRET, "west", ["WEST"], int(time.time()) + 600)

    async def scenario() -> None:
        async with running(settings(redis_cluster_url, auth=True, secret=SECRET)) as gw:
            c = await Client.open(gw.port, west)
            await c.send({"op": "delays"})
            frame = await c.expect_type("delays")
            got = {s["shipment_id"] for s in frame["shipments"]}
            assert got == {s for i, s in enumerate(sids) if i % 2 == 0}
            await c.close()

    try:
        run(scenario())
    finally:
        r.close()
