"""Typed records of the contract (docs/contract.md, udfs.contract): decoded once at a source,
encoded once at a sink."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import orjson

from udfs.pickling import pickled_by_fields


class Reason(StrEnum):
    """Dead-letter reason codes (contract)."""

    MALFORMED_JSON = "MALFORMED_JSON"
    MISSING_FIELD = "MISSING_FIELD"
    BAD_TYPE = "BAD_TYPE"
    BAD_COORDINATES = "BAD_COORDINATES"
    FUTURE_TIMESTAMP = "FUTURE_TIMESTAMP"
    STALE_TIMESTAMP = "STALE_TIMESTAMP"
    IMPOSSIBLE_SPEED = "IMPOSSIBLE_SPEED"
    UNKNOWN_SCAN_TYPE = "UNKNOWN_SCAN_TYPE"
    TOO_LARGE = "TOO_LARGE"
    BAD_VALUE = "BAD_VALUE"


class TruckStatus(StrEnum):
    MOVING = "MOVING"
    STOPPED = "STOPPED"
    OFFLINE = "OFFLINE"


class ScanType(StrEnum):
    PICKED_UP = "PICKED_UP"
    DEPARTED_HUB = "DEPARTED_HUB"
    ARRIVED_HUB = "ARRIVED_HUB"
    OUT_FOR_DELIVERY = "OUT_FOR_DELIVERY"
    DELIVERY_ATTEMPT_FAILED = "DELIVERY_ATTEMPT_FAILED"
    DELIVERED = "DELIVERED"
    EXCEPTION = "EXCEPTION"


@pickled_by_fields
@dataclass(slots=True)
class Ping:
    """A validated GPS ping (`fleet.gps`). Never changed once made, but not ``frozen``: the
    tracking job makes one per ping, and a frozen dataclass's ``__init__`` costs 7x more
    (``udfs.truck_state.PositionWrite``)."""

    truck_id: str
    ts: int
    lat: float
    lng: float
    speed_kph: float | None = None
    heading: float | None = None
    accuracy_m: float | None = None
    status: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "truck_id": self.truck_id,
            "ts": self.ts,
            "lat": self.lat,
            "lng": self.lng,
        }
        for name in ("speed_kph", "heading", "accuracy_m", "status"):
            v = getattr(self, name)
            if v is not None:
                d[name] = v
        return d

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict())


@pickled_by_fields
@dataclass(frozen=True, slots=True)
class Scan:
    """A validated parcel scan (`fleet.scans`)."""

    scan_id: str
    shipment_id: str
    type: ScanType
    ts: int
    truck_id: str | None = None
    hub_id: str | None = None
    lat: float | None = None
    lng: float | None = None
    promised_by: int | None = None
    dest_lat: float | None = None
    dest_lng: float | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "scan_id": self.scan_id,
            "shipment_id": self.shipment_id,
            "type": str(self.type),
            "ts": self.ts,
        }
        for name in ("truck_id", "hub_id", "lat", "lng", "promised_by", "dest_lat", "dest_lng"):
            v = getattr(self, name)
            if v is not None:
                d[name] = v
        return d

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict())


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a record is not valid: a contract reason code and a human-readable detail."""

    reason: Reason
    detail: str


# A dead letter is bounded whatever its input (contract, "Dead letter"): at most this much of the
# original value and of its Kafka key travels in it, and the detail is cut to a line.
DEAD_LETTER_RAW_BYTES = 64 * 1024
DEAD_LETTER_KEY_BYTES = 64 * 1024
DEAD_LETTER_DETAIL_CHARS = 1000
# The largest encoded dead letter: every byte of raw and key JSON-escaped at worst (\u00XX, six
# bytes each) plus the detail and the fixed fields. DLQ producers accept this much per record.
DEAD_LETTER_MAX_BYTES = (
    6 * (DEAD_LETTER_RAW_BYTES + DEAD_LETTER_KEY_BYTES + DEAD_LETTER_DETAIL_CHARS) + 4096
)
# What DLQ producers are configured to send at most (Kafka's max.request.size / librdkafka's
# message.max.bytes): above the largest dead letter, and the brokers' default record limit.
DEAD_LETTER_PRODUCER_MAX_BYTES = 1024 * 1024


