"""Events API v2 request bodies and headers per receiver type (pure)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import orjson

from alerting.config import ReceiverConfig
from alerting.signature import DELIVERY_ID_HEADER, signature_headers

CLIENT = "fleetpulse"


def client_url(map_url: str, event: dict[str, Any]) -> str | None:
    """The map centred on the alert's subject: ``<map_url>?truck=<truck_id>``, else
    ``?lat=..&lng=..`` from ``custom_details``; None when the event names neither."""
    payload = event.get("payload")
    details = payload.get("custom_details") if isinstance(payload, dict) else None
    if not isinstance(details, dict):
        return None
    truck, lat, lng = details.get("truck_id"), details.get("lat"), details.get("lng")
    if isinstance(truck, str) and truck:
        query = urlencode({"truck": truck})
    elif all(isinstance(v, int | float) and not isinstance(v, bool) for v in (lat, lng)):
        query = urlencode({"lat": lat, "lng": lng})
    else:
        return None
    return map_url + ("&" if "?" in map_url else "?") + query


def body(receiver: ReceiverConfig, event: bytes) -> bytes:
    """The exact JSON body: ``routing_key`` (and on a trigger ``client``, and ``client_url``
    when the receiver has a ``map_url``) followed by the fields of the stored event (JSON
    object bytes), spliced without re-encoding."""
    routing_key = receiver.routing_key or receiver.name
    head = b'{"routing_key":' + orjson.dumps(routing_key)
    if event.startswith(b'{"event_action":"trigger"'):
        head += b',"client":' + orjson.dumps(CLIENT)
        url = client_url(receiver.map_url, orjson.loads(event)) if receiver.map_url else None
        if url:
            head += b',"client_url":' + orjson.dumps(url)
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
        h.update(
            signature_headers(receiver.secret, delivery_id, now_s, payload, receiver.signature)
        )
    return h
