"""One printable line per ``fleet.dlq`` record, for ``fleetpulse dlq`` (pure).

Anyone can write to the dead-letter topic, and a dead letter quotes hostile input by design:
every field shown goes through :func:`udfs.printable.printable`, and a record that is not
a dead letter at all is described by its size and digest instead of being parsed further.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from udfs.printable import printable

DETAIL_CHARS = 300
FIELD_CHARS = 120


def describe_dead_letter(value: bytes | None, partition: int, offset: int) -> str:
    """``source[partition]@offset REASON: detail (key ..., N bytes)``, or a note saying why
    the record at ``partition``/``offset`` of the DLQ itself cannot be read."""
    where = f"dlq[{partition}]@{offset}"
    if value is None:
        return f"(empty dead letter at {where})"
    try:
        d: Any = orjson.loads(value)
    except orjson.JSONDecodeError:
        return f"(unreadable dead letter at {where}: {_digest(value)})"
    if not isinstance(d, dict):
        return f"(unreadable dead letter at {where}: JSON {type(d).__name__}, {_digest(value)})"
    line = (
        f"{_field(d, 'source_topic')}[{_field(d, 'partition')}]@{_field(d, 'offset')} "
        f"{_field(d, 'reason')}: {printable(d.get('detail'), DETAIL_CHARS)}"
    )
    extras = []
    if d.get("key") is not None:
        extras.append(f"key {_field(d, 'key')}")
    if isinstance(d.get("raw_size"), int):
        extras.append(f"{d['raw_size']} bytes")
    if d.get("raw_truncated") is True:
        extras.append("raw truncated")
    return line + (f" ({', '.join(extras)})" if extras else "")


def _field(d: dict[str, Any], name: str) -> str:
    return printable(d.get(name), FIELD_CHARS)


def _digest(value: bytes) -> str:
    return f"{len(value)} bytes, sha256 {hashlib.sha256(value).hexdigest()[:16]}"
