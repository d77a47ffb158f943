"""Where fleetpulse finds its cached JVM artifacts and keeps its state."""

from __future__ import annotations

from pathlib import Path

from fleetpulse import PlatformError
from flink_jobs.runtime.jars import jvm_dir
from udfs.data_dir import default_data_dir as udfs_default_data_dir

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
    """``$FLEETPULSE_DATA_DIR`` or ``<project root>/.fleetpulse`` (shared with the dispatcher)."""
    return udfs_default_data_dir()
