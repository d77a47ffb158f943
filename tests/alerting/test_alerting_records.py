from __future__ import annotations

import orjson
import pytest
from alerting_receiver import alert_doc, events_v2_problems

from alerting import wire
from alerting.config import ReceiverConfig
from alerting.records import Alert, decode
from udfs.models import AlertEvent, Rejection

pytestmark = pytest.mark.unit


def test_contract_alert_decodes_with_labels() -> None:
    ev = AlertEvent(
        "trigger",
        "shipment_late",
        "S17",
        "Shipment S17 is late",
        "fleetpulse/delay",
        "error",
        1764101400000,
        "shipment:S17",
        "WEST",
        {"shipment_id": "S17", "truck_id": "T42", "lat": 45.1, "lng": -122.9},
    )
    a = decode(ev.to_json(), record_ts_ms=123)
    assert isinstance(a, Alert)
    assert a.dedup_key == "shipment_late:S17"
    assert a.severity == "error"
    assert a.record_ts_ms == 123
    assert a.labels["class"] == "shipment_late"
    assert a.labels["group"] == "WEST"
    assert a.labels["truck_id"] == "T42"
    assert a.links and "openstreetmap" in a.links[0]["href"]
    assert Alert.from_dict(orjson.loads(orjson.dumps(a.to_dict()))) == a


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"{not json", "MALFORMED_JSON"),
        (b"[1, 2]", "BAD_TYPE"),
        (None, "MISSING_FIELD"),
        (orjson.dumps({"dedup_key": "a:b", "payload": {}}), "MISSING_FIELD"),
        (orjson.dumps({**alert_doc(), "event_action": "explode"}), "BAD_VALUE"),
        (orjson.dumps({**alert_doc(), "dedup_key": ""}), "BAD_TYPE"),
        (orjson.dumps({**alert_doc(), "dedup_key": "x" * 256}), "BAD_VALUE"),
        (orjson.dumps({"event_action": "trigger", "dedup_key": "a:b"}), "MISSING_FIELD"),
        (orjson.dumps(alert_doc(severity="fatal")), "BAD_VALUE"),
        (
            orjson.dumps(
                {**alert_doc(), "payload": {**alert_doc()["payload"], "timestamp": "soon"}}
            ),
            "BAD_VALUE",
        ),
        (
            orjson.dumps(
                {**alert_doc(), "payload": {**alert_doc()["payload"], "custom_details": 3}}
            ),
            "BAD_TYPE",
        ),
        (b'{"pad": "' + b"x" * 600_000 + b'"}', "TOO_LARGE"),
        (b"\xff\xfe", "MALFORMED_JSON"),
    ],
)
def test_bad_records_are_rejected_with_a_reason(raw: bytes | None, reason: str) -> None:
    r = decode(raw)
    assert isinstance(r, Rejection)
    assert r.reason == reason
    assert r.detail


def test_long_summary_is_truncated_and_resolve_needs_no_payload() -> None:
    doc = alert_doc()
    doc["payload"]["summary"] = "x" * 5000
    a = decode(orjson.dumps(doc))
    assert isinstance(a, Alert) and a.payload is not None
    assert len(a.payload["summary"]) == 1024
    r = decode(orjson.dumps({"event_action": "resolve", "dedup_key": "truck_offline:T1"}))
    assert isinstance(r, Alert)
    assert r.labels["class"] == "truck_offline"


@pytest.mark.parametrize("rtype", ["pagerduty", "webhook"])
@pytest.mark.parametrize("action", ["trigger", "acknowledge", "resolve"])
def test_wire_body_is_valid_events_v2(rtype: str, action: str) -> None:
    rcv = ReceiverConfig.model_validate(
        {"name": "r", "type": rtype, "url": "http://x/y", "routing_key": "R" * 32, "secret": "s"}
    )
    doc = alert_doc(action=action)
    doc["payload"]["summary"] = "y" * 3000
    a = decode(orjson.dumps(doc))
    assert isinstance(a, Alert)
    body = orjson.loads(wire.body(rcv, orjson.dumps(a.event())))
    assert events_v2_problems(body) == []
    assert body["routing_key"] == "R" * 32
    assert len(body["payload"]["summary"]) <= 1024
    hdrs = wire.headers(rcv, b"{}", 7, 1_700_000_000)
    assert hdrs["X-Fleetpulse-Delivery-Id"] == "7"
    assert ("X-Fleetpulse-Signature" in hdrs) == (rtype == "webhook")
