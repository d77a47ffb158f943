"""The verify report of a backfill: staging against live, without I/O.

A :class:`Snapshot` is what one side holds for the range (region hashes, the ``delays``
members and scores, a sample of trucks' positions, alerts counted by class and action);
:func:`compare` lists every difference past its tolerance, section by section, and a section
breaches when it has more differences than its threshold allows.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

SECTIONS = ("regions", "delays", "positions", "alerts")
EARTH_RADIUS_M = 6_371_008.8


@dataclass(frozen=True)
class Snapshot:
    """One side's state, as read from Redis and the alerts topic."""

    regions: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    delays: Mapping[str, float] = field(default_factory=dict)
    positions: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    alerts: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Thresholds:
    """How far staging may differ from live before verify fails.

    ``max_differences``: differences allowed per section (0: none). The tolerances decide
    what a difference is: a region field's absolute gap, a position's distance in metres,
    an alert class's count as a fraction of live's (at least 1 record's worth is never
    forgiven below 1.0)."""

    max_differences: Mapping[str, int] = field(default_factory=lambda: dict.fromkeys(SECTIONS, 0))
    region_tolerance: float = 1e-6
    delay_score_tolerance: float = 0.0
    position_tolerance_m: float = 1.0
    alert_tolerance: float = 0.0

    def allowed(self, section: str) -> int:
        return self.max_differences.get(section, 0)


@dataclass(frozen=True)
class Difference:
    section: str
    key: str
    live: Any
    staging: Any
    detail: str = ""


@dataclass(frozen=True)
class Report:
    differences: tuple[Difference, ...]
    counts: Mapping[str, Mapping[str, int]]  # section -> {"live": n, "staging": n}
    thresholds: Thresholds

    @property
    def breaches(self) -> list[str]:
        """Sections with more differences than allowed."""
        return [s for s in SECTIONS if len(self.of(s)) > self.thresholds.allowed(s)]

    @property
    def ok(self) -> bool:
        return not self.breaches

    def of(self, section: str) -> list[Difference]:
        return [d for d in self.differences if d.section == section]

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "breaches": self.breaches,
            "counts": {k: dict(v) for k, v in self.counts.items()},
            "thresholds": {
                **asdict(self.thresholds),
                "max_differences": dict(self.thresholds.max_differences),
            },
            "differences": [asdict(d) for d in self.differences],
        }

    def summary(self, limit: int = 20) -> str:
        """The report for a terminal: one line per section, then the first differences."""
        lines = []
        for s in SECTIONS:
            n, allowed = len(self.of(s)), self.thresholds.allowed(s)
            seen = self.counts.get(s, {})
            verdict = "BREACH" if n > allowed else "ok"
            lines.append(
                f"{s:<10} {verdict:<6} {n} difference(s), {allowed} allowed "
                f"(live {seen.get('live', 0)}, staging {seen.get('staging', 0)})"
            )
        for d in self.differences[:limit]:
            extra = f" ({d.detail})" if d.detail else ""
            lines.append(f"  {d.section}: {d.key}: live {d.live!r}, staging {d.staging!r}{extra}")
        if len(self.differences) > limit:
            lines.append(f"  ... and {len(self.differences) - limit} more (see the JSON report)")
        return "\n".join(lines)


def distance_m(lat1: float, lng1: float, lat2: float, lng2: float) -> float:
    """Great-circle distance (haversine)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lng2 - lng1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(math.sqrt(min(1.0, a)))


def compare_regions(
    live: Mapping[str, Mapping[str, float]],
    staging: Mapping[str, Mapping[str, float]],
    tolerance: float,
) -> list[Difference]:
    out = []
    for region in sorted(set(live) | set(staging)):
        a, b = live.get(region, {}), staging.get(region, {})
        for name in sorted(set(a) | set(b)):
            x, y = a.get(name), b.get(name)
            if x is None or y is None or abs(x - y) > tolerance:
                out.append(Difference("regions", f"{region}.{name}", x, y))
    return out


def compare_delays(
    live: Mapping[str, float], staging: Mapping[str, float], tolerance: float
) -> list[Difference]:
    out = []
    for member in sorted(set(live) | set(staging)):
        x, y = live.get(member), staging.get(member)
        if x is None or y is None:
            out.append(
                Difference(
                    "delays", member, x, y, "only in " + ("staging" if x is None else "live")
                )
            )
        elif abs(x - y) > tolerance:
            out.append(Difference("delays", member, x, y, "score"))
    return out


def compare_positions(
    live: Mapping[str, Mapping[str, str]],
    staging: Mapping[str, Mapping[str, str]],
    tolerance_m: float,
) -> list[Difference]:
    """The sampled trucks (keys of ``live``; staging's extra trucks are not sampled)."""
    out = []
    for truck in sorted(live):
        a, b = live[truck], staging.get(truck)
        if not b:
            out.append(Difference("positions", truck, dict(a), None, "only in live"))
            continue
        gap = distance_m(float(a["lat"]), float(a["lng"]), float(b["lat"]), float(b["lng"]))
        if gap > tolerance_m:
            out.append(Difference("positions", truck, dict(a), dict(b), f"{gap:.1f} m apart"))
        elif a.get("status") != b.get("status") or a.get("ts_ms") != b.get("ts_ms"):
            out.append(Difference("positions", truck, dict(a), dict(b), "status or ts_ms"))
    return out


def compare_alerts(
    live: Mapping[str, int], staging: Mapping[str, int], tolerance: float
) -> list[Difference]:
    out = []
    for name in sorted(set(live) | set(staging)):
        x, y = live.get(name, 0), staging.get(name, 0)
        if abs(x - y) > tolerance * max(x, 1):
            out.append(Difference("alerts", name, x, y))
    return out


def compare(live: Snapshot, staging: Snapshot, thresholds: Thresholds) -> Report:
    diffs = [
        *compare_regions(live.regions, staging.regions, thresholds.region_tolerance),
        *compare_delays(live.delays, staging.delays, thresholds.delay_score_tolerance),
        *compare_positions(live.positions, staging.positions, thresholds.position_tolerance_m),
        *compare_alerts(live.alerts, staging.alerts, thresholds.alert_tolerance),
    ]
    counts = {
        "regions": {"live": len(live.regions), "staging": len(staging.regions)},
        "delays": {"live": len(live.delays), "staging": len(staging.delays)},
        "positions": {
            "live": len(live.positions),
            "staging": sum(1 for t in live.positions if staging.positions.get(t)),
        },
        "alerts": {"live": sum(live.alerts.values()), "staging": sum(staging.alerts.values())},
    }
    return Report(tuple(diffs), counts, thresholds)
