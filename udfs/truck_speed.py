"""A truck's recent average speed and assigned shipments, for ``shipment_at_risk`` (pure).

The delay job reads `fleet.gps` itself (keyed by truck) rather than the tracking job's Redis
hash: the verdict then depends on the event-time history only (a replay gives the same
warnings), Redis holds only the instantaneous speed, and the job needs no per-shipment Redis
read. Fixes are fanned out to the truck's open shipments at most once per
``fix_interval_s`` of event time, so a truck carrying many parcels costs little.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from udfs.geo import haversine_km
from udfs.shipment_state import TruckFix


@dataclass(frozen=True, slots=True)
class FeedConfig:
    window_s: int = 30 * 60  # average over the last half hour of fixes
    fix_interval_s: int = 5 * 60
    max_shipments: int = 500  # per truck; the oldest assignment is dropped beyond this
    # A fix further from the last one than this speed allows is the tracking job's
    # IMPOSSIBLE_SPEED dead letter, and one teleported fix would skew the average for a whole
    # window: it is skipped. Fixes that keep disagreeing for ``reanchor_after_s`` restart the
    # track from the newest (the old anchor was the bad one, or the truck was moved).
    max_speed_kph: float = 250.0
    gps_tolerance_km: float = 0.1
    reanchor_after_s: int = 10 * 60


@dataclass(slots=True)
class TruckFeed:
    truck_id: str
    recent: list[tuple[int, float, float, float | None]] = field(default_factory=list)
    shipments: dict[str, int] = field(default_factory=dict)  # shipment -> assignment ts
    last_sent_ts: int = -1


def average_speed_kph(recent: list[tuple[int, float, float, float | None]]) -> float:
    """Great-circle distance over time across the window; reported speeds if too short."""
    if len(recent) >= 2 and recent[-1][0] - recent[0][0] >= 60_000:
        pairs = zip(recent, recent[1:], strict=False)
        km = sum(haversine_km(a[1], a[2], b[1], b[2]) for a, b in pairs)
        return km / ((recent[-1][0] - recent[0][0]) / 3_600_000)
    speeds = [r[3] for r in recent if r[3] is not None]
    return sum(speeds) / len(speeds) if speeds else 0.0


def _fixes(feed: TruckFeed, shipments: list[str]) -> list[TruckFix]:
    ts, lat, lng, _ = feed.recent[-1]
    speed = round(average_speed_kph(feed.recent), 3)
    return [TruckFix(s, feed.truck_id, ts, lat, lng, speed) for s in shipments]


def on_ping(
    feed: TruckFeed, ts: int, lat: float, lng: float, speed_kph: float | None, cfg: FeedConfig
) -> list[TruckFix]:
    """Record a fix; every ``fix_interval_s`` send one to each assigned shipment."""
    if feed.recent:
        last_ts, last_lat, last_lng, _ = feed.recent[-1]
        if ts <= last_ts:
            return []  # out of order or duplicate: the average uses the forward track only
        km = max(0.0, haversine_km(last_lat, last_lng, lat, lng) - cfg.gps_tolerance_km)
        if km / (max(ts - last_ts, 1000) / 3_600_000) > cfg.max_speed_kph:
            if ts - last_ts < cfg.reanchor_after_s * 1000:
                return []
            feed.recent.clear()
    feed.recent.append((ts, lat, lng, speed_kph))
    cutoff = ts - cfg.window_s * 1000
    while feed.recent and feed.recent[0][0] < cutoff:
        del feed.recent[0]
    if not feed.shipments or ts < feed.last_sent_ts + cfg.fix_interval_s * 1000:
        return []
    feed.last_sent_ts = ts
    return _fixes(feed, sorted(feed.shipments))


def on_assignment(
    feed: TruckFeed, shipment_id: str, ts: int, active: bool, cfg: FeedConfig
) -> list[TruckFix]:
    """A scan put the shipment on this truck (active) or delivered it (not active)."""
    if not active:
        feed.shipments.pop(shipment_id, None)
        return []
    known = shipment_id in feed.shipments
    feed.shipments[shipment_id] = max(ts, feed.shipments.get(shipment_id, ts))
    if len(feed.shipments) > cfg.max_shipments:
        oldest = min(feed.shipments, key=lambda s: feed.shipments[s])
        del feed.shipments[oldest]
    return [] if known or not feed.recent else _fixes(feed, [shipment_id])
