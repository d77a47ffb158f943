"""Events API v2 request bodies and headers per receiver type (pure)."""

from __future__ import annotations

import orjson

from alerting.config import ReceiverConfig
from alerting.signature import DELIVERY_ID_HEADER, signature_headers

CLIENT = "fleetpulse"


def body(receiver: ReceiverConfig, event: bytes) -> bytes:
    """The exact JSON body: ``routing_key`` (and ``client`` on a trigger) followed by the fields
    of the stored event (JSON object bytes), spliced without re-encoding."""
    routing_key = receiver.routing_key or receiver.name
    head = b'{"routing_key":' + orjson.dumps(routing_key)
    if event.startswith(b'{"event_action":"trigger"'):
        head += b',"client":' + orjson.dumps(CLIENT)
    rest = event[1:]
    return head + (b"," + rest if rest != b"}" else b"}")


def headers(
    receiver: ReceiverConfig, payload: bytes, delivery_id: int, now_s: int
) -> dict[str, str]:
    h = {
        "Content-Type": "application/json",
        "User-Agent": "fleetpulse-alerting/1",
        DELIVERY_ID_HEADER: str(delivery_id),
    }
    h.update(receiver.headers)
    if receiver.type == "webhook" and receiver.secret:
        h.update(signature_headers(receiver.secret, now_s, payload))
    return h
