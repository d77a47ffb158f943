"""The Kafka records of docs/contract.md as msgspec Structs: the source of docs/schemas.

Structs rather than hand-written JSON Schema: msgspec derives the schema from declarations that
can also decode a record (``msgspec.json.decode(raw, type=PingRecord)``), so a typed reader and
the published schema cannot drift apart. Optional fields are ``UNSET``, not ``None``: the
contract leaves an unknown value out, and the schema then says "absent", not "null". Structs
allow fields they do not name (the contract lets code add fields).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

from udfs.models import Reason, ScanType

TRUCK_ID_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"
# scan_id, shipment_id, truck_id and hub_id of a scan (udfs.scan_validation.ID_RE)
SCAN_ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,64}$"
MIN_EVENT_TS_MS = 946_684_800_000  # 2000-01-01: readers refuse earlier times as unit errors
ISO_8601_UTC_PATTERN = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$"
DEAD_LETTER_RAW_CHARS = 87_384  # 64 KiB as base64 (as UTF-8 text it is fewer characters)
ALERT_CLASSES = (
    "shipment_late",
    "shipment_at_risk",
    "shipment_stuck_at_hub",
    "shipment_no_scan",
    "delivery_attempts_failed",
    "truck_offline",
    "truck_stopped_unplanned",
)

TruckId = Annotated[str, Meta(pattern=TRUCK_ID_PATTERN, description="1-64 of [A-Za-z0-9_.-]")]
ScanIdent = Annotated[str, Meta(pattern=SCAN_ID_PATTERN)]
EpochMs = Annotated[int, Meta(ge=0, description="epoch milliseconds, UTC")]
EventTs = Annotated[
    int, Meta(ge=MIN_EVENT_TS_MS, description="epoch milliseconds, UTC (2000 or later)")
]
Lat = Annotated[float, Meta(ge=-90, le=90, description="WGS84 latitude, degrees")]
Lng = Annotated[float, Meta(ge=-180, le=180, description="WGS84 longitude, degrees")]
SpeedKph = Annotated[float, Meta(ge=0, le=300)]
Heading = Annotated[float, Meta(ge=0, le=360, description="compass degrees")]
DelaySeverity = Annotated[int, Meta(ge=1, le=5, description="1 up to 30 min late ... 5 > 24 h")]
NonEmpty = Annotated[str, Meta(min_length=1)]
Deadline = Annotated[int, Meta(ge=MIN_EVENT_TS_MS, description="SLA deadline, epoch ms")]
KeyText = Annotated[
    str, Meta(max_length=DEAD_LETTER_RAW_CHARS, description="the original Kafka key, as text")
]


class PingRecord(Struct, kw_only=True):
    """GPS ping (`fleet.gps`, key truck_id)."""

    truck_id: TruckId
    ts: EventTs
    lat: Lat
    lng: Lng
    speed_kph: SpeedKph | UnsetType = UNSET
    heading: Heading | UnsetType = UNSET
    accuracy_m: float | UnsetType = UNSET
    status: Annotated[str, Meta(description="device-reported, free text")] | UnsetType = UNSET


class ScanRecord(Struct, kw_only=True):
    """Scan event (`fleet.scans`, key shipment_id). A scan_id seen before is a duplicate."""

    scan_id: ScanIdent
    shipment_id: ScanIdent
    type: ScanType
    ts: EventTs
    truck_id: ScanIdent | UnsetType = UNSET
    hub_id: ScanIdent | UnsetType = UNSET
    lat: Lat | UnsetType = UNSET
    lng: Lng | UnsetType = UNSET
    promised_by: Deadline | UnsetType = UNSET
    dest_lat: Lat | UnsetType = UNSET
    dest_lng: Lng | UnsetType = UNSET


# What a struct cannot say: a PICKED_UP carries the SLA deadline and the destination, and a
# position comes as a pair.
SCAN_RULES: dict[str, Any] = {
    "if": {"properties": {"type": {"const": ScanType.PICKED_UP.value}}, "required": ["type"]},
    "then": {"required": ["promised_by", "dest_lat", "dest_lng"]},
    "dependentRequired": {
        "lat": ["lng"],
        "lng": ["lat"],
        "dest_lat": ["dest_lng"],
        "dest_lng": ["dest_lat"],
    },
}
ScanSchema = Annotated[ScanRecord, Meta(extra_json_schema=SCAN_RULES)]


class AlertDetails(Struct, kw_only=True):
    """custom_details: the fields the contract names; each class adds its own."""

    event_ts: Annotated[int, Meta(ge=0, description="event time that caused the alert, ms")]
    shipment_id: ScanIdent | UnsetType = UNSET
    truck_id: str | None | UnsetType = UNSET
    delay_severity: DelaySeverity | UnsetType = UNSET
    late_by_s: Annotated[int, Meta(ge=0)] | UnsetType = UNSET
    lat: Lat | UnsetType = UNSET
    lng: Lng | UnsetType = UNSET


class AlertPayload(Struct, kw_only=True):
    """PagerDuty Events API v2 payload."""

    summary: Annotated[str, Meta(min_length=1, max_length=1024)]
    source: NonEmpty
    severity: Literal["critical", "error", "warning", "info"]
    timestamp: Annotated[
        str, Meta(pattern=ISO_8601_UTC_PATTERN, extra_json_schema={"format": "date-time"})
    ]
    component: NonEmpty
    group: Annotated[str, Meta(description="region of the subject")]
    alert_class: Annotated[str, Meta(min_length=1, examples=list(ALERT_CLASSES))] = msgspec.field(
        name="class"
    )
    custom_details: AlertDetails


class AlertRecord(Struct, kw_only=True):
    """Alert event (`fleet.alerts`, key dedup_key), PagerDuty Events API v2 shape without
    routing_key (the dispatcher adds each receiver's)."""

    event_action: Literal["trigger", "acknowledge", "resolve"]
    dedup_key: Annotated[
        str, Meta(pattern=r"^[^:]+:.+", max_length=255, description="<class>:<subject id>")
    ]
    payload: AlertPayload


class GeofenceRecord(Struct, kw_only=True):
    """Geofence transition (`fleet.geofence-events`, key truck_id), debounced."""

    truck_id: TruckId
    geofence_id: NonEmpty
    transition: Literal["enter", "exit"]
    ts: EpochMs
    lat: Lat
    lng: Lng


class DeadLetterRecord(Struct, kw_only=True):
    """Dead letter (`fleet.dlq`, key source topic): a record a reader could not use, bounded
    whatever its input."""

    source_topic: str
    partition: Annotated[int, Meta(ge=0)]
    offset: Annotated[int, Meta(ge=0)]
    reason: Reason
    detail: Annotated[str, Meta(max_length=1000)]
    raw: Annotated[
        str,
        Meta(
            max_length=DEAD_LETTER_RAW_CHARS,
            description="first 64 KiB of the original value, as text; base64 if not UTF-8",
        ),
    ]
    raw_encoding: Literal["utf-8", "base64"]
    raw_size: Annotated[int, Meta(ge=0, description="bytes of the original value")]
    raw_sha256: Annotated[str, Meta(pattern=r"^[0-9a-f]{64}$")]
    raw_truncated: bool
    key: KeyText | None
    key_encoding: Literal["utf-8", "base64"] | UnsetType = UNSET
    key_truncated: bool | UnsetType = UNSET
    ts: EpochMs
