"""The gateway's alert reader against hostile input (issue 27): every poison record is counted
as malformed with its reason and logged (rate-limited), never raised and never silently dropped;
a critical alert sent after the corpus still reaches the client whose area contains it."""

from __future__ import annotations

import logging
from typing import Any

import orjson
import pytest
import redis
from alert_poison_reasons import EXPECTED_REASON
from poison_corpus import poison_records
from wsgw_helpers import Client, eventually, run, settings

from udfs.contract import TopicNames
from udfs.models import DEAD_LETTER_PRODUCER_MAX_BYTES
from ws_gateway import frames
from ws_gateway.alerts import AlertReader, Malformed, MapAlert, decode_alert
from ws_gateway.server import running

CORPUS = poison_records()


def critical(key: str, lat: float = 42.0, lng: float = -122.0, **extra: Any) -> dict[str, Any]:
    return {
        "event_action": "trigger",
        "dedup_key": key,
        "payload": {
            "summary": key,
            "source": "fleetpulse/test",
            "severity": "critical",
            "custom_details": {"lat": lat, "lng": lng, **extra},
        },
    }


@pytest.mark.unit
@pytest.mark.parametrize(
    ("name", "value"), [(n, v) for n, _, v in CORPUS], ids=[n for n, _, _ in CORPUS]
)
def test_every_poison_record_is_malformed_with_the_dispatchers_reason(
    name: str, value: bytes
) -> None:
    got = decode_alert(value, min_severity="info")
    assert isinstance(got, Malformed)
    assert got.reason == EXPECTED_REASON[name]  # the same codes as the dispatcher's dead letters
    assert 0 < len(got.detail) <= 200


@pytest.mark.unit
def test_records_the_map_cannot_show_are_malformed_not_raised() -> None:
    assert decode_alert(None) == Malformed("MISSING_FIELD", "record has no value (tombstone)")
    deep = orjson.dumps(critical("k:1", nest="PLACEHOLDER")).replace(
        b'"PLACEHOLDER"', b"[" * 1000 + b"]" * 1000
    )  # parses, but cannot be sent on
    got = decode_alert(deep)
    assert isinstance(got, Malformed) and got.reason == "BAD_VALUE"
    good = critical("k:1")
    for doc, reason in [
        ({"event_action": "trigger", "dedup_key": "k:1"}, "MISSING_FIELD"),
        ({**good, "dedup_key": 7}, "BAD_TYPE"),
        ({**good, "dedup_key": "  "}, "BAD_TYPE"),
        ({**good, "dedup_key": "k" * 300}, "BAD_VALUE"),
        ({"event_action": "resolve"}, "MISSING_FIELD"),
        ({**good, "payload": {**good["payload"], "summary": None}}, "BAD_TYPE"),
        ({**good, "payload": {**good["payload"], "timestamp": "nope"}}, "BAD_VALUE"),
        ({**good, "payload": {**good["payload"], "severity": ["critical"]}}, "BAD_TYPE"),
    ]:
        got = decode_alert(orjson.dumps(doc))
        # the dispatcher's verdict: the map never shows an alert the dispatcher dead-letters
        assert isinstance(got, Malformed) and got.reason == reason, doc


@pytest.mark.unit
def test_a_shown_alert_carries_its_frame() -> None:
    doc = critical("truck_offline:\u202eT1\x1b[2J", truck_id="T1")
    got = decode_alert(orjson.dumps(doc))
    assert isinstance(got, MapAlert) and got.frame == frames.alert(doc)


@pytest.mark.unit
def test_the_reader_counts_every_malformed_record_and_logs_at_most_once_per_period(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="ws_gateway.alerts")
    delivered: list[MapAlert] = []
    reasons: list[str] = []
    reader = AlertReader(
        "127.0.0.1:1",
        "fleet.alerts",
        delivered.append,
        on_malformed=reasons.append,
        log_every_s=3600,
    )
    for offset, (_, _, value) in enumerate(CORPUS):
        reader.handle(0, offset, value)
    reader.handle(1, 99, orjson.dumps(critical("shipment_late:S1")))
    assert reader.malformed == len(CORPUS)
    assert reasons == [EXPECTED_REASON[name] for name, _, _ in CORPUS]
    assert [a.event["dedup_key"] for a in delivered] == ["shipment_late:S1"]
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "malformed record on fleet.alerts partition 0 offset 0: TOO_LARGE: 999000 bytes > 524288"
    ]


