"""What the sections share during one ``fleetpulse bench`` run."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.data import Dataset, preload
from bench.support import Bar, Stack, log


@dataclass(frozen=True)
class Sizes:
    """Sizes of one run; ``quick`` is a smoke run of the same code."""

    pings: int = 1_000_000
    trucks: int = 100_000
    partitions: int = 4
    scaling_trucks: tuple[int, ...] = (10_000, 100_000, 1_000_000)
    parallelisms: tuple[int, ...] = (1, 2)
    cluster_taskmanagers: tuple[int, ...] = (2,)  # standalone-cluster runs, one slot per TM
    cluster_checkpoints: str = "local"  # where those keep checkpoints: local or s3
    peers: bool = True
    pinned_runs: bool = True  # also run p=1 and each cluster pinned (pinned / free ratios)
    seed_rate_per_min: int = 10_000  # the seed's load: 10,000 pings/min
    seed_trucks: int = 5_000  # ... from 5,000 trucks pinging every 30 s
    high_rate_per_s: int = 10_000  # then 10,000 pings/s from all the trucks
    seed_phase_s: float = 60.0
    high_phase_s: float = 40.0
    doomed: int = 200  # alerts measured per alert class
    fanout_clients: int = 5000
    fanout_rate: int = 10_000
    fanout_duration_s: float = 60.0  # the judged run: the gateway on a CPU of its own
    fanout_shared_duration_s: float = 20.0  # for reference: the load generator sharing it
    scaling_time_box_s: float | None = None  # stop scaling runs this long after start
    profile_pings: int = 60_000
    profile_trucks: int = 6_000

    @staticmethod
    def quick(pings: int = 100_000, trucks: int = 10_000) -> Sizes:
        return Sizes(
            pings=pings,
            trucks=trucks,
            scaling_trucks=(1_000, trucks, 50_000),
            seed_phase_s=15.0,
            high_phase_s=20.0,
            doomed=40,
            fanout_clients=300,
            fanout_duration_s=6.0,
            fanout_shared_duration_s=4.0,
            profile_pings=50_000,
            profile_trucks=5_000,
        )


@dataclass
class Context:
    stack: Stack
    workdir: Path
    sizes: Sizes
    quix_python: str | None
    datasets: dict[tuple[int, int], Dataset] = field(default_factory=dict)
    shared: dict[str, Any] = field(default_factory=dict)  # results one section leaves another

    def dataset(self, trucks: int, pings: int | None = None) -> Dataset:
        """The preloaded input for ``trucks`` trucks (produced on first use)."""
        n = pings if pings is not None else self.sizes.pings
        if (trucks, n) not in self.datasets:
            topic = f"bench.gps.{trucks}.{n}"
            self.stack.create_topic(topic, self.sizes.partitions)
            bar = Bar(n, f"preload {n:,} pings / {trucks:,} trucks", "ping")
            ds = preload(
                self.stack.bootstrap,
                topic,
                n,
                trucks,
                self.sizes.partitions,
                on_progress=bar.update_to,
            )
            bar.close()
            log(f"preloaded {topic}: {n:,} pings, {ds.bytes_per_ping:.0f} bytes each")
            self.datasets[(trucks, n)] = ds
        return self.datasets[(trucks, n)]
