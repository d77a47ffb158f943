"""Where fleetpulse finds its cached JVM artifacts and keeps its state."""

from __future__ import annotations

import os
from pathlib import Path

from fleetpulse import PlatformError

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def jvm_dir() -> Path:
    """Directory the set-up filled from Maven Central (see jvm/pom.xml and dev.sh)."""
    env = os.environ.get("FLEETPULSE_JVM_DIR")
    if env:
        return Path(env)
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return cache / "fleetpulse" / "jvm"


def kafka_classpath() -> str:
    """Classpath of the Kafka broker; a clear error if the set-up has not run."""
    d = jvm_dir() / "kafka"
    if not any(d.glob("kafka_2.13-*.jar")):
        raise PlatformError(
            f"Kafka broker jars not found in {d}: run ./dev.sh setup "
            "(it resolves them from Maven Central through jvm/pom.xml)"
        )
    return str(d / "*")


def flink_jars() -> list[Path]:
    """Jars a Flink job needs on its classpath: the Kafka SQL connector (and the reporter)."""
    d = jvm_dir() / "flink"
    jars = sorted(d.glob("flink-sql-connector-kafka-*.jar"))
    if not jars:
        raise PlatformError(
            f"flink-sql-connector-kafka not found in {d}: run ./dev.sh setup"
        )
    return jars


def prometheus_reporter_jar() -> Path | None:
    jars = sorted((jvm_dir() / "flink").glob("flink-metrics-prometheus-*.jar"))
    return jars[0] if jars else None


def default_data_dir() -> Path:
    return Path(os.environ.get("FLEETPULSE_DATA_DIR", PROJECT_ROOT / ".fleetpulse"))
