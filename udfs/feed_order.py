"""Event-time order for the truck feed (pure): hold pings and assignments, apply them in order.

Why: the feed's output depends on the order of its inputs. :func:`udfs.truck_speed.on_assignment`
seeds a new shipment with the truck's newest fix, and a ping already applied is never
replayed, so applying inputs as they *arrive* made ``shipment_at_risk`` depend on which Kafka
topic was read faster: a `fleet.gps` backlog read ahead of `fleet.scans` gave a shipment only
fixes after its deadline (DESIGN.md point 4 forbids that). The Flink adapter therefore holds
each input until the watermark passes it and then applies it with :func:`apply_in_order`, in
one total order that depends only on the inputs' contents.

Inputs are plain tuples, cheap to pickle into Flink state:

* assignment ``(ts, ASSIGNMENT, shipment_id, active)``
* ping ``(ts, PING, lat, lng, speed_kph)``

At equal ``ts`` an assignment goes first (then the shipment also gets the fix of the ping at
that instant, whatever the arrival order), and equal kinds are ordered by content.

Inputs are grouped by second: :func:`release_time` is the one event-time timer per truck and
second, which the watermark fires once every input of that second is behind it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from udfs.shipment_state import TruckFix
from udfs.truck_speed import FeedConfig, TruckFeed, on_assignment, on_ping

ASSIGNMENT = 0
PING = 1

# (ts, ASSIGNMENT, shipment_id, active) or (ts, PING, lat, lng, speed_kph)
FeedInput = tuple[Any, ...]

NOTHING_RELEASED = -(2**63)  # released_until before any processing-time fallback


def assignment_input(shipment_id: str, ts: int, active: bool) -> FeedInput:
    """A scan put ``shipment_id`` on the truck (active) or delivered it (not active)."""
    return (ts, ASSIGNMENT, shipment_id, active)


def ping_input(ts: int, lat: float, lng: float, speed_kph: float | None) -> FeedInput:
    """A valid GPS ping of the truck."""
    return (ts, PING, lat, lng, speed_kph)


def release_time(ts: int) -> int:
    """The last millisecond of ``ts``'s second: one timer serves every input of that second."""
    return ts - ts % 1000 + 999


def order_key(x: FeedInput) -> tuple[int, int, str, float, float, float]:
    """Total order on inputs: time, assignment before ping, then content (so neither two
    pings nor two assignments of one instant depend on which arrived first)."""
    if x[1] == ASSIGNMENT:
        return (x[0], ASSIGNMENT, str(x[2]), float(bool(x[3])), 0.0, 0.0)
    speed = x[4]
    return (x[0], PING, "", float(x[2]), float(x[3]), -1.0 if speed is None else float(speed))


def applies_now(ts: int, watermark: int, released_until: int) -> bool:
    """True if an input at ``ts`` is behind what the feed has already released: its second's
    timer has fired (watermark) or a processing-time fallback went past it. Such an input is
    late and applied at once; every other one is held."""
    return release_time(ts) <= max(watermark, released_until)


def apply_in_order(feed: TruckFeed, inputs: Iterable[FeedInput], cfg: FeedConfig) -> list[TruckFix]:
    """Apply ``inputs`` to ``feed`` in :func:`order_key` order; the fixes they produce."""
    fixes: list[TruckFix] = []
    for x in sorted(inputs, key=order_key):
        if x[1] == ASSIGNMENT:
            fixes += on_assignment(feed, x[2], x[0], x[3], cfg)
        else:
            fixes += on_ping(feed, x[0], x[2], x[3], x[4], cfg)
    return fixes