@pytest.mark.integration
def test_poison_on_the_alerts_topic_is_counted_and_the_alert_after_it_arrives(
    redis_url: str, redis_client: redis.Redis, kafka_bootstrap: str, unique_topics: TopicNames
) -> None:
    from confluent_kafka import Producer

    async def scenario() -> None:
        s = settings(redis_url, bootstrap=kafka_bootstrap, alerts_topic=unique_topics.alerts)
        async with running(s) as gw:
            await eventually(lambda: gw.health()["alerts"] is True, 30, "alert reader ready")
            west = await Client.open(gw.port)
            await west.send(
                {"op": "subscribe", "id": "w", "filter": {"bbox": [-125, 40, -120, 45]}}
            )
            await west.expect_type("snapshot")
            producer = Producer(
                {
                    "bootstrap.servers": kafka_bootstrap,
                    "message.max.bytes": DEAD_LETTER_PRODUCER_MAX_BYTES,
                }
            )
            for _, key, value in CORPUS:
                producer.produce(unique_topics.alerts, value, key)
                producer.poll(0)
            producer.produce(unique_topics.alerts, orjson.dumps(critical("shipment_late:S9")))
            assert producer.flush(30) == 0

            got = await west.expect_type("alert", timeout_s=30)
            assert got["alert"]["dedup_key"] == "shipment_late:S9"

            def malformed() -> float:
                return sum(
                    sample.value
                    for metric in gw.metrics.alerts_malformed.collect()
                    for sample in metric.samples
                    if sample.name.endswith("_total")
                )

            await eventually(lambda: malformed() == len(CORPUS), 30, "every record counted")
            assert gw._alerts is not None and gw._alerts.malformed == len(CORPUS)
            assert gw.health()["alerts"] is True and gw._alerts.error is None
            assert gw.metrics.alerts._value.get() == 1
            # The reader says (every second) how far behind the topic's end it is: nothing,
            # once caught up.
            await eventually(
                lambda: gw.registry.get_sample_value("fleetpulse_gateway_alerts_lag_records") == 0,
                30,
                "the alert reader's lag to be reported as 0",
            )

    run(scenario(), timeout_s=120)


@pytest.mark.unit
def test_the_readers_lag_sums_each_partitions_records_behind() -> None:
    from ws_gateway.alerts import records_behind

    assert records_behind([(10, 4), (7, 7), (None, 3), (5, None), (2, 9)]) == 6


@pytest.mark.unit
def test_a_reasserted_trigger_is_shown_once_until_its_resolve() -> None:
    """The sources re-send open alerts every refresh: the map shows an identical re-sent
    trigger once; a changed one, or one after its resolve, again."""
    shown: list[MapAlert] = []
    reader = AlertReader("127.0.0.1:1", "fleet.alerts", shown.append)
    first = orjson.dumps(critical("truck_offline:T1"))
    for offset in range(3):  # the trigger, then two re-assertions of it
        reader.handle(0, offset, first)
    assert len(shown) == 1 and reader.repeats_skipped == 2
    changed = critical("truck_offline:T1")
    changed["payload"]["summary"] = "T1 offline for 20 min"
    reader.handle(0, 3, orjson.dumps(changed))
    assert len(shown) == 2
    resolve = {"event_action": "resolve", "dedup_key": "truck_offline:T1"}
    reader.handle(0, 4, orjson.dumps(resolve))
    reader.handle(0, 5, first)
    assert len(shown) == 3
    reader.handle(0, 6, orjson.dumps(critical("truck_offline:T2")))
    assert len(shown) == 4 and shown[-1].event["dedup_key"] == "truck_offline:T2"
