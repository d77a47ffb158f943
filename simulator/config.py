"""One frozen settings object for a simulated run: fleet size, timing, trouble and faults."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from simulator import SimulatorError


@dataclass(frozen=True)
class Trouble:
    """Shares of operational trouble: what makes each alert class fire.

    Per-leg shares apply to each hub-to-hub drive, per-shipment shares to each shipment.
    ``guaranteed`` gives trucks 0-5 one kind each on their first trip, so a demo shows every
    class within its first simulated day whatever the shares.
    """

    silent_share: float = 0.02  # truck stops pinging 15-60 min mid-leg -> truck_offline
    breakdown_share: float = 0.02  # 35-90 min stop off the hubs -> truck_stopped_unplanned
    pass_through_share: float = 0.10  # two-hop trip driving through the middle hub's geofence
    late_share: float = 0.03  # promised_by too tight -> shipment_late (+ at_risk)
    stuck_share: float = 0.02  # 7-11 h at the hub -> shipment_stuck_at_hub
    failed_share: float = 0.02  # 2-3 failed attempts -> delivery_attempts_failed
    lost_share: float = 0.01  # no scan after departure -> shipment_no_scan (+ late)
    guaranteed: bool = True


@dataclass(frozen=True)
class Faults:
    """Transport and device faults layered on the clean stream (shares are per record)."""

    out_of_order_share: float = 0.02
    out_of_order_max_s: float = 8.0  # below the jobs' 10 s watermark bound: reordered, not late
    late_share: float = 0.001  # pings only, delivered behind the watermark
    late_min_s: float = 30.0
    late_max_s: float = 300.0
    duplicate_share: float = 0.01
    malformed_share: float = 0.002  # extra broken records, each with a known DLQ reason
    skew_share: float = 0.05  # share of trucks whose clock is off
    skew_max_s: float = 4.0  # keep below the watermark bound, or pings turn late

    @staticmethod
    def none() -> Faults:
        return Faults(0.0, 0.0, 0.0, 30.0, 300.0, 0.0, 0.0, 0.0, 0.0)


@dataclass(frozen=True)
class SimConfig:
    """Everything that decides a run; with the same values the output is byte-identical."""

    trucks: int = 50
    seed: int = 1
    start_ms: int = 1_764_000_000_000
    ping_interval_s: float = 30.0
    max_speed_kph: float = 110.0
    min_cruise_kph: float = 80.0
    city_speed_kph: float = 45.0
    rest_after_h: float = 4.5  # a rest break on legs longer than this
    trouble: Trouble = field(default_factory=Trouble)
    faults: Faults = field(default_factory=Faults)

    def __post_init__(self) -> None:
        if self.trucks < 1 or self.trucks > 99_999:
            raise SimulatorError("trucks must be 1..99999")
        if not 1.0 <= self.ping_interval_s <= 300.0:
            raise SimulatorError("ping interval must be 1..300 s (offline is 10 min of silence)")
        if not self.city_speed_kph <= self.min_cruise_kph <= self.max_speed_kph <= 250:
            raise SimulatorError("need city speed <= min cruise <= max speed <= 250 km/h")
        for name, v in {**asdict(self.trouble), **asdict(self.faults)}.items():
            if name.endswith("_share") and not 0.0 <= v <= 1.0:
                raise SimulatorError(f"{name} must be within 0..1, got {v}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
