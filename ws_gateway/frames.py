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
    return (
        b'{"type":"position","sub":'
        + sub_json
        + b',"truck":'
        + truck_json
        + b',"seq":"'
        + seq
        + tail
    )


def snapshot(sub_id: str, trucks: list[dict[str, Any]], seq: str) -> bytes:
    return orjson.dumps({"type": "snapshot", "sub": sub_id, "trucks": trucks, "seq": seq})


def alert(alert_event: dict[str, Any]) -> bytes:
    return orjson.dumps({"type": "alert", "alert": alert_event})


# Server-to-client websocket text frame headers (RFC 6455 5.2: FIN + opcode 1, unmasked), for
# the payload lengths positions have; longer payloads build theirs.
_HEADERS = [bytes((0x81, n)) for n in range(126)] + [
    b"\x81\x7e" + n.to_bytes(2, "big") for n in range(126, 4096)
]


def wire_text(payloads: list[bytes]) -> bytes:
    """``payloads`` as consecutive websocket text frames, ready for the socket.

    What websockets' ``send`` would write for each (no extensions: compression is off), built
    without a frame object per message; one shared payload costs one header per client.
    """
    parts: list[bytes] = []
    append = parts.append
    headers = _HEADERS
    for p in payloads:
        n = len(p)
        if n < 4096:
            append(headers[n])
        elif n < 65536:
            append(b"\x81\x7e" + n.to_bytes(2, "big"))
        else:
            append(b"\x81\x7f" + n.to_bytes(8, "big"))
        append(p)
    return b"".join(parts)
