"""The delay job's keyed state, typed: what each operator keeps per key besides the domain state.

In memory the operators use these dataclasses; in Flink's state each is stored as the list
layout checkpoints have held since the job's first version (pickled by PyFlink), so a
checkpoint or savepoint of an earlier version restores, and none of these classes is part of
a checkpoint (renaming them breaks nothing). A change of layout needs a reader of the old one
here, in ``from_stored``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from udfs.feed_order import NOTHING_RELEASED
from udfs.shipment_state import ShipmentState
from udfs.stall_fallback import Reference
from udfs.truck_speed import TruckFeed


def _reference(event_time: int | None, wall_ms: int | None) -> Reference | None:
    return None if event_time is None or wall_ms is None else (event_time, wall_ms)


@dataclass(slots=True)
class FeedBox:
    """A truck's feed (:class:`udfs.truck_speed.TruckFeed`), its stall-fallback timer (when it
    fires, and the reference it was set from) and the event time the fallback released its
    held inputs up to.

    Stored as ``[feed, fallback_at, reference event time, reference wall clock,
    released_until]``; a bare TruckFeed is the state of the job before inputs were held."""

    feed: TruckFeed
    fallback_at: int | None = None
    reference: Reference | None = None
    released_until: int = NOTHING_RELEASED

    @classmethod
    def from_stored(cls, truck_id: str, stored: Any) -> FeedBox:
        if stored is None:
            return cls(TruckFeed(truck_id))
        if isinstance(stored, TruckFeed):
            return cls(stored)
        feed, fallback_at, ref_event, ref_wall, released = stored
        return cls(feed, fallback_at, _reference(ref_event, ref_wall), released)

    def to_stored(self) -> list[Any]:
        ref_event, ref_wall = self.reference if self.reference is not None else (None, None)
        return [self.feed, self.fallback_at, ref_event, ref_wall, self.released_until]


@dataclass(slots=True)
class ShipmentBox:
    """A shipment's state (:class:`udfs.shipment_state.ShipmentState`), its event-time timer,
    its stall-fallback timer with the reference it was set from, and its refresh timer (the
    re-assertion of what it reported, every ``--alert-refresh-s``).

    Stored as ``[shipment, event_timer_at, fallback_at, reference event time, reference wall
    clock, refresh_at]``; the five-element layout before refreshes (2026-12-07) reads with no
    refresh timer, and the adapter starts one at the shipment's next input or timer."""

    shipment: ShipmentState
    event_timer_at: int | None = None
    fallback_at: int | None = None
    reference: Reference | None = None
    refresh_at: int | None = None

    @classmethod
    def from_stored(cls, shipment_id: str, stored: Any) -> ShipmentBox:
        if stored is None:
            return cls(ShipmentState(shipment_id))
        shipment, event_timer_at, fallback_at, ref_event, ref_wall, *rest = stored
        refresh_at = rest[0] if rest else None
        reference = _reference(ref_event, ref_wall)
        return cls(shipment, event_timer_at, fallback_at, reference, refresh_at)

    def to_stored(self) -> list[Any]:
        ref_event, ref_wall = self.reference if self.reference is not None else (None, None)
        return [
            self.shipment,
            self.event_timer_at,
            self.fallback_at,
            ref_event,
            ref_wall,
            self.refresh_at,
        ]
