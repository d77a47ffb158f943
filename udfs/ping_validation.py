"""GPS ping parsing and validation: any bytes in, a :class:`Ping` or a :class:`Rejection` out.

Never raises on input: every way a record can be wrong maps to a contract reason code.

Two paths with one verdict. Nearly every record is a well-formed ping of the contract's fields,
so :func:`parse_ping` first decodes it with msgspec straight into typed fields (types checked in
C, no dict) and applies the value checks; a record that this fast path does not accept for any
reason (an unknown field, a wrong type, a bad value, bad JSON) goes through
:func:`validate_ping`, the full validation, which names the reason. The fast path accepts only
what the full one accepts, with the same values (a property test holds them to it), and costs
about a third of it (docs/tracking.md).
"""

from __future__ import annotations

import math
import re
from typing import Any

import msgspec

from udfs.models import MAX_RECORD_BYTES, Ping, Reason, Rejection, decode_object

TRUCK_ID_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
MAX_FUTURE_MS = 5 * 60 * 1000
MIN_TS_MS = 946_684_800_000  # 2000-01-01: anything earlier is a unit error (seconds, say)
# 9000-01-01, whatever the injected clock says: a time after it is refused even from a clock set
# wrong, which keeps every time derived from an accepted one (deadlines, expiries) inside ISO
# 8601's year 9999 (alert timestamps) and far inside a Java long (Flink timers). Issue 27.
MAX_TS_MS = 221_845_392_000_000


def _number(d: dict[str, Any], name: str, required: bool) -> float | None | Rejection:
    if name not in d or d[name] is None:
        return Rejection(Reason.MISSING_FIELD, f"{name} is missing") if required else None
    v = d[name]
    if isinstance(v, bool) or not isinstance(v, int | float):
        return Rejection(Reason.BAD_TYPE, f"{name} must be a number, got {type(v).__name__}")
    if not math.isfinite(v):
        return Rejection(Reason.BAD_TYPE, f"{name} must be finite")
    return float(v)


NUMERIC_FIELDS = (
    ("lat", True),
    ("lng", True),
    ("speed_kph", False),
    ("heading", False),
    ("accuracy_m", False),
)


def _numbers(d: dict[str, Any]) -> list[float | None] | Rejection:
    """The numeric fields in :data:`NUMERIC_FIELDS` order, by :func:`_number`'s rules; a finite
    float or an int (the values of nearly every ping) is taken after one type test, since this
    runs for every ping the job reads."""
    values: list[float | None] = []
    for name, required in NUMERIC_FIELDS:
        v: Any = d.get(name)
        kind = type(v)
        if kind is float and v - v == 0.0:  # finite: inf - inf and nan - nan are nan
            values.append(v)
        elif kind is int:
            values.append(float(v))
        else:
            checked = _number(d, name, required)
            if isinstance(checked, Rejection):
                return checked
            values.append(checked)
    return values


class _WirePing(msgspec.Struct, forbid_unknown_fields=True):
    """The contract's ping fields as the fast path decodes them (unknown fields refused, so
    that a record with one gets the full validation's verdict on all its bytes)."""

    truck_id: str
    ts: int
    lat: float
    lng: float
    speed_kph: float | None = None
    heading: float | None = None
    accuracy_m: float | None = None
    status: str | None = None


_decode_wire = msgspec.json.Decoder(_WirePing).decode


def parse_ping(raw: bytes, now_ms: int) -> Ping | Rejection:
    """Decode and validate one `fleet.gps` record; ``now_ms`` is the wall clock (injected).
    The fast path first, then, for anything it does not accept, :func:`validate_ping`."""
    if len(raw) <= MAX_RECORD_BYTES:
        try:
            w = _decode_wire(raw)
        except Exception:  # noqa: BLE001 - any failure leaves the verdict to validate_ping
            w = None
        if (
            w is not None
            and TRUCK_ID_RE.fullmatch(w.truck_id)
            and MIN_TS_MS <= w.ts <= now_ms + MAX_FUTURE_MS
            and w.ts <= MAX_TS_MS
            and -90.0 <= w.lat <= 90.0
            and -180.0 <= w.lng <= 180.0
            and (w.lat != 0.0 or w.lng != 0.0)
            and (w.speed_kph is None or 0.0 <= w.speed_kph <= 300.0)
            and (w.heading is None or 0.0 <= w.heading <= 360.0)
            and (w.accuracy_m is None or w.accuracy_m - w.accuracy_m == 0.0)
        ):
            return Ping(
                w.truck_id, w.ts, w.lat, w.lng, w.speed_kph, w.heading, w.accuracy_m, w.status
            )
    return validate_ping(raw, now_ms)


def validate_ping(raw: bytes, now_ms: int) -> Ping | Rejection:
    """The full validation of one `fleet.gps` record: a ping, or the reason it is not one."""
    d = decode_object(raw)
    if isinstance(d, Rejection):
        return d

    truck_id = d.get("truck_id")
    if truck_id is None:
        return Rejection(Reason.MISSING_FIELD, "truck_id is missing")
    if not isinstance(truck_id, str):
        return Rejection(Reason.BAD_TYPE, "truck_id must be a string")
    if not TRUCK_ID_RE.fullmatch(truck_id):
        return Rejection(Reason.BAD_VALUE, "truck_id must be 1-64 chars of [A-Za-z0-9_.-]")

    ts = d.get("ts")
    if ts is None:
        return Rejection(Reason.MISSING_FIELD, "ts is missing")
    if isinstance(ts, bool) or not isinstance(ts, int):
        if isinstance(ts, float) and ts.is_integer():
            ts = int(ts)
        else:
            return Rejection(Reason.BAD_TYPE, "ts must be integer epoch milliseconds")
    if ts < MIN_TS_MS:
        return Rejection(Reason.BAD_VALUE, f"ts {ts} is before 2000 (seconds instead of ms?)")
    if ts > now_ms + MAX_FUTURE_MS:
        return Rejection(
            Reason.FUTURE_TIMESTAMP,
            f"ts is {(ts - now_ms) / 1000:.0f}s ahead of the clock (max 300s)",
        )
    if ts > MAX_TS_MS:
        return Rejection(Reason.FUTURE_TIMESTAMP, f"ts {ts} is after 9000-01-01")

    numbers = _numbers(d)
    if isinstance(numbers, Rejection):
        return numbers
    lat, lng, speed, heading, accuracy = numbers
    assert lat is not None and lng is not None
    if not -90.0 <= lat <= 90.0:
        return Rejection(Reason.BAD_COORDINATES, f"lat {lat} outside -90..90")
    if not -180.0 <= lng <= 180.0:
        return Rejection(Reason.BAD_COORDINATES, f"lng {lng} outside -180..180")
    if lat == 0.0 and lng == 0.0:
        return Rejection(Reason.BAD_COORDINATES, "null island (0, 0)")
    if speed is not None and not 0.0 <= speed <= 300.0:
        return Rejection(Reason.BAD_VALUE, f"speed_kph {speed} outside 0..300")
    if heading is not None and not 0.0 <= heading <= 360.0:
        return Rejection(Reason.BAD_VALUE, f"heading {heading} outside 0..360")
    status = d.get("status")
    if status is not None and not isinstance(status, str):
        return Rejection(Reason.BAD_TYPE, "status must be a string")
    return Ping(truck_id, ts, lat, lng, speed, heading, accuracy, status)
