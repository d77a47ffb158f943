"""Scan parsing and validation: any bytes in, a :class:`Scan` or a :class:`Rejection` out.

Never raises on input: every way a record can be wrong maps to a contract reason code, so the
delay job can dead-letter it with its origin instead of failing or dropping it silently.
"""

from __future__ import annotations

import math
import re
from typing import Any

from udfs.models import Reason, Rejection, Scan, ScanType, decode_object

ID_RE = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
MAX_FUTURE_MS = 5 * 60 * 1000
MIN_TS_MS = 946_684_800_000  # 2000-01-01: anything earlier is a unit error (seconds, say)
MAX_TS_MS = 221_845_392_000_000  # 9000-01-01 whatever the clock: udfs.ping_validation.MAX_TS_MS
# A promise further than this from its scan is a unit or typing error, not an SLA; it also keeps
# every deadline the delay job derives from it (promise + severity bands, + retention) far
# inside what a Java long timer and a Redis score accept.
MAX_PROMISE_DISTANCE_MS = 365 * 24 * 3600 * 1000
_SCAN_TYPES = {t.value: t for t in ScanType}


def _ident(d: dict[str, Any], name: str, required: bool) -> str | None | Rejection:
    v = d.get(name)
    if v is None:
        return Rejection(Reason.MISSING_FIELD, f"{name} is missing") if required else None
    if not isinstance(v, str):
        return Rejection(Reason.BAD_TYPE, f"{name} must be a string, got {type(v).__name__}")
    if not ID_RE.fullmatch(v):
        return Rejection(Reason.BAD_VALUE, f"{name} must be 1-64 chars of [A-Za-z0-9_.:-]")
    return v


def _epoch_ms(d: dict[str, Any], name: str, required: bool) -> int | None | Rejection:
    v = d.get(name)
    if v is None:
        return Rejection(Reason.MISSING_FIELD, f"{name} is missing") if required else None
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    if isinstance(v, bool) or not isinstance(v, int):
        return Rejection(Reason.BAD_TYPE, f"{name} must be integer epoch milliseconds")
    if v < MIN_TS_MS:
        return Rejection(Reason.BAD_VALUE, f"{name} {v} is before 2000 (seconds instead of ms?)")
    return v


def _point(
    d: dict[str, Any], lat_name: str, lng_name: str
) -> tuple[float, float] | None | Rejection:
    """Both coordinates or neither; numbers in range."""
    lat, lng = d.get(lat_name), d.get(lng_name)
    if lat is None and lng is None:
        return None
    if lat is None or lng is None:
        missing = lat_name if lat is None else lng_name
        return Rejection(Reason.MISSING_FIELD, f"{missing} is missing (its pair is present)")
    for name, v in ((lat_name, lat), (lng_name, lng)):
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            return Rejection(Reason.BAD_TYPE, f"{name} must be a finite number")
    if not -90.0 <= lat <= 90.0:
        return Rejection(Reason.BAD_COORDINATES, f"{lat_name} {lat} outside -90..90")
    if not -180.0 <= lng <= 180.0:
        return Rejection(Reason.BAD_COORDINATES, f"{lng_name} {lng} outside -180..180")
    return float(lat), float(lng)


def parse_scan(raw: bytes, now_ms: int) -> Scan | Rejection:
    """Decode and validate one `fleet.scans` record; ``now_ms`` is the wall clock (injected).

    ``PICKED_UP`` must carry ``promised_by``: without the SLA deadline the shipment could never
    be judged late, which is worse than a dead letter an operator can see and fix.
    """
    d = decode_object(raw)
    if isinstance(d, Rejection):
        return d

    ids: dict[str, str | None] = {}
    for name, required in (
        ("scan_id", True),
        ("shipment_id", True),
        ("truck_id", False),
        ("hub_id", False),
    ):
        v = _ident(d, name, required)
        if isinstance(v, Rejection):
            return v
        ids[name] = v

    type_raw = d.get("type")
    if type_raw is None:
        return Rejection(Reason.MISSING_FIELD, "type is missing")
    if not isinstance(type_raw, str):
        return Rejection(Reason.BAD_TYPE, "type must be a string")
    scan_type = _SCAN_TYPES.get(type_raw)
    if scan_type is None:
        return Rejection(Reason.UNKNOWN_SCAN_TYPE, f"unknown scan type {type_raw[:40]!r}")

    ts = _epoch_ms(d, "ts", True)
    if isinstance(ts, Rejection):
        return ts
    assert ts is not None
    if ts > now_ms + MAX_FUTURE_MS:
        return Rejection(
            Reason.FUTURE_TIMESTAMP,
            f"ts is {(ts - now_ms) / 1000:.0f}s ahead of the clock (max 300s)",
        )
    if ts > MAX_TS_MS:
        return Rejection(Reason.FUTURE_TIMESTAMP, f"ts {ts} is after 9000-01-01")
    promised_by = _epoch_ms(d, "promised_by", scan_type is ScanType.PICKED_UP)
    if isinstance(promised_by, Rejection):
        return promised_by
    if promised_by is not None and abs(promised_by - ts) > MAX_PROMISE_DISTANCE_MS:
        return Rejection(
            Reason.BAD_VALUE,
            f"promised_by is {(promised_by - ts) / 86_400_000:.0f} days from ts (max 365)",
        )

    here = _point(d, "lat", "lng")
    if isinstance(here, Rejection):
        return here
    dest = _point(d, "dest_lat", "dest_lng")
    if isinstance(dest, Rejection):
        return dest
    scan_id, shipment_id = ids["scan_id"], ids["shipment_id"]
    assert scan_id is not None and shipment_id is not None
    return Scan(
        scan_id=scan_id,
        shipment_id=shipment_id,
        type=scan_type,
        ts=ts,
        truck_id=ids["truck_id"],
        hub_id=ids["hub_id"],
        lat=here[0] if here else None,
        lng=here[1] if here else None,
        promised_by=promised_by,
        dest_lat=dest[0] if dest else None,
        dest_lng=dest[1] if dest else None,
    )