def bounded_text(data: bytes, limit: int) -> tuple[str, str, bool]:
    """``(text, encoding, truncated)``: the first ``limit`` bytes of ``data`` as UTF-8 text, or as
    base64 when they are not UTF-8. A multi-byte character cut by the limit is dropped whole,
    so text that is UTF-8 stays text."""
    head = data[:limit]
    truncated = len(data) > limit
    try:
        return head.decode("utf-8"), "utf-8", truncated
    except UnicodeDecodeError as exc:
        cut_in_char = (
            truncated and exc.reason == "unexpected end of data" and exc.start >= len(head) - 3
        )
        if cut_in_char:
            try:
                return head[: exc.start].decode("utf-8"), "utf-8", truncated
            except UnicodeDecodeError:
                pass
    return base64.b64encode(head).decode("ascii"), "base64", truncated


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A record that could not be used, with where it came from (`fleet.dlq`).

    ``raw`` and ``key`` are the original record's value and Kafka key, whole: :meth:`to_dict`
    bounds them (the contract's 64 KiB of ``raw``, with ``raw_size``, ``raw_sha256`` and
    ``raw_truncated``), so a dead letter always fits a Kafka record however large its input.
    """

    source_topic: str
    partition: int
    offset: int
    reason: str
    detail: str
    raw: bytes
    ts: int
    key: bytes | None = None

    def to_dict(self) -> dict[str, Any]:
        raw_text, encoding, truncated = bounded_text(self.raw, DEAD_LETTER_RAW_BYTES)
        d: dict[str, Any] = {
            "source_topic": self.source_topic,
            "partition": self.partition,
            "offset": self.offset,
            "reason": self.reason,
            "detail": self.detail[:DEAD_LETTER_DETAIL_CHARS],
            "raw": raw_text,
            "raw_encoding": encoding,
            "raw_size": len(self.raw),
            "raw_sha256": hashlib.sha256(self.raw).hexdigest(),
            "raw_truncated": truncated,
            "key": None,
            "ts": self.ts,
        }
        if self.key is not None:
            key_text, key_encoding, key_truncated = bounded_text(self.key, DEAD_LETTER_KEY_BYTES)
            d["key"] = key_text
            if key_encoding != "utf-8":
                d["key_encoding"] = key_encoding
            if key_truncated:
                d["key_truncated"] = True
        return d

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict())


@dataclass(frozen=True, slots=True)
class GeofenceTransition:
    """A debounced `enter` or `exit` of a hub geofence (`fleet.geofence-events`)."""

    truck_id: str
    geofence_id: str
    transition: str
    ts: int
    lat: float
    lng: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "truck_id": self.truck_id,
            "geofence_id": self.geofence_id,
            "transition": self.transition,
            "ts": self.ts,
            "lat": self.lat,
            "lng": self.lng,
        }


def iso8601(ts_ms: int) -> str:
    """Epoch milliseconds as the ISO 8601 UTC string PagerDuty requires."""
    dt = datetime.fromtimestamp(ts_ms / 1000, tz=UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


PAGERDUTY_SEVERITIES = ("critical", "error", "warning", "info")


@dataclass(frozen=True, slots=True)
class AlertEvent:
    """An alert in the PagerDuty Events API v2 shape of the contract (`fleet.alerts`)."""

    event_action: str  # trigger | acknowledge | resolve
    alert_class: str
    subject_id: str
    summary: str
    source: str
    severity: str
    event_ts: int
    component: str
    group: str
    custom_details: dict[str, Any]

    @property
    def dedup_key(self) -> str:
        return f"{self.alert_class}:{self.subject_id}"

    def to_dict(self) -> dict[str, Any]:
        details = dict(self.custom_details)
        details.setdefault("event_ts", self.event_ts)
        return {
            "event_action": self.event_action,
            "dedup_key": self.dedup_key,
            "payload": {
                "summary": self.summary[:1024],
                "source": self.source,
                "severity": self.severity,
                "timestamp": iso8601(self.event_ts),
                "component": self.component,
                "group": self.group,
                "class": self.alert_class,
                "custom_details": details,
            },
        }

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict())


MAX_RECORD_BYTES = 64 * 1024


def decode_object(raw: bytes) -> dict[str, Any] | Rejection:
    """The JSON object in a record's bytes, or why there is none (the shared first step of
    every input validation)."""
    if len(raw) > MAX_RECORD_BYTES:
        return Rejection(Reason.TOO_LARGE, f"{len(raw)} bytes > {MAX_RECORD_BYTES}")
    try:
        d = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return Rejection(Reason.MALFORMED_JSON, str(exc)[:200])
    if not isinstance(d, dict):
        return Rejection(Reason.MALFORMED_JSON, f"expected a JSON object, got {type(d).__name__}")
    return d
