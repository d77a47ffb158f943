"""Where fleetpulse finds its cached JVM artifacts and keeps its state."""

from __future__ import annotations

import os
from pathlib import Path

from fleetpulse import PlatformError
from flink_jobs.runtime.jars import jvm_dir

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def kafka_classpath() -> str:
    """Classpath of the Kafka broker; a clear error if the set-up has not run."""
    d = jvm_dir() / "kafka"
    if not any(d.glob("kafka_2.13-*.jar")):
        raise PlatformError(
            f"Kafka broker jars not found in {d}: run ./dev.sh setup "
            "(it resolves them from Maven Central through jvm/pom.xml)"
        )
    return str(d / "*")


def default_data_dir() -> Path:
    return Path(os.environ.get("FLEETPULSE_DATA_DIR", PROJECT_ROOT / ".fleetpulse"))
