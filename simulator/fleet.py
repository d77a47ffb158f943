"""The clean fleet: trucks driving hub to hub and the shipments they carry, in event-time order.

Pure generation, no I/O: :class:`FleetSimulator` yields :class:`Record` values (topic kind, key,
value bytes, the event-clock moment to send it) and feeds a :class:`~simulator.truth.TruthBuilder`
with everything it emits, so the ground truth describes exactly the stream that was produced.

How a run unfolds: each truck has a plan of motion segments (dwell at a hub, drive, rest,
breakdown) extended one hub cycle at a time, ahead of its next ping. Planning a cycle also
schedules that cycle's scans (pickups, departures, arrivals, last-mile events) in a heap, so a
scan is always created before the stream reaches its timestamp and both streams merge in order.
Every random choice comes from a per-truck or per-purpose ``random.Random`` seeded from the run
seed, so a seed gives the same bytes on every machine.
"""

from __future__ import annotations

import heapq
import math
import random
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import NamedTuple

import orjson

from simulator.config import SimConfig
from simulator.geo import Hub, bearing_deg, haversine_m, interpolate, load_hubs, offset_m
from simulator.network import neighbours
from simulator.truth import GroundTruth, TruthBuilder

MIN = 60_000
HOUR = 3_600_000

GPS = "gps"
SCANS = "scans"

# Forced first-trip scenarios of trucks 0..5 when Trouble.guaranteed is set.
GUARANTEED = ("silent", "breakdown", "late", "stuck", "failed", "lost")


class Record(NamedTuple):
    """One record for a topic kind (``gps`` or ``scans``): key and value as sent, and when."""

    topic: str
    key: bytes
    value: bytes
    emit_ms: int


class Segment(NamedTuple):
    """A stretch of a truck's plan: constant speed along a great circle, or a stop."""

    t0: int
    t1: int
    lat0: float
    lng0: float
    lat1: float
    lng1: float
    speed_kph: float
    kind: str  # dwell | drive | rest | breakdown


@dataclass
class Shipment:
    id: str
    truck_id: str
    route: list[str]  # hubs where the truck stops with it; the last is the final hub
    dest_lat: float
    dest_lng: float
    promised_by: int
    scenario: str  # normal | late | stuck | failed | lost


@dataclass
class Truck:
    idx: int
    id: str
    rng: random.Random
    hub: Hub
    cruise_kph: float
    skew_ms: int
    prev_hub_id: str | None = None
    queue: list[str] = field(default_factory=list)
    segments: deque[Segment] = field(default_factory=deque)
    plan_end: int = 0
    cargo: list[Shipment] = field(default_factory=list)
    silences: deque[tuple[int, int]] = field(default_factory=deque)
    forced_leg: str | None = None
    forced_shipment: str | None = None
    heading: float = 0.0


