"""Settings of `fleetpulse up`: flags, then FLEETPULSE_* environment, then safe defaults."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote


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
    # the local alert receiver: the packaged config's webhook is http://127.0.0.1:9099/alerts
    receiver_port: int = 9099
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
    # set by `up` from <data>/redis.secret (fleetpulse.services.redis_server.redis_password)
    redis_password: str = ""

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
    def received_file(self) -> Path:
        """What the local receiver received (`fleetpulse alerts tail` reads it)."""
        return self.data_dir / "receiver" / "alerts.jsonl"

    @property
    def kafka_bootstrap(self) -> str:
        return f"127.0.0.1:{self.kafka_port}"

    @property
    def redis_url(self) -> str:
        """The URL components connect with: it holds the password, print it redacted."""
        auth = f":{quote(self.redis_password, safe='')}@" if self.redis_password else ""
        return f"redis://{auth}127.0.0.1:{self.redis_port}/0"
