"""Server-to-client frames, encoded once. A position's truck JSON is encoded once per stream
entry and spliced into each subscription's frame (only ``sub`` differs between them)."""

from __future__ import annotations

from typing import Any

import orjson


def encode(obj: dict[str, Any]) -> bytes:
    return orjson.dumps(obj)


def error(code: str, message: str, **extra: Any) -> bytes:
    return orjson.dumps({"type": "error", "code": code, "message": message, **extra})


def position(sub_json: bytes, truck_json: bytes, seq: bytes, left: bool = False) -> bytes:
    """``{"type":"position","sub":..,"truck":..,"seq":..}``; ``left`` marks the last message
    about a truck that has left the subscription's area (the client removes it)."""
    tail = b'","left":true}' if left else b'"}'
    return b'{"type":"position","sub":' + sub_json + b',"truck":' + truck_json + \
        b',"seq":"' + seq + tail


def snapshot(sub_id: str, trucks: list[dict[str, Any]], seq: str) -> bytes:
    return orjson.dumps({"type": "snapshot", "sub": sub_id, "trucks": trucks, "seq": seq})


def alert(alert_event: dict[str, Any]) -> bytes:
    return orjson.dumps({"type": "alert", "alert": alert_event})
