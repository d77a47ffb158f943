"""The gateway's websocket protocol (docs/contract.md) as msgspec Structs: text frames of JSON.

Each direction is a tagged union (`op` from the client, `type` from the server), so its
schema tells frames apart by that field. Besides the contract's frames, the gateway's own
additions are here too (``delays``/``ping`` ops; ``pong``, ``unsubscribed``, ``delays`` and
``lagging`` frames), so that everything a client can meet is described.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args

from msgspec import UNSET, Meta, Struct, UnsetType

from udfs.contract.records import (
    AlertRecord,
    DelaySeverity,
    EpochMs,
    Heading,
    Lat,
    Lng,
    NonEmpty,
    SpeedKph,
    TruckId,
)

MAX_SUBSCRIPTION_ID = 64
MAX_FILTER_TRUCK_IDS = 1000

SubId = Annotated[str, Meta(min_length=1, max_length=MAX_SUBSCRIPTION_ID)]
Seq = Annotated[str, Meta(min_length=1, description="opaque, increasing")]
Region = Literal["NORTHEAST", "MIDWEST", "SOUTH", "WEST"]
CENSUS_REGIONS: tuple[str, ...] = get_args(Region)


class GeoJsonPolygon(Struct, kw_only=True):
    """A GeoJSON Polygon or MultiPolygon, coordinates [lng, lat]."""

    type: Literal["Polygon", "MultiPolygon"]
    coordinates: list[Any]


class SubscriptionFilter(Struct, kw_only=True, forbid_unknown_fields=True):
    """Exactly one of its keys. `bbox` is [min_lng, min_lat, max_lng, max_lat]; `hub` is
    an alias of `geofence`."""

    bbox: tuple[Lng, Lat, Lng, Lat] | UnsetType = UNSET
    polygon: GeoJsonPolygon | UnsetType = UNSET
    region: Region | UnsetType = UNSET
    geofence: NonEmpty | UnsetType = UNSET
    hub: NonEmpty | UnsetType = UNSET
    truck_ids: (
        Annotated[list[TruckId], Meta(min_length=1, max_length=MAX_FILTER_TRUCK_IDS)] | UnsetType
    ) = UNSET


OneFilter = Annotated[
    SubscriptionFilter, Meta(extra_json_schema={"minProperties": 1, "maxProperties": 1})
]


# -- client to server ------------------------------------------------------------------------
class SubscribeFrame(Struct, tag_field="op", tag="subscribe", kw_only=True):
    """Subscribe, or replace the filter of the subscription with this id."""

    id: SubId
    filter: OneFilter
    since: Seq | UnsetType = UNSET


class UnsubscribeFrame(Struct, tag_field="op", tag="unsubscribe", kw_only=True):
    id: SubId


class ResumeFrame(Struct, tag_field="op", tag="resume", kw_only=True):
    """Replay what was missed after `since`, or fresh snapshots when that is not possible."""

    since: Seq


class DelaysRequestFrame(Struct, tag_field="op", tag="delays", kw_only=True):
    """Watch (or, with watch false, stop watching) the most severe late shipments."""

    watch: bool | UnsetType = UNSET


class PingFrame(Struct, tag_field="op", tag="ping", kw_only=True):
    """Answered with a pong carrying the latest seq."""


ClientFrame = SubscribeFrame | UnsubscribeFrame | ResumeFrame | DelaysRequestFrame | PingFrame


# -- server to client ------------------------------------------------------------------------
class TruckPosition(Struct, kw_only=True):
    """A truck as the gateway sends it."""

    truck_id: TruckId
    lat: Lat
    lng: Lng
    speed_kph: SpeedKph | UnsetType = UNSET
    heading: Heading | UnsetType = UNSET
    status: Annotated[str, Meta(examples=["MOVING", "STOPPED", "OFFLINE"])]
    ts_ms: EpochMs | UnsetType = UNSET
    region: str | UnsetType = UNSET


class SnapshotFrame(Struct, tag_field="type", tag="snapshot", kw_only=True):
    """The trucks inside a subscription now; `truncated` when there were more."""

    sub: SubId
    trucks: list[TruckPosition]
    seq: Seq
    truncated: bool | UnsetType = UNSET


class PositionFrame(Struct, tag_field="type", tag="position", kw_only=True):
    """A truck moved; `left` marks its last message after leaving the subscription."""

    sub: SubId
    truck: TruckPosition
    seq: Seq
    left: bool | UnsetType = UNSET


class AlertFrame(Struct, tag_field="type", tag="alert", kw_only=True):
    alert: AlertRecord


class ErrorFrame(Struct, tag_field="type", tag="error", kw_only=True):
    """A refused message; `sub` names the subscription it was about, if any."""

    code: Annotated[str, Meta(examples=["BAD_FILTER", "BAD_REQUEST", "UNAUTHORIZED"])]
    message: str
    sub: SubId | UnsetType = UNSET


class PongFrame(Struct, tag_field="type", tag="pong", kw_only=True):
    seq: Seq


class UnsubscribedFrame(Struct, tag_field="type", tag="unsubscribed", kw_only=True):
    sub: SubId


class DelayedShipment(Struct, kw_only=True):
    shipment_id: str
    severity: DelaySeverity


class DelaysFrame(Struct, tag_field="type", tag="delays", kw_only=True):
    """The most severe late shipments, most severe first."""

    shipments: list[DelayedShipment]


class LaggingFrame(Struct, tag_field="type", tag="lagging", kw_only=True):
    """Sent before closing a client too far behind."""

    message: str


ServerFrame = (
    SnapshotFrame
    | PositionFrame
    | AlertFrame
    | ErrorFrame
    | PongFrame
    | UnsubscribedFrame
    | DelaysFrame
    | LaggingFrame
)
