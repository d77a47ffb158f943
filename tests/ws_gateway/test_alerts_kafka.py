"""Critical alerts from Kafka reach the clients whose area contains them (real broker)."""

from __future__ import annotations

import orjson
import pytest
import redis
from kafka import KafkaProducer
from wsgw_helpers import Client, eventually, put_truck, run, settings

from udfs.contract import TopicNames
from ws_gateway.server import running

pytestmark = pytest.mark.integration


def alert(
    key: str, severity: str, lat: float | None, lng: float | None, truck_id: str | None = None
) -> bytes:
    details: dict[str, object] = {"shipment_id": "S1"}
    if lat is not None:
        details |= {"lat": lat, "lng": lng}
    if truck_id:
        details["truck_id"] = truck_id
    return orjson.dumps(
        {
            "event_action": "trigger",
            "dedup_key": key,
            "payload": {
                "summary": key,
                "source": "fleetpulse/test",
                "severity": severity,
                "timestamp": "2026-11-25T20:10:00Z",
                "component": "shipment:S1",
                "group": "WEST",
                "class": key.split(":")[0],
                "custom_details": details,
            },
        }
    )


def test_critical_alerts_go_to_clients_whose_area_contains_them(
    redis_url: str, redis_client: redis.Redis, kafka_bootstrap: str, unique_topics: TopicNames
) -> None:
    put_truck(redis_client, "T7", 35.0, -90.0)

    async def scenario() -> None:
        s = settings(redis_url, bootstrap=kafka_bootstrap, alerts_topic=unique_topics.alerts)
        async with running(s) as gw:
            await eventually(lambda: gw.health()["alerts"] is True, 30, "alert reader ready")
            west = await Client.open(gw.port)
            east = await Client.open(gw.port)
            watcher = await Client.open(gw.port)
            await west.send(
                {"op": "subscribe", "id": "w", "filter": {"bbox": [-125, 40, -120, 45]}}
            )
            await east.send({"op": "subscribe", "id": "e", "filter": {"bbox": [-80, 35, -70, 45]}})
            await watcher.send({"op": "subscribe", "id": "t", "filter": {"truck_ids": ["T7"]}})
            for c in (west, east, watcher):
                await c.expect_type("snapshot")
            producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
            for value in (
                alert("shipment_late:S1", "error", 42.0, -122.0),  # not critical
                alert("shipment_late:S2", "critical", 42.0, -122.0),
                alert("truck_offline:T7", "critical", None, None, "T7"),
            ):
                producer.send(unique_topics.alerts, value)
            producer.flush()
            producer.close()
            got = await west.expect_type("alert", timeout_s=15)
            assert got["alert"]["dedup_key"] == "shipment_late:S2"
            got = await watcher.expect_type("alert", timeout_s=15)
            assert got["alert"]["dedup_key"] == "truck_offline:T7"
            for c in (west, east, watcher):
                rest = await c.barrier()
                assert not any(m["type"] == "alert" for m in rest)
            assert not any(m["type"] == "alert" for m in east.received)
            assert gw.metrics.alerts._value.get() == 2

    run(scenario(), timeout_s=90)
