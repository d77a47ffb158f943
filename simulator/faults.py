"""Fault injection on the clean stream: reordering, late delivery, duplicates, malformed
records and (in :mod:`simulator.fleet`) device clock skew.

Faults never change the history the truth is built from: reordered and duplicated records carry
the same payload, malformed records are extra records (each logged with the dead-letter reason a
reader should give it), and late delivery is applied only to moving pings away from hubs, where
losing one changes no alert. Pure: records in, records out, in emission order.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Iterator, Sequence
from typing import Any

import orjson

from simulator.config import SimConfig
from simulator.fleet import GPS, Record
from simulator.geo import Hub
from simulator.truth import HubIndex, MalformedRecord, TruthBuilder

DAY_MS = 86_400_000

GPS_FAULTS = (
    "MALFORMED_JSON",
    "MISSING_FIELD",
    "BAD_COORDINATES",
    "IMPOSSIBLE_SPEED",
    "FUTURE_TIMESTAMP",
    "BAD_TYPE",
)
SCAN_FAULTS = (
    "MALFORMED_JSON",
    "MISSING_FIELD",
    "UNKNOWN_SCAN_TYPE",
    "UNKNOWN_SCAN_TYPE",
    "BAD_TYPE",
)


class FaultInjector:
    """Applies :class:`~simulator.config.Faults` with its own seeded random stream."""

    def __init__(self, config: SimConfig, builder: TruthBuilder, hubs: Sequence[Hub]) -> None:
        self.f = config.faults
        self.builder = builder
        self.index = HubIndex(hubs)
        self.rng = random.Random(f"fleetpulse-faults:{config.seed}")
        self._seq = 0
        self._bad = 0

    def apply(self, clean: Iterator[Record]) -> Iterator[Record]:
        f, rng, b = self.f, self.rng, self.builder
        heap: list[tuple[int, int, Record]] = []
        p_late, p_ooo = f.late_share, f.late_share + f.out_of_order_share
        for rec in clean:
            now = rec.emit_ms
            while heap and heap[0][0] <= now:
                yield heapq.heappop(heap)[2]
            delay = 0
            r = rng.random()
            if r < p_late and rec.topic == GPS and self._may_be_late(rec.value):
                delay = int(rng.uniform(f.late_min_s, f.late_max_s) * 1000)
                b.on_late(rec.topic, rec.key.decode(), orjson.loads(rec.value)["ts"], now + delay)
            elif p_late <= r < p_ooo:
                delay = int(rng.uniform(0.5, max(0.5, f.out_of_order_max_s)) * 1000)
                b.on_reordered()
            self._push(heap, rec._replace(emit_ms=now + delay))
            if f.duplicate_share and rng.random() < f.duplicate_share:
                b.on_duplicate(rec.topic)
                self._push(heap, rec._replace(emit_ms=now + delay + rng.randrange(2000)))
            if f.malformed_share and rng.random() < f.malformed_share:
                self._push(heap, self._malformed(rec))
        while heap:
            yield heapq.heappop(heap)[2]

    def _push(self, heap: list[tuple[int, int, Record]], rec: Record) -> None:
        self._seq += 1
        heapq.heappush(heap, (rec.emit_ms, self._seq, rec))

    def _may_be_late(self, value: bytes) -> bool:
        d = orjson.loads(value)
        return bool(d.get("speed_kph", 0) >= 3 and self.index.at(d["lat"], d["lng"]) is None)

    def _malformed(self, rec: Record) -> Record:
        """A broken sibling of ``rec`` (same key), sent just after it."""
        rng = self.rng
        d: dict[str, Any] = orjson.loads(rec.value)
        if rec.topic == GPS:
            reason = rng.choice(GPS_FAULTS)
        else:
            reason = rng.choice(SCAN_FAULTS)
            self._bad += 1
            d["scan_id"] = f"SC-BAD-{self._bad:07d}"
        raw: bytes
        if reason == "MALFORMED_JSON":
            full = orjson.dumps(d)
            raw, detail = full[: max(1, len(full) // 2)], "truncated JSON"
        elif reason == "MISSING_FIELD":
            required = (
                ("truck_id", "ts", "lat", "lng")
                if rec.topic == GPS
                else ("scan_id", "shipment_id", "type", "ts")
            )
            gone = rng.choice(required)
            d.pop(gone)
            raw, detail = orjson.dumps(d), f"missing {gone}"
        elif reason == "BAD_COORDINATES":
            choice = rng.randrange(3)
            if choice == 0:
                d["lat"] = round(rng.uniform(90.5, 130), 4)
                detail = f"lat {d['lat']} outside -90..90"
            elif choice == 1:
                d["lng"] = round(rng.uniform(-250, -180.5), 4)
                detail = f"lng {d['lng']} outside -180..180"
            else:
                d["lat"], d["lng"] = 0.0, 0.0
                detail = "null island (0, 0)"
            raw = orjson.dumps(d)
        elif reason == "IMPOSSIBLE_SPEED":
            jump = 9.0 if d["lat"] < 60 else -9.0
            d["lat"] = round(d["lat"] + jump, 6)
            d["ts"] += 1000
            raw, detail = orjson.dumps(d), "jump of ~1000 km in 1 s"
        elif reason == "FUTURE_TIMESTAMP":
            d["ts"] += 400 * DAY_MS
            raw, detail = orjson.dumps(d), "ts 400 days ahead"
        elif reason == "UNKNOWN_SCAN_TYPE":
            d["type"] = rng.choice(("TELEPORTED", "picked_up", "LOST_IN_SPACE"))
            raw, detail = orjson.dumps(d), f"type {d['type']}"
        else:  # BAD_TYPE
            field = "lat" if rec.topic == GPS else "ts"
            d[field] = f"{d[field]}!"
            raw, detail = orjson.dumps(d), f"{field} is a string"
        emit = rec.emit_ms + 1
        self.builder.on_malformed(
            MalformedRecord(rec.topic, rec.key.decode(), reason, detail, raw.decode(), emit)
        )
        return Record(rec.topic, rec.key, raw, emit)