class FleetSimulator:
    """Generates a run; :meth:`run` yields the faulty stream, :attr:`truth` is known after it."""

    def __init__(self, config: SimConfig, hubs: tuple[Hub, ...] | None = None) -> None:
        self.cfg = config
        self.hubs = hubs if hubs is not None else load_hubs()
        self.hub_by_id = {h.id: h for h in self.hubs}
        self.adj = neighbours(self.hubs)
        self.builder = TruthBuilder(config, self.hubs)
        self._scans: list[tuple[int, int, Record]] = []
        self._seq = 0
        self._scan_no = 0
        self._ship_no = 0
        self._truth: GroundTruth | None = None

    # -- public API -----------------------------------------------------------------------

    def run(self, duration_s: float) -> Iterator[Record]:
        """The stream with faults injected, in emission order; then :attr:`truth` is set."""
        from simulator.faults import FaultInjector

        injector = FaultInjector(self.cfg, self.builder, self.hubs)
        yield from injector.apply(self.clean(duration_s))
        self._truth = self.builder.finalize(self.cfg.start_ms + int(duration_s * 1000))

    @property
    def truth(self) -> GroundTruth:
        if self._truth is None:
            raise RuntimeError("the ground truth is known once run() has been consumed")
        return self._truth

    def clean(self, duration_s: float) -> Iterator[Record]:
        """The fault-free stream in event-time order (pings and scans merged)."""
        cfg = self.cfg
        start = cfg.start_ms
        end = start + int(duration_s * 1000)
        interval = int(cfg.ping_interval_s * 1000)
        jitter = max(1, interval // 30)
        trucks = [self._new_truck(i) for i in range(cfg.trucks)]
        ticks: list[tuple[int, int]] = []
        for tr in trucks:
            self._plan_cycle(tr, start, first=True)
            heapq.heappush(ticks, (start + tr.rng.randrange(interval), tr.idx))
        horizon = 2 * interval + jitter
        while ticks:
            t, idx = ticks[0]
            if self._scans and self._scans[0][0] <= t:
                ts, _, rec = heapq.heappop(self._scans)
                if ts > end:
                    break
                self.builder.on_scan(rec.value)
                yield rec
                continue
            if t > end:
                break
            heapq.heappop(ticks)
            tr = trucks[idx]
            while tr.plan_end <= t + horizon:
                self._plan_cycle(tr, tr.plan_end, first=False)
            while tr.silences and tr.silences[0][1] <= t:
                tr.silences.popleft()
            if not (tr.silences and tr.silences[0][0] <= t):
                yield self._ping(tr, t)
            heapq.heappush(ticks, (t + interval + tr.rng.randint(-jitter, jitter), idx))

    # -- trucks and motion ------------------------------------------------------------------

    def _new_truck(self, i: int) -> Truck:
        cfg = self.cfg
        rng = random.Random(f"fleetpulse-truck:{cfg.seed}:{i}")
        hub = self.hubs[rng.randrange(len(self.hubs))]
        cruise = rng.uniform(cfg.min_cruise_kph, cfg.max_speed_kph)
        skew = 0
        if rng.random() < cfg.faults.skew_share:
            skew = int(rng.uniform(-cfg.faults.skew_max_s, cfg.faults.skew_max_s) * 1000)
        tr = Truck(i, f"T{i:05d}", rng, hub, cruise, skew)
        if cfg.trouble.guaranteed and i < len(GUARANTEED):
            kind = GUARANTEED[i]
            if kind in ("silent", "breakdown"):
                tr.forced_leg = kind
            else:
                tr.forced_shipment = kind
        return tr

    def _ping(self, tr: Truck, t: int) -> Record:
        segs = tr.segments
        while len(segs) > 1 and segs[0].t1 <= t:
            segs.popleft()
        s = segs[0]
        if s.t1 > s.t0 and s.speed_kph > 0:
            f = (t - s.t0) / (s.t1 - s.t0)
            lat, lng = interpolate(s.lat0, s.lng0, s.lat1, s.lng1, f)
            tr.heading = bearing_deg(lat, lng, s.lat1, s.lng1)
            speed = round(s.speed_kph * tr.rng.uniform(0.97, 1.0), 1)
            status = "IN_TRANSIT"
        else:
            lat, lng, speed = s.lat0, s.lng0, 0.0
            status = "AT_HUB" if s.kind == "dwell" else "STOPPED"
        lat, lng = round(lat, 6), round(lng, 6)
        ts = t + tr.skew_ms
        value = orjson.dumps(
            {
                "truck_id": tr.id,
                "ts": ts,
                "lat": lat,
                "lng": lng,
                "speed_kph": speed,
                "heading": round(tr.heading),
                "accuracy_m": tr.rng.randint(3, 15),
                "status": status,
            }
        )
        self.builder.on_ping(tr.id, ts, lat, lng, speed)
        return Record(GPS, tr.id.encode(), value, t)

    def _drive(
        self,
        tr: Truck,
        a: Hub,
        b: Hub,
        t: int,
        slow_out: bool,
        slow_in: bool,
        stops: list[tuple[float, int, str]],
    ) -> int:
        """Append the segments of one leg; return the arrival time. ``stops`` are (fraction of
        the cruise part, duration, kind)."""
        cfg = self.cfg
        dist = haversine_m(a.lat, a.lng, b.lat, b.lng)
        city = min(5000.0, dist / 10)
        cruise = tr.cruise_kph * tr.rng.uniform(0.95, 1.0)
        marks: list[tuple[float, float]] = []  # (distance reached, speed on the way there)
        d0 = city if slow_out else 0.0
        d1 = dist - city if slow_in else dist
        if slow_out:
            marks.append((city, cfg.city_speed_kph))
        stop_at = sorted((d0 + f * (d1 - d0), dur, kind) for f, dur, kind in stops)
        for d, _, _ in stop_at:
            marks.append((d, cruise))
        marks.append((d1, cruise))
        if slow_in:
            marks.append((dist, cfg.city_speed_kph))
        pos = 0.0
        lat, lng = a.lat, a.lng
        stop_iter = iter(stop_at)
        next_stop = next(stop_iter, None)
        for reach, speed in marks:
            if reach > pos:
                lat1, lng1 = interpolate(a.lat, a.lng, b.lat, b.lng, reach / dist)
                dt = int((reach - pos) / (speed / 3.6) * 1000)
                tr.segments.append(Segment(t, t + dt, lat, lng, lat1, lng1, speed, "drive"))
                t, pos, lat, lng = t + dt, reach, lat1, lng1
            while next_stop is not None and next_stop[0] <= pos + 1e-6:
                _, dur, kind = next_stop
                tr.segments.append(Segment(t, t + dur, lat, lng, lat, lng, 0.0, kind))
                t += dur
                next_stop = next(stop_iter, None)
        return t

    def _leg(self, tr: Truck, a: Hub, b: Hub, t: int, slow_out: bool, slow_in: bool) -> int:
        """One leg with its rest break and maybe a silence or a breakdown."""
        cfg, rng = self.cfg, tr.rng
        trouble = cfg.trouble
        dist = haversine_m(a.lat, a.lng, b.lat, b.lng)
        hours = dist / 1000 / tr.cruise_kph
        kind = tr.forced_leg
        if kind is None:
            r = rng.random()
            if r < trouble.silent_share:
                kind = "silent"
            elif r < trouble.silent_share + trouble.breakdown_share:
                kind = "breakdown"
        stops: list[tuple[float, int, str]] = []
        rest_f = rng.uniform(0.4, 0.6)
        if hours > cfg.rest_after_h:
            stops.append((rest_f, int(rng.uniform(10, 25) * MIN), "rest"))
        if kind == "breakdown":
            f = rng.uniform(0.2, 0.8)
            if stops and abs(f - rest_f) < 0.1:
                f = 0.2 if rest_f > 0.5 else 0.8
            stops.append((f, int(rng.uniform(35, 90) * MIN), "breakdown"))
            tr.forced_leg = None
        arrive = self._drive(tr, a, b, t, slow_out, slow_in, stops)
        if kind == "silent" and arrive - t >= 50 * MIN:
            s0 = t + int((arrive - t) * rng.uniform(0.15, 0.5))
            s1 = min(s0 + int(rng.uniform(15, 60) * MIN), arrive - 15 * MIN)
            if s1 - s0 >= 13 * MIN:
                tr.silences.append((s0, s1))
                tr.forced_leg = None
        return arrive

    # -- cycles and shipments ---------------------------------------------------------------

    def _plan_cycle(self, tr: Truck, t: int, first: bool) -> None:
        """Dwell at the current hub (pick-ups, departures), then drive to the next stop."""
        rng, trouble = tr.rng, self.cfg.trouble
        hub = tr.hub
        passthrough = False
        if not tr.queue:
            first_hop = self._next_hub(tr, hub.id, tr.prev_hub_id)
            tr.queue = [first_hop]
            if rng.random() < 0.4:
                tr.queue.append(self._next_hub(tr, first_hop, hub.id))
                passthrough = rng.random() < trouble.pass_through_share
        dwell = int(rng.uniform(5, 45) * MIN) if first else int(rng.uniform(30, 120) * MIN)
        depart = t + dwell
        tr.segments.append(Segment(t, depart, hub.lat, hub.lng, hub.lat, hub.lng, 0.0, "dwell"))
        for _ in range(rng.randint(1, 3)):
            self._pick_up(tr, hub, t, depart, passthrough)
        for sh in tr.cargo:
            self._scan(sh, "DEPARTED_HUB", depart - rng.randrange(2 * MIN), hub=hub, truck=tr.id)
        # drive
        n1 = self.hub_by_id[tr.queue.pop(0)]
        if passthrough:
            n2 = self.hub_by_id[tr.queue.pop(0)]
            mid = self._leg(tr, hub, n1, depart, slow_out=True, slow_in=False)
            arrive = self._leg(tr, n1, n2, mid, slow_out=False, slow_in=True)
            tr.prev_hub_id, dest = n1.id, n2
        else:
            arrive = self._leg(tr, hub, n1, depart, slow_out=True, slow_in=True)
            tr.prev_hub_id, dest = hub.id, n1
        tr.hub = dest
        tr.plan_end = arrive
        staying: list[Shipment] = []
        for sh in tr.cargo:
            if sh.scenario == "lost":
                continue  # never scanned again: shipment_no_scan, then shipment_late
            if dest.id in sh.route:
                self._scan(
                    sh, "ARRIVED_HUB", arrive + int(rng.uniform(2, 10) * MIN), hub=dest, truck=tr.id
                )
            if sh.route[-1] == dest.id:
                self._last_mile(tr, sh, dest, arrive + 10 * MIN)
            else:
                staying.append(sh)
        tr.cargo = staying

    def _next_hub(self, tr: Truck, at: str, avoid: str | None) -> str:
        options = [h for h in self.adj[at] if h != avoid] or list(self.adj[at])
        return tr.rng.choice(options)

    def _pick_up(self, tr: Truck, hub: Hub, t: int, depart: int, passthrough: bool) -> None:
        cfg, rng, trouble = self.cfg, tr.rng, self.cfg.trouble
        if passthrough:
            route = [tr.queue[-1]]
        elif len(tr.queue) == 2 and rng.random() < 0.5:
            route = list(tr.queue)
        else:
            route = [tr.queue[0]]
        scenario = tr.forced_shipment
        tr.forced_shipment = None
        if scenario is None:
            r = rng.random()
            scenario = "normal"
            for name, share in (
                ("late", trouble.late_share),
                ("stuck", trouble.stuck_share),
                ("failed", trouble.failed_share),
                ("lost", trouble.lost_share),
            ):
                if r < share:
                    scenario = name
                    break
                r -= share
        final = self.hub_by_id[route[-1]]
        bearing = rng.uniform(0, 2 * math.pi)
        km = rng.uniform(2, 8)
        dlat, dlng = offset_m(
            final.lat, final.lng, km * 1000 * math.cos(bearing), km * 1000 * math.sin(bearing)
        )
        pickup = t + int(rng.uniform(2 * MIN, max(3 * MIN, depart - t - 5 * MIN)))
        path = [hub.id, *route] if not passthrough else [hub.id, *tr.queue]
        km_total = sum(
            haversine_m(
                self.hub_by_id[x].lat,
                self.hub_by_id[x].lng,
                self.hub_by_id[y].lat,
                self.hub_by_id[y].lng,
            )
            / 1000
            for x, y in zip(path, path[1:], strict=False)
        )
        linehaul = int((km_total / cfg.min_cruise_kph + 1.5 * (len(route) - 1)) * HOUR)
        linehaul += depart - pickup
        if scenario in ("late", "lost"):
            promised = pickup + max(20 * MIN, int(linehaul * rng.uniform(0.3, 0.7)))
        else:
            promised = pickup + linehaul + int(rng.uniform(12, 36) * HOUR)
        self._ship_no += 1
        sh = Shipment(
            f"S{cfg.seed % 100:02d}{self._ship_no:07d}",
            tr.id,
            route,
            round(dlat, 6),
            round(dlng, 6),
            promised,
            scenario,
        )
        tr.cargo.append(sh)
        self.builder.on_shipment(sh.id, sh.truck_id, sh.scenario, sh.promised_by)
        self._scan(
            sh,
            "PICKED_UP",
            pickup,
            hub=hub,
            truck=tr.id,
            extra={"promised_by": promised, "dest_lat": sh.dest_lat, "dest_lng": sh.dest_lng},
        )

    def _last_mile(self, tr: Truck, sh: Shipment, hub: Hub, a: int) -> None:
        """Out for delivery from the final hub and delivered (vans are not tracked)."""
        rng = tr.rng
        if sh.scenario == "stuck":
            self._scan(sh, "EXCEPTION", a + int(rng.uniform(20, 60) * MIN), hub=hub)
            ofd = a + int(rng.uniform(7, 11) * HOUR)
            fails = 0
        elif sh.scenario == "failed":
            ofd = a + int(rng.uniform(30, 120) * MIN)
            fails = rng.choice((2, 3))
        else:
            ofd = a + int(rng.uniform(30, 180) * MIN)
            fails = 1 if rng.random() < 0.08 else 0
        for _ in range(fails):
            self._scan(sh, "OUT_FOR_DELIVERY", ofd, hub=hub)
            fail = ofd + int(rng.uniform(60, 180) * MIN)
            self._scan(sh, "DELIVERY_ATTEMPT_FAILED", fail, at=(sh.dest_lat, sh.dest_lng))
            ofd = fail + int(rng.uniform(3, 8) * HOUR)
        self._scan(sh, "OUT_FOR_DELIVERY", ofd, hub=hub)
        self._scan(
            sh, "DELIVERED", ofd + int(rng.uniform(40, 240) * MIN), at=(sh.dest_lat, sh.dest_lng)
        )

    def _scan(
        self,
        sh: Shipment,
        kind: str,
        ts: int,
        hub: Hub | None = None,
        truck: str | None = None,
        at: tuple[float, float] | None = None,
        extra: dict[str, object] | None = None,
    ) -> None:
        self._scan_no += 1
        d: dict[str, object] = {
            "scan_id": f"SC-{self._scan_no:09d}",
            "shipment_id": sh.id,
            "type": kind,
            "ts": ts,
        }
        if truck is not None:
            d["truck_id"] = truck
        if hub is not None:
            d["hub_id"] = hub.id
            d["lat"], d["lng"] = round(hub.lat, 6), round(hub.lng, 6)
        if at is not None:
            d["lat"], d["lng"] = at
        if extra:
            d.update(extra)
        rec = Record(SCANS, sh.id.encode(), orjson.dumps(d), ts)
        self._seq += 1
        heapq.heappush(self._scans, (ts, self._seq, rec))
