"""Settings of `fleetpulse up`: flags, then FLEETPULSE_* environment, then safe defaults."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class UpSettings:
    data_dir: Path
    kafka_port: int = 9092
    kafka_controller_port: int = 9093
    redis_port: int = 6379
    gateway_port: int = 8765
    tracking_metrics_port: int = 9250
    delay_metrics_port: int = 9251
    dispatcher_metrics_port: int = 9252
    tracking_rest_port: int = 8081
    delay_rest_port: int = 8082
    flink_url: str = ""  # submit to this cluster with `flink run -py` instead of embedding
    parallelism: int = 1
    # each embedded job's JVM on a CPU of its own (flink_jobs.runtime.affinity)
    pin_jobs: bool = False
    checkpoint_interval_ms: int = 10_000
    simulate: bool = True
    trucks: int = 200
    speedup: float = 300.0
    seed: int = 42
    alerting_config: str = ""

    @property
    def run_dir(self) -> Path:
        return self.data_dir / "run"

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "logs"

    @property
    def state_file(self) -> Path:
        return self.run_dir / "up.json"

    @property
    def kafka_bootstrap(self) -> str:
        return f"127.0.0.1:{self.kafka_port}"

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"
