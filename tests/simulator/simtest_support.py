"""Helpers shared by the simulator tests."""

from __future__ import annotations

from dataclasses import dataclass

from simulator.config import Faults, SimConfig
from simulator.fleet import FleetSimulator, Record
from simulator.truth import GroundTruth

START_MS = 1_764_000_000_000


@dataclass
class Run:
    config: SimConfig
    records: list[Record]
    truth: GroundTruth
    sim: FleetSimulator


def make_run(
    hours: float = 40.0, trucks: int = 24, seed: int = 11, faults: Faults | None = None
) -> Run:
    cfg = SimConfig(
        trucks=trucks,
        seed=seed,
        start_ms=START_MS,
        faults=faults if faults is not None else Faults.none(),
    )
    sim = FleetSimulator(cfg)
    records = list(sim.run(hours * 3600))
    return Run(cfg, records, sim.truth, sim)
